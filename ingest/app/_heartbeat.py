"""``mendline.heartbeat``: a job's check-ins (start, then ok or fail) for a heartbeat check,
sent by the background shipper; it never blocks or raises into the job."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest.app._builder import truncate_utf8
from mendline.ingest.app._config import load_app_settings
from mendline.ingest.app._processor import _warn_about, make_shipper
from mendline.ingest.app._shipper import Shipper
from mendline.schemas.checks import CheckIn

__all__ = ["Heartbeat", "encode_checkin", "heartbeat", "new_checkin"]

log = logging.getLogger("mendline.ingest")

_F = TypeVar("_F", bound=Callable[..., Any])
# A message of a check-in is at most this many UTF-8 bytes (the contract's limit is 4000
# characters); a failed job's exception is cut shorter.
_MAX_MESSAGE_BYTES = 4000
_MAX_FAILURE_BYTES = 1000

_default: Shipper | None = None
_default_lock = threading.Lock()


def new_checkin(
    check: str,
    status: Literal["start", "ok", "fail"],
    *,
    run_id: str | None = None,
    message: str | None = None,
    duration: float | None = None,
    environment: str = "production",
    host: str | None = None,
    scrubber: Scrubber | None = None,
    message_limit: int = _MAX_MESSAGE_BYTES,
) -> CheckIn:
    """A CheckIn dated now with a new checkin_id; ``message`` scrubbed (with ``scrubber``,
    else the default rules), then cut to ``message_limit`` UTF-8 bytes (at most the
    contract's limit). A bad check name, or a duration below zero, is pydantic's
    ValidationError."""
    if message is not None:
        limit = min(message_limit, _MAX_MESSAGE_BYTES)
        message = truncate_utf8((scrubber or Scrubber()).scrub_text(message), limit)
    return CheckIn(
        schema_version=1,
        checkin_id=uuid.uuid4(),
        check=check,
        status=status,
        timestamp=datetime.now(UTC),
        run_id=run_id,
        environment=environment,
        duration=duration,
        message=message,
        host=host,
    )


def encode_checkin(checkin: CheckIn) -> tuple[bytes, bytes]:
    """The Kafka key (the check's name: a check's check-ins stay in order on one partition)
    and value (CheckIn v1 JSON) of a check-in."""
    return checkin.check.encode(), checkin.model_dump_json(exclude_none=True).encode()


def _default_shipper() -> Shipper:
    """The shipper of check-ins when none is given: one per process, made from MENDLINE_*.
    As the processor's, it sends nothing when the scrubbing settings cannot be used: a
    failed job's message might hold what they were meant to filter."""
    global _default
    with _default_lock:
        if _default is None:
            settings, problems = load_app_settings()
            _warn_about(problems)
            _default = make_shipper(settings)
            if any(problem.disables_shipping for problem in problems):
                _default.shutdown(0)
        return _default


class _Run:
    """One run of the job: its run_id and its clock."""

    def __init__(self, beat: Heartbeat) -> None:
        self.beat = beat
        self.run_id = uuid.uuid4().hex
        self.started = time.monotonic()
        beat._send("start", self.run_id)

    def finish(self, error: BaseException | None) -> None:
        duration = max(0.0, time.monotonic() - self.started)
        if error is None:
            self.beat._send("ok", self.run_id, duration=duration)
        else:
            self.beat._send("fail", self.run_id, duration=duration, error=error)


class Heartbeat:
    """Check-ins of one heartbeat check around a job: ``start`` on entry, then ``ok``, or
    ``fail`` with the exception's type and message (scrubbed, shortened) when the block
    raises; the exception goes on unchanged. Start and finish share a run_id; the finish
    carries the run's duration. A context manager (``with`` and ``async with``) and a
    decorator of sync and async functions, where each call is a run.

    Sending is the shipper's (a background thread): nothing here blocks or raises into the
    job. While Kafka is down, check-ins wait in memory (up to a thousand) and go when it is
    back; a check-in that cannot be made (a bad check name) is a warning in the log.
    """

    def __init__(
        self, check: str, *, environment: str | None = None, shipper: Shipper | None = None
    ) -> None:
        self.check = check
        self.environment = environment
        self.shipper = shipper
        self.failures = 0  # check-ins that could not be made or queued
        # The runs entered and not left, per thread and per asyncio task: one Heartbeat may
        # be entered by several at once.
        self._runs: ContextVar[tuple[_Run, ...]] = ContextVar("mendline_heartbeat", default=())

    # -- as a context manager -------------------------------------------------------------
    def __enter__(self) -> Heartbeat:
        self._runs.set((*self._runs.get(), _Run(self)))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        runs = self._runs.get()
        if runs:
            self._runs.set(runs[:-1])
            runs[-1].finish(error)

    async def __aenter__(self) -> Heartbeat:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, traceback)

    # -- as a decorator -------------------------------------------------------------------
    def __call__(self, func: _F) -> _F:
        """``func`` wrapped so that each call is a run with its check-ins."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                run = _Run(self)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    run.finish(exc)
                    raise
                run.finish(None)
                return result

            return cast(_F, run_async)

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            run = _Run(self)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                run.finish(exc)
                raise
            run.finish(None)
            return result

        return cast(_F, run_sync)

    # -- sending --------------------------------------------------------------------------
    def _send(
        self,
        status: Literal["start", "ok", "fail"],
        run_id: str,
        *,
        duration: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Make the check-in and hand it to the shipper; never raises."""
        try:
            shipper = self.shipper or _default_shipper()
            builder = shipper.builder
            message = None if error is None else f"{type(error).__name__}: {error}"
            checkin = new_checkin(
                self.check,
                status,
                run_id=run_id,
                message=message,
                duration=duration,
                environment=self.environment or builder.environment,
                host=builder.host,
                scrubber=builder.scrubber,
                message_limit=_MAX_FAILURE_BYTES,
            )
            key, value = encode_checkin(checkin)
            shipper.submit_record(shipper.settings.checkins_topic, key, value)
        except Exception as exc:
            self.failures += 1
            log.warning("mendline: the %r check-in of %r was not sent: %s", status, self.check, exc)


def heartbeat(
    check: str, *, environment: str | None = None, shipper: Shipper | None = None
) -> Heartbeat:
    """Check-ins of the heartbeat check ``check`` around a job::

        with mendline.heartbeat("nightly-export"):
            export()

        @mendline.heartbeat("nightly-export")
        async def export() -> None: ...

    ``environment`` is MENDLINE_ENVIRONMENT's unless given; ``shipper`` is one shared per
    process, made from the MENDLINE_* settings, unless given (an ErrorEventProcessor's
    ``shipper``, say, to share its thread and connection).
    """
    return Heartbeat(check, environment=environment, shipper=shipper)
