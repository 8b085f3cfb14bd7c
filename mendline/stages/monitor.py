"""The monitor stage: the health checks that are due, each slot run once across every monitor;
heartbeats judged on the check-ins' own clock; results, states, issues and alerts stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from mendline.analyzers.health import (
    RECOVERY_HOLD,
    SELF_DSN_ENV,
    SETTLE_MARGIN,
    CheckSet,
    ClockGuard,
    active_window,
    checkins_since,
    heartbeat_result,
    judge_heartbeat,
    judged_until_after,
    load_checks,
    probe_result,
    self_checks,
)
from mendline.ingest import (
    CheckinConsumer,
    encode_checkin,
    errors_producer,
    new_checkin,
)
from mendline.ingest.probes import HttpClients, run_check
from mendline.schemas.checks import (
    CLOCK_CHECK,
    Check,
    CheckResult,
    HeartbeatCheck,
    Observation,
)
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import (
    ALL_ENVIRONMENTS,
    CheckinStore,
    DueSlot,
    HealthStore,
    PruneResult,
    connect_checkins,
    connect_health,
    is_outage,
)
from mendline.stages._telemetry import StageContext
from mendline.stages._topics import ensure_stage_topics
from mendline.stages._waiting import (
    connect_patiently,
    keep_renewing,
    outage_backoff,
    outage_over,
    pause_for_outage,
    wait_any,
)

__all__ = [
    "CheckinReader",
    "MonitorStats",
    "MonitorWorker",
    "Pruned",
    "check",
    "checks_of",
    "prune_health",
    "run",
]

log = logging.getLogger("mendline.monitor")

# Results that could not be written (the database is out) wait in memory, at most this many;
# beyond, the oldest go (their slots are run again once their lease runs out).
_UNRECORDED_MAX = 10_000
# A check that outlives its own timeout by this much is abandoned as timed out.
_HARD_MARGIN = 5.0
# A clock tick not sent within this is given up (the next one supersedes it); it bounds
# the wait for the producer to stop while the broker is out, too.
_TICK_TIMEOUT = 5.0
# No tick sent for this many tick intervals: the heartbeats are not judged (the monitor does
# not move their clock, or cannot tell the check-ins topic's partitions), and /readyz says so.
_UNTICKED_TICKS = 5
# How often a reason the heartbeats are not judged is logged again while it lasts.
_RETELL_EVERY = 600.0
# The health data past its retention is pruned this long after a monitor starts, then daily.
_PRUNE_FIRST = 60.0
_PRUNE_EVERY = 86400.0


@dataclass
class MonitorStats:
    """What a monitor did: runs, their results, what they changed, what waits to be written."""

    runs: int = 0
    failures: int = 0
    recorded: int = 0
    already_recorded: int = 0
    transitions: dict[str, int] = field(default_factory=dict)
    heartbeat_verdicts: int = 0
    reloads: int = 0
    unrecorded: int = 0


@dataclass(frozen=True)
class Pruned:
    """What pruning the health data removed (``results.dry_run``: would remove): the days
    of results and the rollups (``results``), and the check-ins (None: another monitor
    was pruning them)."""

    results: PruneResult
    checkins: int | None
    #: Days kept of results, per-minute rollups and check-ins; of hourly and daily rollups.
    raw_days: int
    rollup_days: int

    def describe(self) -> str:
        """What was done, in a line for people."""
        verb = "would remove" if self.results.dry_run else "removed"
        skipped = "skipped (another prune was running)"
        if self.results.skipped:
            results = f"results {skipped}"
        else:
            days = ", ".join(_day_of(p) for p in self.results.partitions) or "none"
            results = (
                f"{verb} {len(self.results.partitions)} day(s) of results ({days}) older than"
                f" {self.raw_days} days, {self.results.rollups} rollup row(s) (minutes older"
                f" than {self.raw_days} days, hours and days older than {self.rollup_days})"
            )
        checkins = (
            f"check-ins {skipped}"
            if self.checkins is None
            else f"{verb} {self.checkins} check-in(s) older than {self.raw_days} days"
        )
        return f"{results}; {checkins}"


async def prune_health(
    settings: Settings,
    health: HealthStore,
    checkins: CheckinStore,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Remove the health data past its retention (``dry_run``: only count it): the days of
    results and per-minute rollups older than MENDLINE_CHECK_RESULTS_RETENTION_DAYS, the
    hourly and daily rollups older than MENDLINE_CHECK_ROLLUPS_RETENTION_DAYS, and the
    check-ins as old as the results, but those a registered heartbeat still needs to be
    judged (however old: a weekly job's last runs, a stream clock far behind)."""
    raw_days = settings.check_results_retention_days
    rollup_days = settings.check_rollups_retention_days
    results = await health.prune(now, raw_days, rollup_days, dry_run=dry_run)
    keep: dict[str, datetime | None] = {}
    for name, (heartbeat, judged) in (await health.heartbeats()).items():
        if heartbeat is None or judged is None:
            keep[name] = None  # it cannot be told what it needs: all of them
        else:
            keep[name] = checkins_since(heartbeat, judged_until_after(heartbeat, judged))
    older_than = (now or datetime.now(UTC)) - timedelta(days=raw_days)
    removed = await checkins.prune(older_than, keep=keep, dry_run=dry_run)
    return Pruned(results, removed, raw_days, rollup_days)


def _day_of(partition: str) -> str:
    """``check_results_raw_20261120`` as ``2026-11-20``."""
    day = partition.rsplit("_", 1)[-1]
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def checks_of(settings: Settings) -> CheckSet:
    """The checks to run: the checks file's (none when MENDLINE_CHECKS_FILE is unset) and,
    unless MENDLINE_SELF_CHECKS is off, mendline's own; ConfigError for a bad file."""
    mine = load_checks(settings.checks_file) if settings.checks_file is not None else None
    own = self_checks(settings) if settings.self_checks else []
    checks = (*(mine.checks if mine else ()), *own)
    lines = dict(mine.lines) if mine else {}
    source = mine.source if mine else "the built-in checks"
    return CheckSet(tuple(checks), source, lines)


def check(settings: Settings) -> None:
    """ConfigError for a checks file that is not valid, before any stage starts."""
    checks_of(settings)


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """The monitor stage until ``stop``: the checks that are due, the check-ins consumer and
    the heartbeats; the checks running are finished (or abandoned at their timeout). Ready
    once it holds its database pools, its check-ins consumer reads and the heartbeats are
    judged (``MonitorWorker.waiting_for``); each result is counted in ``context``."""
    checks = checks_of(settings)
    context.not_ready("connecting to PostgreSQL")
    health = await connect_patiently(lambda: connect_health(settings), stop)
    if health is None:
        return
    checkins = await connect_patiently(lambda: connect_checkins(settings), stop)
    if checkins is None:
        await health.close()
        return
    worker = MonitorWorker(settings, health, checkins, checks, context=context)
    worker.topics_ensured = await _ensure_checkins_topic(settings)
    reader = CheckinReader(settings, checkins)
    context.ready_when(lambda: worker.waiting_for() or reader.waiting_for())
    reading = asyncio.create_task(reader.run(stop))
    log.info("mendline: monitor %s started: %d checks", worker.owner, len(checks.checks))
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await asyncio.gather(reading, return_exceptions=True)
        await health.close()
        await checkins.close()
    s = worker.stats
    log.info(
        "mendline: monitor ran %d checks (%d failed), %d results recorded, transitions %s",
        s.runs,
        s.failures,
        s.recorded,
        dict(sorted(s.transitions.items())) or "none",
    )


async def _ensure_checkins_topic(settings: Settings) -> bool:
    """Create the check-ins topics where missing, before the consumer subscribes (a broker
    that creates topics on first use would give the check-ins topic several partitions, and
    heartbeats are judged only on one); whether that was done. Kafka out or the right
    refused: said, and the monitor goes on (its ticks try again, and it checks the partitions
    before judging heartbeats)."""
    topics = (settings.checkins_topic, settings.checkins_dlq_topic)
    return await ensure_stage_topics(settings, topics, timeout=_TICK_TIMEOUT * 3)


class CheckinReader:
    """The monitor's check-ins consumer, kept running: one that fails (a fault it does not
    wait out, a bug) is logged and started again after a backoff, until ``stop``; while it
    is down, connecting or waiting out an outage, the stream clock stands still, and
    ``waiting_for`` says so."""

    def __init__(self, settings: Settings, store: CheckinStore) -> None:
        self.settings = settings
        self.store = store
        #: Times the consumer failed and was started again.
        self.restarts = 0
        self._backoff = outage_backoff(settings.outage_retry_max)
        self._down: str | None = None
        self._consumer: CheckinConsumer | None = None

    def waiting_for(self) -> str | None:
        """None while the consumer is in its group and reading; else what it waits for."""
        if self._down is not None:
            return self._down
        if self._consumer is None:
            return "the check-ins consumer is not started yet"
        waiting = self._consumer.waiting_for()
        return None if waiting is None else f"the check-ins consumer is {waiting}"

    async def run(self, stop: asyncio.Event) -> None:
        """Consume check-ins until ``stop``, starting the consumer again when it fails."""
        while not stop.is_set():
            consumer = CheckinConsumer(self.settings, self.store)
            # Down no more: the new consumer says what it waits for until it is up.
            self._consumer, self._down = consumer, None
            try:
                await consumer.run(stop)
                if stop.is_set():
                    return
                failure = "it stopped by itself"
                log.error("mendline: the check-ins consumer stopped; starting it again")
            except Exception as exc:
                failure = type(exc).__name__  # for /readyz: the log has the rest
                log.exception("mendline: the check-ins consumer failed; starting it again")
            if consumer.stats.batches:  # it had been working: a new fault, short waits again
                self._backoff.reset()
            self.restarts += 1
            self._down = f"the check-ins consumer is down ({failure})"
            await wait_any(stop, None, self._backoff.next())


class MonitorWorker:
    """One ``mendline monitor``; any number run side by side.

    Each pass claims the slots that are due (``FOR UPDATE SKIP LOCKED`` and a lease in
    PostgreSQL: each slot runs once across every monitor, and a killed monitor's slot is run
    by another when its lease runs out) up to ``monitor_concurrency`` running at once, and
    runs each as a task with a hard limit of its timeout; a result and the state change it
    causes are recorded in one transaction with a compare-and-set, so two monitors never
    alert twice. Every ``monitor_tick_interval`` it sends a clock tick to the check-ins topic
    and judges the heartbeats on the check-ins' clock. The checks file is read again when it
    changes or on SIGHUP; checks keep their state and history by name.
    """

    def __init__(
        self,
        settings: Settings,
        health: HealthStore,
        checkins: CheckinStore,
        checks: CheckSet,
        *,
        owner: str | None = None,
        environ: Mapping[str, str] | None = None,
        context: StageContext | None = None,
        settle: timedelta = SETTLE_MARGIN,
        recovery_hold: float = RECOVERY_HOLD,
    ) -> None:
        self.settings = settings
        #: How far past a slot's deadline the stream clock goes before the slot is judged.
        self.settle = settle
        #: Where each result is counted (mendline_check_results_total and its duration).
        self.context = context
        self._outage = outage_backoff(settings.outage_retry_max)
        self.health = health
        self.checkins = checkins
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = MonitorStats()
        # The self checks read mendline's own database through a variable of their own.
        self.environ = {
            **(os.environ if environ is None else environ),
            SELF_DSN_ENV: settings.database_url.get_secret_value(),
        }
        self._checks = {c.name: c for c in checks.checks}
        self._source = checks
        self._synced = False
        self._running: dict[str, asyncio.Task[None]] = {}
        self._unrecorded: deque[tuple[CheckResult, Check]] = deque(maxlen=_UNRECORDED_MAX)
        self._judged: dict[str, datetime | None] = {}
        self._reload = asyncio.Event()
        self._file_stamp = _stamp(settings.checks_file)
        self._looked_at_file = time.monotonic()
        self._ticked = 0.0
        #: Whether the check-ins topics were created where missing (else each tick tries).
        self.topics_ensured = False
        # When a tick was last sent (from the start: none yet).
        self._tick_sent = time.monotonic()
        self._ticking: asyncio.Task[None] | None = None
        self._producing = False
        # The check-ins topic's partitions as the last tick found them (None: not known yet).
        self._partitions: int | None = None
        self._told_at: float | None = None
        # After the clock stood still (and after the start: it may have), where it stood is
        # judged by for ``recovery_hold`` seconds more.
        self._clock = ClockGuard(settings.monitor_tick_interval, recovery_hold)
        self._http: HttpClients | None = None

    def waiting_for(self) -> str | None:
        """None while the monitor reaches its database and judges its heartbeats; else what
        it waits out, or why the heartbeats are not judged."""
        if self._outage.attempts:
            return "waiting out an outage of PostgreSQL"
        return self.heartbeats_unjudged()

    def heartbeats_unjudged(self) -> str | None:
        """Why the heartbeat checks are not judged (None: they are, or there are none): the
        check-ins topic has several partitions, or no clock tick was sent for a long while."""
        if not any(isinstance(c, HeartbeatCheck) for c in self._checks.values()):
            return None
        topic = self.settings.checkins_topic
        if self._partitions is not None and self._partitions != 1:
            return (
                f"heartbeats not judged: the check-ins topic {topic} has {self._partitions}"
                " partitions, not one (recreate it with one: `mendline topics ensure` creates"
                " it so; then restart the monitors)"
            )
        unticked = time.monotonic() - self._tick_sent
        if unticked > _UNTICKED_TICKS * self.settings.monitor_tick_interval:
            return (
                f"heartbeats not judged: no clock tick sent to the check-ins topic {topic}"
                f" for {unticked:.0f} s (see the log)"
            )
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Claim, run and record until ``stop``; checks running are finished first."""
        backoff = self._outage
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)  # main thread only
        producer = errors_producer(
            self.settings,
            client_id="mendline-monitor",
            request_timeout_ms=int(_TICK_TIMEOUT * 1000),
        )
        renewer = asyncio.create_task(
            keep_renewing(
                self.settings.monitor_lease,
                lambda: tuple(self._running),
                lambda names: self.health.renew(self.owner, names, self.settings.monitor_lease),
                "check slots",
            )
        )
        pruning = asyncio.create_task(self.prune_daily(stop))
        async with HttpClients() as http:
            self._http = http
            try:
                while not stop.is_set():
                    try:
                        await self.pass_once(producer)
                        outage_over(backoff, log)
                    except Exception as exc:
                        await pause_for_outage(exc, backoff, stop, log)
                        continue
                    await wait_any(stop, self._reload, self.settings.monitor_poll_interval)
            finally:
                renewer.cancel()
                pruning.cancel()
                if self._ticking is not None:
                    self._ticking.cancel()
                    await asyncio.gather(self._ticking, return_exceptions=True)
                await self._finish_running()
                with contextlib.suppress(Exception):
                    await self._write_unrecorded()
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def pass_once(self, producer: AIOKafkaProducer | None = None) -> None:
        """Reload the checks if they changed, write what waits, start the due checks, and
        on the tick judge the heartbeats (once a tick sent with ``producer`` has found the
        check-ins topic to have one partition)."""
        if not self._synced or self._file_changed():
            await self._sync()
        await self._write_unrecorded()
        free = self.settings.monitor_concurrency - len(self._running)
        if free > 0:
            due = await self.health.claim_due(self.owner, self.settings.monitor_lease, free)
            for slot in due:
                if slot.check not in self._running:
                    task = asyncio.create_task(self._run_slot(slot))
                    self._running[slot.check] = task
                    task.add_done_callback(self._forget)
        if time.monotonic() - self._ticked >= self.settings.monitor_tick_interval:
            self._ticked = time.monotonic()
            if producer is not None and (self._ticking is None or self._ticking.done()):
                # Beside the pass, one at a time: with the broker out, a send waits out its
                # timeout, and the checks must not wait with it.
                self._ticking = asyncio.create_task(self._tick(producer))
            await self.judge_heartbeats()

    async def prune_daily(
        self, stop: asyncio.Event, *, first: float = _PRUNE_FIRST, every: float = _PRUNE_EVERY
    ) -> None:
        """Until ``stop``: prune the health data past its retention ``first`` seconds from
        now, then every ``every`` seconds (``prune_health``; of many monitors, one at a
        time), saying what it removed. A failure (an outage) waits for the next time."""
        wait = first
        while True:
            await wait_any(stop, None, wait)
            if stop.is_set():
                return
            wait = every
            try:
                pruned = await prune_health(self.settings, self.health, self.checkins)
            except Exception as exc:
                log.warning("mendline: health data not pruned (next try in %g s): %s", every, exc)
                continue
            log.info("mendline: health data pruned: %s", pruned.describe())

    def _forget(self, task: asyncio.Task[None]) -> None:
        for name, running in list(self._running.items()):
            if running is task:
                del self._running[name]

    # -- the checks file ---------------------------------------------------------------------

    def _file_changed(self) -> bool:
        reload = self._reload.is_set()
        self._reload.clear()
        every = self.settings.checks_reload_interval
        if not reload and time.monotonic() - self._looked_at_file < every:
            return False
        self._looked_at_file = time.monotonic()
        stamp = _stamp(self.settings.checks_file)
        # Read on SIGHUP or not, the file as it is now is read once: its stamp is taken too,
        # so a bad edit is told once, not again when the stamp is next looked at.
        changed = stamp != self._file_stamp
        self._file_stamp = stamp
        return reload or changed

    async def _sync(self) -> None:
        if self._synced:
            try:
                checks = checks_of(self.settings)
            except Exception as exc:  # a bad edit: keep running the checks we have
                log.error("mendline: the checks file was not reloaded: %s", exc)
                return
            self._source = checks
            self._checks = {c.name: c for c in checks.checks}
            self.stats.reloads += 1
            # Synced only once the registry has them: if the database is out now, the next
            # pass syncs these (the file is not changed again, so it would not look again).
            self._synced = False
        synced = await self.health.sync_checks(list(self._checks.values()))
        self._synced = True
        # Where judging resumes is read again from the store: a check back after being
        # retired resumes from its return, not over its absence; a changed one as stored.
        for name in (*synced.retired, *synced.restored, *synced.changed):
            self._judged.pop(name, None)
        changes = {
            "added": synced.added,
            "changed": synced.changed,
            "retired": synced.retired,
            "restored": synced.restored,
        }
        said = ", ".join(f"{what} {', '.join(names)}" for what, names in changes.items() if names)
        if said:
            log.info("mendline: checks synced: %s", said)

    # -- probed checks -----------------------------------------------------------------------

    async def _run_slot(self, slot: DueSlot) -> None:
        check = self._checks.get(slot.check)
        if check is None or isinstance(check, HeartbeatCheck):
            return  # retired meanwhile: its lease runs out, nothing is recorded
        started_at = datetime.now(UTC)
        began = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout + _HARD_MARGIN):
                result = await run_check(
                    check, slot.scheduled_at, self.settings, self.environ, http=self._http
                )
        except TimeoutError:
            stuck = Observation(
                error=f"the check did not finish within its timeout ({check.timeout:g} s)",
                error_kind="timeout",
            )
            elapsed = time.monotonic() - began
            result = probe_result(check, slot.scheduled_at, started_at, elapsed, stuck)
        self.stats.runs += 1
        self.stats.failures += 0 if result.success else 1
        await self._record(result, check)

    async def _record(self, result: CheckResult, check: Check) -> None:
        try:
            await self._write(result, check)
        except Exception as exc:
            if not is_outage(exc):
                log.exception("mendline: the result of %s could not be recorded", check.name)
                return
            self._unrecorded.append((result, check))
            self.stats.unrecorded = len(self._unrecorded)
            log.warning("mendline: PostgreSQL unavailable; %s's result waits", check.name)

    async def _write(self, result: CheckResult, check: Check) -> None:
        maintenance = active_window(check.maintenance, result.scheduled_at) is not None
        outcome = await self.health.record(result, check, self.owner, in_maintenance=maintenance)
        if not outcome.stored:
            self.stats.already_recorded += 1
            return
        # Counted by the monitor that stored it: two monitors judging the same heartbeat slot
        # count it once.
        self.stats.recorded += 1
        if isinstance(check, HeartbeatCheck):
            self.stats.heartbeat_verdicts += 1
        if self.context is not None:
            self.context.count_check(result)
        if outcome.transition is not None:
            counts = self.stats.transitions
            counts[outcome.transition] = counts.get(outcome.transition, 0) + 1
            log.info(
                "mendline: %s is %s (%s)",
                check.name,
                outcome.transition,
                "; ".join(outcome.reasons),
            )

    async def _write_unrecorded(self) -> None:
        while self._unrecorded:
            result, check = self._unrecorded[0]
            await self._write(result, check)  # an outage raises: the rest waits
            self._unrecorded.popleft()
            self.stats.unrecorded = len(self._unrecorded)

    async def _finish_running(self) -> None:
        if not self._running:
            return
        _, late = await asyncio.wait(list(self._running.values()), timeout=_HARD_MARGIN * 2)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    # -- heartbeats --------------------------------------------------------------------------

    async def _tick(self, producer: AIOKafkaProducer) -> None:
        """A clock tick on the check-ins topic: read after every check-in written before
        it, it moves the stream clock to now once those are stored."""
        if not self.topics_ensured:  # before a send makes it with the broker's partitions
            self.topics_ensured = await _ensure_checkins_topic(self.settings)
        tick = new_checkin(CLOCK_CHECK, "ok", environment=ALL_ENVIRONMENTS)
        key, value = encode_checkin(tick)
        try:
            if not self._producing:
                await producer.start()
                self._producing = True
            await producer.send_and_wait(self.settings.checkins_topic, value, key=key)
            # From the producer's metadata (asked again every few minutes): no round trip.
            partitions = await producer.partitions_for(self.settings.checkins_topic)
        except Exception as exc:  # Kafka down: the clock waits, so nothing is judged missed
            log.warning("mendline: no clock tick sent to Kafka: %s", exc)
            return
        self._partitions = len(partitions)
        self._tick_sent = time.monotonic()

    def _one_partition(self) -> bool:
        """Whether the check-ins topic is known to have one partition, as the stream clock
        needs (a tick read means every check-in sent before it is stored); with more, says
        so, again every _RETELL_EVERY seconds while it lasts."""
        if self._partitions is None:
            return False
        if self._partitions == 1:
            self._told_at = None
            return True
        if self._told_at is None or time.monotonic() - self._told_at >= _RETELL_EVERY:
            self._told_at = time.monotonic()
            log.error(
                "mendline: the check-ins topic %s has %d partitions, not one: heartbeats are"
                " not judged (their clock needs check-ins read in order). Recreate it with one"
                " partition (`mendline topics ensure` creates it so) and restart the monitors",
                self.settings.checkins_topic,
                self._partitions,
            )
        return False

    async def judge_heartbeats(self) -> None:
        """Judge every heartbeat check's slots that the stream clock has passed (by the settle
        margin); nothing while the check-ins topic is not known to have one partition."""
        # The clock of all environments: ticks move it, and it is ahead of each one's. Read
        # even while nothing is judged, so the guard sees it stand still (Kafka out).
        stream_clock = await self.checkins.clock()
        if stream_clock is None:
            return
        clock = self._clock.judge_by(stream_clock, time.monotonic())
        if not self._one_partition():
            return
        for check in list(self._checks.values()):
            if isinstance(check, HeartbeatCheck):
                await self._judge(check, clock)

    async def _judge(self, check: HeartbeatCheck, clock: datetime) -> None:
        if check.name not in self._judged:
            last = await self.health.heartbeat_judged_until(check.name)
            self._judged[check.name] = judged_until_after(check, last)
        judged_until = self._judged[check.name]
        since = checkins_since(check, judged_until)
        # Only the check's environment's check-ins: staging's runs do not cover production's.
        checkins = await self.checkins.checkins_for(
            check.name, since or datetime(1970, 1, 1, tzinfo=UTC), check.environment
        )
        judgement = judge_heartbeat(check, checkins, clock, judged_until, settle=self.settle)
        for verdict in judgement.verdicts:
            await self._record(heartbeat_result(check, verdict), check)
        self._judged[check.name] = judgement.judged_until


def _stamp(path: Path | None) -> tuple[float, int] | None:
    """The checks file's modification time and size: changed when either is."""
    if path is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime, status.st_size)
