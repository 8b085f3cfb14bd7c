"""The app-side entry points: a structlog processor and a logging.Handler."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest.app import _testing
from mendline.ingest.app._builder import EventBuilder, InApp
from mendline.ingest.app._capture import Capture, exception_of
from mendline.ingest.app._config import SettingProblem, load_app_settings
from mendline.ingest.app._shipper import Shipper
from mendline.schemas.event import LEVEL_RANK, LEVELS
from mendline.schemas.settings import Settings

__all__ = ["ErrorEventHandler", "ErrorEventProcessor", "make_shipper"]

# LEVEL_RANK, and the structlog method names that are not level names
_RANK: dict[str, int] = dict(LEVEL_RANK)
_RANK.update(exception=_RANK["error"], warn=_RANK["warning"], fatal=_RANK["critical"])
# Keys of a structlog event dict that are not the developer's bound context.
_RESERVED = frozenset(
    {
        "event",
        "exc_info",
        "exception",  # format_exc_info / dict_tracebacks output: may hold local variables
        "stack_info",
        "level",
        "timestamp",
        "logger",
        "logger_name",
        "_record",
        "_from_structlog",
        "fingerprint",
        "tags",
    }
)
# Our own and our Kafka client's loggers never become events: that would loop when Kafka is down.
_IGNORED_LOGGERS = ("mendline", "aiokafka", "kafka")

log = logging.getLogger("mendline.ingest")

_AFTER_RENDERER = (
    "mendline: ErrorEventProcessor was given an already rendered event (%s), so it captures "
    "nothing: put it in structlog's processors before the renderer (JSONRenderer, "
    "ConsoleRenderer, ...), and before format_exc_info and dict_tracebacks"
)
_AFTER_FORMAT_EXC_INFO = (
    "mendline: ErrorEventProcessor runs after format_exc_info or dict_tracebacks (the event "
    "has a formatted 'exception' and no exc_info), so events are captured without their "
    "traceback: put it in structlog's processors before them"
)


def _formatted_exception(event_dict: dict[str, Any]) -> bool:
    """True when format_exc_info or dict_tracebacks has already turned exc_info into text."""
    if "exc_info" in event_dict:
        return False
    found = event_dict.get("exception")
    if isinstance(found, str):  # format_exc_info; a key the app binds itself rarely looks so
        return found.startswith("Traceback (most recent call last):")
    return (
        isinstance(found, list)
        and bool(found)
        and isinstance(found[0], dict)
        and (
            "exc_type" in found[0]  # dict_tracebacks
        )
    )


def make_shipper(
    settings: Settings | None = None,
    *,
    service: str | None = None,
    environment: str | None = None,
    release: str | None = None,
) -> Shipper:
    """A Shipper with its EventBuilder, configured from ``settings`` and the overrides."""
    if settings is None:
        settings, problems = load_app_settings()
        _warn_about(problems)
    builder = EventBuilder(
        service or settings.service or _program_name(),
        environment or settings.environment,
        release or settings.release,
        in_app=InApp(settings.in_app_include, settings.in_app_exclude),
        scrubber=Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns),
    )
    return Shipper(settings, builder)


def _program_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.splitext(name)[0] or "python"


def _warn_about(problems: list[SettingProblem]) -> None:
    """A warning for each unusable setting (once: at construction), saying what happens."""
    for problem in problems:
        if problem.disables_shipping:
            log.warning("mendline: %s; no error events are shipped until it is fixed", problem)
        else:
            log.warning("mendline: %s; its default is used instead", problem)


class _Emitter:
    """What the processor and the handler share: the threshold, the shipper, the guards."""

    def __init__(
        self,
        service: str | None,
        level: str | None,
        settings: Settings | None,
        shipper: Shipper | None,
        environment: str | None,
        release: str | None,
    ) -> None:
        settings, problems = load_app_settings(settings)
        _warn_about(problems)
        self.shipper = shipper or make_shipper(
            settings, service=service, environment=environment, release=release
        )
        if any(problem.disables_shipping for problem in problems):
            self.shipper.shutdown(0)  # what is logged is counted as failed, never shipped
        self.min_rank = _RANK[level or settings.emit_level]
        self.failures = 0
        self._guard = threading.local()

    def emit(
        self,
        rank: int,
        logger: str | None,
        message: object,
        context: dict[str, Any],
        exc_info: object,
        tags: Any,
        fingerprint: Any,
    ) -> None:
        """Capture and submit; never raises, never recurses into itself."""
        shipper = self.shipper
        guard = self._guard
        if getattr(guard, "active", False) or threading.get_ident() == shipper.thread_ident:
            return
        guard.active = True
        try:
            capture = Capture.now(
                LEVELS[rank],
                logger,
                message,
                context,
                exception_of(exc_info),
                tags if isinstance(tags, dict) else None,
                list(fingerprint) if isinstance(fingerprint, list | tuple) else None,
            )
            if _testing.active:
                _testing.record(shipper.builder, capture)
            else:
                shipper.submit(capture)
        except Exception:
            self.failures += 1
        finally:
            guard.active = False


class ErrorEventProcessor:
    """A structlog processor that turns errors into ErrorEvents shipped to Kafka.

    Put it in the processor chain before the renderer (and before ``format_exc_info`` or
    ``dict_tracebacks``). Events at or above ``level`` (default: the ``emit_level`` setting,
    ``error``), and any event with ``exc_info``, are captured; the event dict is returned
    unchanged, so the app's own logging goes on as before. ``message`` is structlog's
    ``event`` (the template the developer wrote); the bound key-values go to ``context``.
    The keys ``tags`` (a dict) and ``fingerprint`` (a list) set the event's tags and custom
    grouping. It never raises into the app and never blocks it: a bad ``MENDLINE_*`` value is
    warned about and replaced by its default (see load_app_settings), and a place in the chain
    where events would be lost (after the renderer or format_exc_info) is warned about once.
    """

    def __init__(
        self,
        service: str | None = None,
        *,
        level: str | None = None,
        settings: Settings | None = None,
        shipper: Shipper | None = None,
        environment: str | None = None,
        release: str | None = None,
    ) -> None:
        self._emitter = _Emitter(service, level, settings, shipper, environment, release)
        self._min_rank = self._emitter.min_rank
        self.shipper = self._emitter.shipper
        self._warned_misplaced = False

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """Capture the event if it is an error; return ``event_dict`` unchanged."""
        try:
            if not isinstance(event_dict, dict) or _formatted_exception(event_dict):
                self._misplaced(event_dict)
                if not isinstance(event_dict, dict):
                    return event_dict
            level = event_dict.get("level")
            rank = _RANK.get(level if isinstance(level, str) else method_name, 0)
            exc_info = event_dict.get("exc_info")
            if rank < self._min_rank and not exc_info:
                return event_dict
            name = event_dict.get("logger") or event_dict.get("logger_name")
            if name is None:
                name = getattr(logger, "name", None)
            record = event_dict.get("_record")
            if record is not None and record.name.startswith(_IGNORED_LOGGERS):
                return event_dict
            context = {k: v for k, v in event_dict.items() if k not in _RESERVED}
            self._emitter.emit(
                rank,
                name if isinstance(name, str) else None,
                event_dict.get("event"),
                context,
                exc_info,
                event_dict.get("tags"),
                event_dict.get("fingerprint"),
            )
        except Exception:
            self._emitter.failures += 1
        return event_dict

    def _misplaced(self, event_dict: Any) -> None:
        """Say once (a warning) where the processor must go in the chain."""
        if self._warned_misplaced:
            return
        self._warned_misplaced = True
        if isinstance(event_dict, dict):
            log.warning(_AFTER_FORMAT_EXC_INFO)
        else:
            log.warning(_AFTER_RENDERER, type(event_dict).__name__)


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class ErrorEventHandler(logging.Handler):
    """A logging.Handler that turns error records into ErrorEvents shipped to Kafka.

    Records at or above ``level`` (default: the ``emit_level`` setting), and any record with
    exc_info, are captured. ``message`` is the record's unformatted ``msg``; its ``args`` and
    any ``extra=`` attributes go to ``context``. Records of mendline's and aiokafka's own
    loggers are ignored.
    """

    def __init__(
        self,
        service: str | None = None,
        *,
        level: str | None = None,
        settings: Settings | None = None,
        shipper: Shipper | None = None,
        environment: str | None = None,
        release: str | None = None,
    ) -> None:
        super().__init__(logging.NOTSET)  # the threshold is ours: exc_info passes below it
        self._emitter = _Emitter(service, level, settings, shipper, environment, release)
        self.shipper = self._emitter.shipper

    def emit(self, record: logging.LogRecord) -> None:
        """Capture the record if it is an error or carries an exception."""
        try:
            if record.name.startswith(_IGNORED_LOGGERS):
                return
            rank = _rank_of(record.levelno)
            exc_info = record.exc_info
            if rank < self._emitter.min_rank and not exc_info:
                return
            msg = record.msg
            if isinstance(msg, dict) and "event" in msg:  # structlog's wrap_for_formatter
                context = {k: v for k, v in msg.items() if k not in _RESERVED}
                message: object = msg["event"]
                tags, fingerprint = msg.get("tags"), msg.get("fingerprint")
            else:
                context = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
                if record.args:
                    context["args"] = record.args
                message = msg
                tags = context.pop("tags", None)
                fingerprint = context.pop("fingerprint", None)
            self._emitter.emit(
                rank,
                record.name,
                message,
                context,
                exc_info,
                tags,
                fingerprint,
            )
        except Exception:
            self._emitter.failures += 1


def _rank_of(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return _RANK["critical"]
    if levelno >= logging.ERROR:
        return _RANK["error"]
    if levelno >= logging.WARNING:
        return _RANK["warning"]
    if levelno >= logging.INFO:
        return _RANK["info"]
    return _RANK["debug"]
