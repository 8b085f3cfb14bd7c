"""The background shipper: a thread with its own event loop and aiokafka producer.

The app's threads only append a Capture to a bounded deque (``submit``); the shipper thread
builds, scrubs and encodes the events and sends them with acks=all. When Kafka cannot be
reached, events go to the disk spool and are sent, oldest first, once it can.

In a forked child (a multiprocessing worker, a gunicorn or Celery worker) ``submit`` builds
the event and writes it to the spool at once, in the caller's thread: such children often
leave through ``os._exit`` (or are terminated), where no atexit hook runs. The child's own
thread sends its spool while it lives; what is left when it dies is adopted and sent by
any live process of the same service (its parent starts its thread at the fork for that).

Other small records (heartbeat check-ins) ride along to topics of their own
(``submit_record``): encoded by the caller, kept in a bounded memory queue while Kafka is
down (never spooled), and sent by the same thread and producer.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mendline.analyzers.backoff import Backoff
from mendline.analyzers.grouping.scrubbing import SCRUBBED_HEADER
from mendline.analyzers.policy import signature_headers
from mendline.ingest._topics import errors_producer
from mendline.ingest.app._builder import EventBuilder, occurrences
from mendline.ingest.app._capture import Capture
from mendline.ingest.app._rollup import RollUp, rollup_key
from mendline.ingest.app._spool import Record, Spool, private_dir
from mendline.schemas.errors import ShipperClosed
from mendline.schemas.settings import Settings

__all__ = ["Shipper", "ShipperStats"]

log = logging.getLogger("mendline.ingest")

#: A record of submit_record: topic, key, value.
_TopicRecord = tuple[str, bytes, bytes]

_BATCH = 500
_OUTBOX_MAX = 10_000
_RECORDS_MAX = 1_000  # records of submit_record waiting in memory; the oldest go first
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0
_WARN_EVERY = 60.0
_ADOPT_EVERY = 1.0  # seconds between looks for slots that exited processes left
_ROLLUP_LOOK_EVERY = 0.1  # seconds between looks for roll-up windows that ended


@dataclass
class ShipperStats:
    """Counters in Vector's vocabulary: events received, sent, errored and dropped."""

    #: Events queued to be sent: occurrences sent in full, and rolled-up events.
    received: int = 0
    #: Occurrences counted into a rolled-up event rather than sent themselves.
    rolled_up: int = 0
    sent: int = 0
    spooled: int = 0
    errored: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"queue_full": 0, "spool_full": 0})
    #: Occurrences lost (the dropped events and what they stood for) that no later event
    #: reported, because none was sent after them: known at exit, and logged then.
    unreported: int = 0


class _RateLimitedWarning:
    """Logs a warning at most once per interval, with how often it happened meanwhile."""

    def __init__(self, message: str, every: float = _WARN_EVERY) -> None:
        self._message = message
        self._every = every
        self._last = -every
        self._suppressed = 0

    def __call__(self, count: int = 1) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._suppressed += count
            return
        total, self._suppressed, self._last = self._suppressed + count, 0, now
        log.warning(self._message, total)


class Shipper:
    """Ships ErrorEvents to Kafka from a background thread; never blocks or raises into the app.

    The partition key is the event_id: random, so even one very noisy service spreads over
    every partition, and a re-sent event lands on the partition of its first copy.
    """

    def __init__(self, settings: Settings, builder: EventBuilder) -> None:
        self.settings = settings
        self.builder = builder
        self.stats = ShipperStats()
        self._queue: deque[Capture] = deque()
        self._outbox: deque[Record] = deque()  # built and encoded, waiting for the sender
        self._records: deque[_TopicRecord] = deque()  # submit_record's, waiting for the sender
        self._queue_max = settings.queue_size
        # The app's threads count under it: what a storm rolls up, and what a full queue loses,
        # are exact (``n += 1`` loses increments between threads). Reentrant: a signal
        # handler that shuts down may run while its thread is inside submit.
        self._lock = threading.RLock()
        self._rollup = self._new_rollup()
        self._lost = 0  # lost since the last event built: the next one reports it
        self._flushes_asked = 0  # flushes that asked for the rolled-up counts to be sent
        self._flushes_done = 0
        self._draining_for = 0
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle = False
        self._closing = False
        self._closed = False
        self._flush_deadline = 0.0
        self._done = threading.Event()
        self._warn_queue_full = _RateLimitedWarning(
            "mendline: the error-event queue is full; %d events were dropped"
        )
        self._warn_spool_full = _RateLimitedWarning(
            "mendline: the disk spool is full; the %d oldest events were dropped"
        )
        self._warn_build = _RateLimitedWarning("mendline: %d events could not be built")
        # Signed at send time, in the shipper thread: the app's threads pay nothing for it,
        # and spooled events are signed with the key of the process that sends them.
        key = settings.signing_key
        self._signing_key = key.get_secret_value().encode() if key is not None else None
        rules = builder.scrubber.rules_id
        self._scrubbed_header = [(SCRUBBED_HEADER, rules.encode())] if rules else []
        self._unclean: set[bytes] = set()  # ids of events not clean once cut: no header
        self.thread_ident: int | None = None
        self._forked = False  # True in a forked child: spool first (see the module docstring)
        self._exit_hook_pid = 0
        _register(self)

    @property
    def spool_root(self) -> Path:
        """This service's spool folder: ``<spool_dir>/<service>``, so services never mix."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.builder.service)
        if name.strip(".") == "":  # "", "." and ".." would not be a folder of its own
            name = "service"
        return Path(self.settings.spool_dir).expanduser() / name

    # -- the app's side ----------------------------------------------------------------------
    def submit(self, capture: Capture) -> None:
        """Queue an event for shipping, or count it as a repeat of an error storm (see
        _rollup). Cheap, never blocks; drops (and counts exactly) when the queue is full."""
        if self._closed:
            raise ShipperClosed("this shipper was shut down")
        if self._forked and self._spool_now(capture):
            return
        rollup = self._rollup
        key = rollup_key(capture) if rollup is not None else None
        queue = self._queue
        with self._lock:
            if self._closed:  # shut down meanwhile: its last drain would not see this one
                raise ShipperClosed("this shipper was shut down")
            if (
                key is not None
                and rollup is not None
                and not rollup.admit(key, capture, time.monotonic())
            ):
                self.stats.rolled_up += 1
                return
            full = len(queue) >= self._queue_max
            if full:
                self.stats.dropped["queue_full"] += 1
                self._lost += 1
            else:
                queue.append(capture)
                self.stats.received += 1
        if full:
            self._warn_queue_full()
            return
        self._kick()

    def submit_record(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue an encoded record for ``topic`` (a check-in, say). Cheap, never blocks;
        kept in memory only, the oldest dropped (and counted) beyond a thousand waiting."""
        if self._closed:
            raise ShipperClosed("this shipper was shut down")
        records = self._records
        with self._lock:
            full = len(records) >= _RECORDS_MAX
            if full:
                records.popleft()
                self.stats.dropped["queue_full"] += 1
            records.append((topic, key, value))
            self.stats.received += 1
        if full:
            self._warn_queue_full()
        self._kick()

    def _kick(self) -> None:
        """Start the shipper thread at the first record, else wake it if it sleeps."""
        if self._thread is None:
            self._exit_hook()
            self._start()
        elif self._idle:
            self._wake()

    def _spool_now(self, capture: Capture) -> bool:
        """In a forked child: build the event and write it to the spool before returning,
        so that an ``os._exit`` right after loses nothing. False when there is no spool (the
        event then takes the queue)."""
        spool = self._spool or self._open_spool()
        if spool is None:
            return False
        self.stats.received += 1
        records = self._build([capture])  # reporting what was lost before it, as the thread does
        if records:
            self._to_spool(records)
        self._exit_hook()
        if self._thread is None:
            self._start()
        elif self._idle:
            self._wake()
        return True

    def _wake(self) -> None:
        self._idle = False
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    def _open_spool(self) -> Spool | None:
        """This process's spool, taken at first use; None (said once) when there is none."""
        with self._start_lock:
            if self._spool is None and not self._spool_failed:
                try:
                    root = self.spool_root
                    # MENDLINE_SPOOL_DIR holds every service's folder: created private,
                    # never chmodded if it was there (it may be a folder others use too).
                    private_dir(root.parent, tighten=False)
                    self._spool = Spool(root, self.settings.spool_max_bytes, weigh=occurrences)
                except OSError as exc:
                    self._spool_failed = True
                    log.warning("mendline: no disk spool (%s); events wait in memory only", exc)
            return self._spool

    def _exit_hook(self) -> None:
        """In a process that multiprocessing started, flush at its exit: it leaves through
        ``os._exit`` after running its own finalizers, never through atexit."""
        pid = os.getpid()
        if self._exit_hook_pid == pid:
            return
        self._exit_hook_pid = pid
        util = sys.modules.get("multiprocessing.util")
        process = sys.modules.get("multiprocessing.process")
        if util is None or process is None or process.parent_process() is None:
            return
        util.Finalize(self, _shutdown_quietly, args=(weakref.ref(self),), exitpriority=10)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Send (or spool) what is queued, waiting at most ``timeout`` seconds; idempotent.

        Returns True when everything queued was sent or spooled in time. Later submits raise
        ShipperClosed.
        """
        if self._closed:
            return self._done.is_set()
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        with self._lock:  # a submit under way is in the queue before, or refused after
            self._closed = True
        if self._thread is None:
            if not self._queue and not self._records:
                self._done.set()
                return True
            self._start()
        self._flush_deadline = time.monotonic() + timeout
        self._closing = True
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)
        finished = self._done.wait(timeout + 1.0)
        return finished and not self._queue

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event submitted so far was sent to Kafka (or given up: dropped or
        unbuildable); False on timeout."""
        deadline = time.monotonic() + timeout
        wanted = 0
        with self._lock:  # a window collected before this is in target; after it, drained
            if self._rollup is not None and len(self._rollup):
                self._flushes_asked += 1  # the shipper thread sends the rolled-up counts now
                wanted = self._flushes_asked
            target = self.stats.received
        if wanted:
            self._kick()
        while time.monotonic() < deadline:
            stats = self.stats
            settled = stats.sent + stats.errored + stats.dropped["spool_full"]
            if (
                settled >= target
                and self._flushes_done >= wanted
                and not self._queue
                and not self._outbox
                and not self._records
                and self._in_flight == 0
                and not self._spool_records()
            ):
                return True
            time.sleep(0.01)
        return False

    # -- the shipper thread --------------------------------------------------------------------
    _in_flight = 0
    _spool: Spool | None = None
    _spool_failed = False
    _producer: Any = None
    _healthy: bool | None = None
    _adopted_at_close = False
    _next_rollup_look = 0.0

    def _count_lost(self, lost: int) -> None:
        """Events built and then dropped: the next event built reports them."""
        with self._lock:
            self._lost += lost

    def _new_rollup(self) -> RollUp | None:
        window = self.settings.rollup_window
        return RollUp(window, self.settings.rollup_full) if window > 0 else None

    def _spool_records(self) -> int:
        spool = self._spool
        return len(spool) if spool is not None else 0

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="mendline-shipper", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        self.thread_ident = threading.get_ident()
        try:
            asyncio.run(self._main())
        except BaseException:  # the thread must end quietly, whatever happened
            log.exception("mendline: the shipper thread stopped")
        finally:
            self._done.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._outbox = deque()
        self._unacked: list[Record] = []
        self._healthy: bool | None = None  # None until the first connection attempt ends
        self._retry_at = 0.0
        self._backoff = Backoff(_BACKOFF_MIN, _BACKOFF_MAX)
        self._producer = None
        self._next_adoption = 0.0
        self._open_spool()
        sender = asyncio.create_task(self._supervised_send_loop())
        try:
            await self._intake_loop()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            # A batch cut off mid-send may or may not have arrived: keep it (at least once).
            self._outbox.extendleft(reversed(self._unacked))
            self._spill_to_spool()
            with self._lock:
                self.stats.unreported = self._lost
            if self._lost:
                log.warning(
                    "mendline: %d events were lost after the last one sent; no event reports them",
                    self._lost,
                )
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._producer.stop(), 2.0)
            if self._spool is not None:
                self._spool.close()

    async def _intake_loop(self) -> None:
        """Build and encode queued captures; hand them to the outbox or the spool."""
        assert self._wakeup is not None
        while True:
            moved = self._take()
            # Kafka failing at exit: what is left goes to the spool now (the finally of
            # _main), for the next start, rather than after the whole shutdown timeout.
            if self._closing and (
                self._healthy is False
                or self._everything_sent()
                or time.monotonic() >= self._flush_deadline
            ):
                return
            if moved:
                await asyncio.sleep(0)  # let the sender and aiokafka run between batches
                continue
            self._idle = True
            if self._queue:  # raced with a submit that saw _idle False
                self._idle = False
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 0.5)
            self._idle = False

    def _everything_sent(self) -> bool:
        return (
            not self._queue
            and not (self._rollup is not None and len(self._rollup))
            and not self._outbox
            and not self._records
            and self._in_flight == 0
            and (not self._spool_records() or self._healthy is False)
            and (self._adopted_at_close or self._spool is None or self._healthy is False)
        )

    def _take(self) -> int:
        """Move up to one batch from the app's queue, and the rolled-up events of the windows
        that ended, to the outbox or the spool."""
        queue = self._queue
        captures = self._rolled_up()
        while queue and len(captures) < _BATCH:
            captures.append(queue.popleft())
        records = self._build(captures)
        if records:
            self._route(records)
        self._flushes_done = self._draining_for  # what the flushes asked for is routed
        return len(records)

    def _rolled_up(self) -> list[Capture]:
        """The rolled-up events due: those of the windows that ended (looked at ten times a
        second), or all of them at exit and when a flush asked."""
        rollup = self._rollup
        asked = self._flushes_asked
        if rollup is None or not len(rollup):
            self._draining_for = asked  # nothing left for them to wait for
            return []
        now = time.monotonic()
        drain = self._closing or asked > self._flushes_done
        if not drain and now < self._next_rollup_look:
            return []
        self._next_rollup_look = now + _ROLLUP_LOOK_EVERY
        with self._lock:
            captures = rollup.drain() if drain else rollup.closed(now)
            self.stats.received += len(captures)
        self._draining_for = asked
        return captures

    def _build(self, captures: list[Capture]) -> list[Record]:
        """Build and encode captures; the first one built reports what was lost before it."""
        records: list[Record] = []
        for capture in captures:
            if not records and self._lost:
                with self._lock:
                    capture.lost, self._lost = capture.lost + self._lost, 0
            try:
                event, data, clean = self.builder.encode_checked(capture)
                key = event["event_id"].encode()
                records.append((key, data))
                if not clean:  # sent without the header: the consumer scrubs it again
                    if len(self._unclean) >= _RECORDS_MAX:
                        self._unclean.clear()  # they were sent long ago, or spooled
                    self._unclean.add(key)
            except Exception:
                self.stats.errored += 1
                self._warn_build()
                log.debug("mendline: building an event failed", exc_info=True)
                if capture.lost:  # told by the next one instead
                    self._count_lost(capture.lost)
                    capture.lost = 0
        return records

    def _route(self, records: list[Record]) -> None:
        spool = self._spool
        if spool is not None and (len(spool) or self._healthy is False):
            self._to_spool(records)
        elif spool is not None and len(self._outbox) + len(records) > _OUTBOX_MAX:
            # Kafka is slower than the app: keep order by spooling the outbox first.
            self._to_spool([*self._outbox, *records])
            self._outbox.clear()
        else:
            self._outbox.extend(records)
            excess = len(self._outbox) - _OUTBOX_MAX
            if spool is None and excess > 0:  # no disk to spill to: the oldest go
                dropped = [self._outbox.popleft() for _ in range(excess)]
                self.stats.dropped["spool_full"] += excess
                self._count_lost(sum(occurrences(value) for _, value in dropped))
                self._warn_spool_full(excess)
        if self._wakeup is not None:
            self._wakeup.set()

    def _to_spool(self, records: list[Record], front: bool = False) -> None:
        spool = self._spool
        if spool is None:  # no disk: keep them in memory, oldest first
            if front:
                self._outbox.extendleft(reversed(records))
            else:
                self._outbox.extend(records)
            return
        weight = spool.dropped_weight
        try:
            lost = spool.push_front(records) if front else spool.append(records)
        except OSError as exc:
            log.warning("mendline: writing to the spool failed (%s); keeping events in memory", exc)
            self._outbox.extend(records)
            return
        self.stats.spooled += len(records)
        if lost:
            self.stats.dropped["spool_full"] += lost
            self._count_lost(spool.dropped_weight - weight)  # occurrences, not records
            self._warn_spool_full(lost)

    def _spill_to_spool(self) -> None:
        """At exit: whatever was not sent goes to disk, for the next process to send."""
        leftovers = list(self._outbox)
        self._outbox.clear()
        captures = self._rolled_up() if self._closing else []
        captures.extend(self._queue.popleft() for _ in range(len(self._queue)))
        leftovers.extend(self._build(captures))
        if leftovers and self._spool is not None:
            self._to_spool(leftovers)

    async def _supervised_send_loop(self) -> None:
        """The send loop, started again should a bug of ours end it: the thread lives on."""
        while True:
            try:
                await self._send_loop()
            except Exception:
                log.exception("mendline: the shipper's send loop failed; restarting it")
                self._in_flight = 0
                await asyncio.sleep(1.0)

    async def _send_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            if self._producer is None or (not self._healthy and time.monotonic() < self._retry_at):
                if self._producer is None and time.monotonic() >= self._retry_at:
                    await self._connect()
                    continue
                await asyncio.sleep(min(0.1, max(0.0, self._retry_at - time.monotonic())))
                continue
            spool = self._spool
            if spool is not None and len(spool):
                batch = spool.peek(_BATCH)
                self._in_flight = len(batch)
                failed = await self._produce(batch)
                spool.consume_peeked()
                self._in_flight = 0
                if failed:
                    self._to_spool(failed, front=True)
                continue
            if not self._outbox and spool is not None and self._adoption_due():
                self._next_adoption = time.monotonic() + _ADOPT_EVERY
                self._adopted_at_close = self._closing
                if self._adopt(spool):
                    continue
            if self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(_BATCH, len(self._outbox)))]
                self._in_flight = len(batch)
                self._unacked = batch
                failed = await self._produce(batch, built_here=True)
                self._unacked = []
                self._in_flight = 0
                if failed:
                    rest = list(self._outbox)
                    self._outbox.clear()
                    self._to_spool([*failed, *rest], front=True)
                continue
            if self._records:
                await self._send_records()
                continue
            await asyncio.sleep(0.005 if self._closing else 0.05)

    async def _send_records(self) -> None:
        """Send a batch of submit_record's records; those that fail wait in front."""
        records = self._records
        batch = [records.popleft() for _ in range(min(_BATCH, len(records)))]
        self._in_flight = len(batch)
        failed: list[_TopicRecord] = []
        for topic in dict.fromkeys(topic for topic, _, _ in batch):
            mine = [(key, value) for one, key, value in batch if one == topic]
            failed.extend((topic, key, value) for key, value in await self._produce(mine, topic))
        self._in_flight = 0
        records.extendleft(reversed(failed))

    def _adoption_due(self) -> bool:
        # Once more at exit: a parent often exits right after its children did.
        if self._closing and not self._adopted_at_close:
            return True
        return time.monotonic() >= self._next_adoption

    def _adopt(self, spool: Spool) -> int:
        weight = spool.dropped_weight
        try:
            adopted = spool.adopt_orphans()
        except OSError as exc:
            log.debug("mendline: adopting spooled events failed (%s)", exc)
            return 0
        finally:
            if spool.dropped_weight > weight:  # the cap pushed some out to take them
                self._count_lost(spool.dropped_weight - weight)
        if adopted:
            log.info("mendline: sending %d events that exited processes spooled", adopted)
        return adopted

    async def _connect(self) -> None:
        producer = errors_producer(
            self.settings,
            client_id="mendline-shipper",
            request_timeout_ms=int(self.settings.kafka_request_timeout * 1000),
            linger_ms=10,
            # Large batches: under load a produce request carries hundreds of events, so the
            # shipper thread needs few round trips (each costs a GIL hand-over).
            max_batch_size=1024 * 1024,
            max_request_size=2 * 1024 * 1024,
        )
        try:
            await producer.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            self._mark_down(exc)
            return
        self._producer = producer
        self._mark_up()

    async def _produce(
        self, batch: list[Record], topic: str | None = None, *, built_here: bool = False
    ) -> list[Record]:
        """Send a batch (to the errors topic unless ``topic``) and wait for the acks; returns
        the records that failed, in order. ``built_here``: events this process built with its
        builder and kept in memory since."""
        producer = self._producer
        # The header lets a consumer with the same rules skip its own check: only for events
        # this builder scrubbed (not those of a spool, which may be another process's, made
        # under other rules) and that stayed clean when cut to their limits. Other records
        # (check-ins) are not events.
        scrubbed = self._scrubbed_header if built_here else []
        unclean = self._unclean
        topic = topic or self.settings.errors_topic
        futures: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        signing_key, service = self._signing_key, self.builder.service
        try:
            for key, value in batch:
                trusted = scrubbed if key not in unclean else []
                headers = (
                    [*trusted, *signature_headers(signing_key, service, value)]
                    if signing_key
                    else trusted or None
                )
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        except Exception as exc:
            error = exc
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [
            rec for rec, res in zip(batch, results, strict=False) if isinstance(res, BaseException)
        ]
        failed.extend(batch[len(futures) :])
        sent = len(batch) - len(failed)
        self.stats.sent += sent
        if failed:
            first = error or next(r for r in results if isinstance(r, BaseException))
            self._mark_down(first)
        elif sent:
            self._mark_up()
        return failed

    def _mark_up(self) -> None:
        if self._healthy is False:
            log.info("mendline: Kafka at %s is reachable", self.settings.kafka_bootstrap)
        self._healthy = True
        self._backoff.reset()

    def _mark_down(self, exc: BaseException) -> None:
        if self._healthy is not False:
            log.warning(
                "mendline: Kafka at %s is unreachable (%s: %s); spooling events to %s",
                self.settings.kafka_bootstrap,
                type(exc).__name__,
                exc,
                self.spool_root,
            )
        self._healthy = False
        self._retry_at = time.monotonic() + self._backoff.next()

    # -- fork safety ---------------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        """A forked child starts with an empty queue and its own thread, slot and producer;
        it spools first (see the module docstring)."""
        if self._spool is not None:
            self._spool.abandon()
        # The parent's producer, connections and loop are the parent's: never used, stopped
        # or collected here (their finalizers would complain, or close the parent's sockets).
        _inherited.extend(o for o in (self._producer, self._loop) if o is not None)
        self._producer = None
        self._healthy = None
        self._forked = True
        self._spool = None
        self._spool_failed = False
        self._queue = deque()
        # The parent's counts are the parent's to send; a lock another thread held at the
        # fork stays held here.
        self._lock = threading.RLock()
        self._rollup = self._new_rollup()
        self._lost = 0
        self._flushes_asked = self._flushes_done = self._draining_for = 0
        self._outbox = deque()  # the parent sends what it had built
        self._records = deque()
        self._start_lock = threading.Lock()
        self._thread = None
        self._loop = None
        self._wakeup = None
        self._idle = False
        self._in_flight = 0
        self._done = threading.Event()
        self.thread_ident = None
        self.stats = ShipperStats()
        if self._closing:
            self._closed = True


_shippers: weakref.WeakSet[Shipper] = weakref.WeakSet()
_inherited: list[object] = []  # what forked children must neither use nor let be collected


def _register(shipper: Shipper) -> None:
    _shippers.add(shipper)


def _after_fork() -> None:
    for shipper in list(_shippers):
        shipper._after_fork_in_child()


def _after_fork_in_parent() -> None:
    """A parent's shipper runs from the first fork on: it sends what children that left
    through ``os._exit`` had spooled, even when the parent itself logs no error."""
    for shipper in list(_shippers):
        if not shipper._closed and shipper._thread is None:
            with contextlib.suppress(Exception):
                shipper._start()


def _shutdown_quietly(ref: weakref.ref[Shipper]) -> None:
    shipper = ref()
    if shipper is not None:
        with contextlib.suppress(Exception):
            shipper.shutdown()


def _at_exit() -> None:
    for shipper in list(_shippers):
        with contextlib.suppress(Exception):
            shipper.shutdown()


os.register_at_fork(after_in_child=_after_fork, after_in_parent=_after_fork_in_parent)
atexit.register(_at_exit)
