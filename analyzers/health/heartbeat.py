"""The dead man's switch: was each expected run of a heartbeat check on time, failed, missed
or too long? Judged on the check-ins' own timestamps (stream time), never on the wall clock.
Pure.

Slots. A ``cron`` check expects a run at each time its expression matches in its zone
(cronsim, healthchecks.io's evaluator: a time skipped by DST runs when the clocks jump, a
repeated one once). An ``every`` check follows healthchecks.io's simple schedule: nothing is
expected before its first finished run (``ok`` or ``fail``), then a run ``every`` after the
last one; the period restarts at each finished run, and after a missed slot the next is one
period after that slot.

Windows. Slot S's deadline is S + ``grace``. A run counts for S when it started (its ``start``
check-in, else its finish) after the window opens and by the deadline: for ``every`` the
window opens at the previous run (any run since counts, early or late); for ``cron`` at the
previous slot's deadline, so a run a little early counts for the coming slot and a run late
within grace for its own, never both; when ``grace`` is as long as the period, the window is
[S, deadline] and one run may cover several slots, as on healthchecks.io.

Verdicts. The latest finish by the deadline decides: ``ok`` is a success (``overran`` when it
came more than ``max_runtime`` after its start), ``fail`` is ``failed`` with its message
(shortened). With no finish but a ``start`` in the window and a ``max_runtime``, the verdict
waits for the finish until start + max_runtime (Sentry's in-progress check-in): then it is
the finish's, or ``overran`` (a run that hangs). Otherwise ``missed``.

A slot is judged once ``clock`` (the newest check-in timestamp the monitor has read, moved on
by its ticks, never past the time it was read) is past its deadline by a settle margin
(``SETTLE_MARGIN`` in the monitor), so a consumer that is behind sees its check-ins before
the clock passes their slots: a backlog cannot make a false "missed". A clock that stood still
(Kafka out) and jumps is held where it stood for ``RECOVERY_HOLD`` more (``ClockGuard``), so
the check-ins jobs held meanwhile are read first. At most
``MAX_VERDICTS`` slots are judged per call, the newest ones: after a long gap the older due
slots are skipped (neither success nor failure), so a check dead for a month is told in ten
verdicts, not forty thousand.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from uuid import UUID
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from mendline.schemas.checks import CheckIn, ErrorKind, HeartbeatCheck
from mendline.schemas.duration import format_duration

__all__ = [
    "MAX_VERDICTS",
    "RECOVERY_HOLD",
    "SETTLE_MARGIN",
    "ClockGuard",
    "HeartbeatJudgement",
    "HeartbeatVerdict",
    "checkins_since",
    "expected_after",
    "judge_heartbeat",
    "validate_cron",
]

#: The most slots one call judges; after a longer gap only the newest are.
MAX_VERDICTS = 10
#: How long past a slot's deadline the stream clock must be before the slot is judged. The
#: clock is the monitor's and the consumer's time while jobs stamp check-ins with their own:
#: a job host whose clock is some seconds behind theirs sends its on-time check-in after the
#: clock (ticks included) has passed the deadline. 30 s covers such hosts' drift (NTP keeps
#: them within a second; an unsynchronised one drifts seconds a day) and the shipper's
#: batching, at the cost of every verdict coming 30 s after its deadline.
SETTLE_MARGIN = timedelta(seconds=30)
#: After the stream clock stood still (no tick read: Kafka out, the consumer down) and moves
#: again, the slots it jumps over wait this many seconds more: check-ins their jobs held while
#: Kafka was out are written when it is back, maybe after the monitor's first tick (the
#: Python shipper tries again every 5 s at most).
RECOVERY_HOLD = 60.0
#: A stream clock that has not moved for this long (or three tick intervals, when longer)
#: stood still; less is a monitor's pass that was slow.
STALLED_AFTER = 30.0
#: A fail message is cut to this many characters, on one line.
MAX_ERROR_CHARS = 300
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class HeartbeatVerdict:
    """The judgement of one expected run (``slot``): its success, why not (``error`` for
    people, ``error_kind``: missed, failed or overran), its run time in seconds when known,
    and the check-in it was judged on."""

    slot: datetime
    success: bool
    error: str | None
    error_kind: ErrorKind | None
    runtime: float | None
    checkin_id: UUID | None


@dataclass(frozen=True)
class HeartbeatJudgement:
    """The verdicts of the slots judged by this call, in order, and how far the check is now
    judged (the last judged slot's deadline; None while nothing is expected yet)."""

    verdicts: tuple[HeartbeatVerdict, ...]
    judged_until: datetime | None


class ClockGuard:
    """The clock one monitor judges heartbeats by: the stream clock, except when it stood
    still (STALLED_AFTER, or three of the monitor's ``tick_interval``) and then moved on; for
    ``hold`` seconds after that, the clock where it stood, so check-ins that were held by
    their senders (Kafka was out) are read before the slots they meet are judged. A new guard
    starts as if the clock stood still (it may have, before the monitor started: one started
    in a Kafka outage first reads the clock where it stands), so the first movement after its
    first reading is held too. Pure: the caller gives the time."""

    def __init__(self, tick_interval: float, hold: float = RECOVERY_HOLD) -> None:
        self.stalled_after = max(STALLED_AFTER, 3 * tick_interval)
        self.hold = hold
        self._seen: datetime | None = None
        self._moved = 0.0
        self._stalled = True
        self._held: tuple[datetime, float] | None = None

    def judge_by(self, clock: datetime, now: float) -> datetime:
        """The clock to judge by, the stream clock reading ``clock`` at ``now`` (seconds on
        a monotonic clock). Standing still is seen, not guessed: a monitor that did not look
        for a while (a slow pass) finds the clock moved, not stalled."""
        if clock == self._seen:
            self._stalled = self._stalled or now - self._moved >= self.stalled_after
        elif self._seen is None:  # the first reading: where the clock stands, still or not
            self._seen, self._moved = clock, now
        else:
            if self._stalled:
                self._held = (self._seen, now + self.hold)
            self._seen, self._moved, self._stalled = clock, now, False
        if self._held is not None:
            if now < self._held[1]:
                return min(clock, self._held[0])
            self._held = None
        return clock


def validate_cron(expr: str) -> None:
    """Raise ValueError, with a message for people, unless ``expr`` is a five-field cron
    expression that matches at least once ("0 3 * * *", "*/15 * * * mon-fri")."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression: it needs 5 fields (minute hour day-of-month"
            f" month day-of-week), it has {len(fields)}"
        )
    try:
        next(CronSim(expr, _EPOCH))
    except CronSimError as exc:
        raise ValueError(f"{expr!r} is not a cron expression: {exc}") from None
    except StopIteration:
        raise ValueError(f"{expr!r} never matches (no such date)") from None


def expected_after(check: HeartbeatCheck, after: datetime) -> datetime:
    """The next expected check-in time strictly after ``after`` (UTC): the cron's next
    match in the check's zone, or ``after`` + ``every``."""
    if check.cron is None:
        assert check.every is not None  # the model holds one of the two
        return after.astimezone(UTC) + timedelta(seconds=check.every)
    start = after.astimezone(ZoneInfo(check.timezone))
    return next(CronSim(check.cron, start)).astimezone(UTC)


def judged_until_after(check: HeartbeatCheck, last_slot: datetime | None) -> datetime | None:
    """Where judging resumes after the newest stored result (``last_slot``, its slot): that
    slot's deadline (None: nothing judged yet)."""
    return None if last_slot is None else last_slot + timedelta(seconds=check.grace)


def checkins_since(check: HeartbeatCheck, judged_until: datetime | None) -> datetime | None:
    """How far back the check-ins ``judge_heartbeat`` needs go (it reads those after this
    instant; None: all of them): the window of the first slot not yet judged, and the
    ``start`` check-ins of runs that may end in it."""
    if judged_until is None:
        return None
    last_slot = judged_until - timedelta(seconds=check.grace)
    if check.cron is None:
        assert check.every is not None
        opens = last_slot - timedelta(seconds=check.every)
    else:
        opens = _slot_before(check, last_slot + timedelta(seconds=1)) or last_slot
    return opens - timedelta(seconds=check.max_runtime or 0)


def judge_heartbeat(
    check: HeartbeatCheck,
    checkins: Sequence[CheckIn],
    clock: datetime,
    judged_until: datetime | None,
    *,
    settle: timedelta = timedelta(0),
) -> HeartbeatJudgement:
    """The verdicts of the slots whose deadline (slot + grace) is after ``judged_until`` and
    at least ``settle`` before ``clock``, in order (at most ``MAX_VERDICTS``, the newest),
    and the new ``judged_until``. The monitor passes ``SETTLE_MARGIN`` as ``settle``.

    ``checkins`` are this check's check-ins after ``checkins_since(check, judged_until)``,
    sorted by timestamp; ``clock`` is the stream's clock. ``judged_until`` None means never
    judged: nothing is expected before the first finished run. A slot waiting for a started
    run (up to its max_runtime) stops the judging there until ``clock`` passes it (by
    ``settle`` too).
    """
    clock -= settle
    runs = _Runs(checkins)
    if judged_until is None:
        if not runs.finishes:
            return HeartbeatJudgement((), None)
        judged_until = runs.finishes[0].checkin.timestamp
    verdicts: list[HeartbeatVerdict] = []
    for slot, opens in _due_slots(check, runs, clock, judged_until):
        verdict = _judge_slot(check, runs, slot, opens, clock)
        if verdict is None:
            break
        verdicts.append(verdict)
        judged_until = slot + timedelta(seconds=check.grace)
    return HeartbeatJudgement(tuple(verdicts), judged_until)


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finish:
    checkin: CheckIn
    start: CheckIn | None

    @property
    def began(self) -> datetime:
        """When the run began: its start, else the finish itself."""
        return (self.start or self.checkin).timestamp

    @property
    def runtime(self) -> float | None:
        if self.start is not None:
            return (self.checkin.timestamp - self.start.timestamp).total_seconds()
        return self.checkin.duration


class _Runs:
    """The check-ins as runs: each finish paired with its start (same ``run_id``; without
    one, the latest start without one not already finished), indexed by when runs began."""

    def __init__(self, checkins: Sequence[CheckIn]) -> None:
        ordered = sorted(checkins, key=lambda c: c.timestamp)
        open_by_id: dict[str, CheckIn] = {}
        open_anonymous: CheckIn | None = None
        finishes: list[_Finish] = []
        for checkin in ordered:
            if checkin.status == "start":
                if checkin.run_id is None:
                    open_anonymous = checkin
                else:
                    open_by_id[checkin.run_id] = checkin
                continue
            if checkin.run_id is None:
                start, open_anonymous = open_anonymous, None
            else:
                start = open_by_id.pop(checkin.run_id, None)
            finishes.append(_Finish(checkin, start))
        self.finishes = sorted(finishes, key=lambda f: f.began)
        self._began = [f.began for f in self.finishes]
        self.starts = [c for c in ordered if c.status == "start"]
        self._started = [c.timestamp for c in self.starts]

    def finishes_begun(self, opens: datetime, until: datetime) -> list[_Finish]:
        """The finishes of runs that began in (opens, until]."""
        low = bisect.bisect_right(self._began, opens)
        return self.finishes[low : bisect.bisect_right(self._began, until)]

    def next_began(self, after: datetime) -> datetime | None:
        """When the first run (started or finished) after ``after`` began, None: none."""
        candidates = [
            times[index]
            for times in (self._began, self._started)
            if (index := bisect.bisect_right(times, after)) < len(times)
        ]
        return min(candidates, default=None)

    def starts_in(self, opens: datetime, until: datetime) -> list[CheckIn]:
        low = bisect.bisect_right(self._started, opens)
        return self.starts[low : bisect.bisect_right(self._started, until)]


# -- slots -----------------------------------------------------------------------------------


def _due_slots(
    check: HeartbeatCheck, runs: _Runs, clock: datetime, judged_until: datetime
) -> list[tuple[datetime, datetime]]:
    """The slots with deadline in (judged_until, clock], the newest MAX_VERDICTS, each with
    when its window opens."""
    last = clock - timedelta(seconds=check.grace)
    first = judged_until - timedelta(seconds=check.grace)
    if check.cron is None:
        return list(_every_slots(check, runs, first, last))[-MAX_VERDICTS:]
    grace = timedelta(seconds=check.grace)
    zone = ZoneInfo(check.timezone)
    # Newest first: cronsim steps backwards from just after `last` (whole seconds).
    back = CronSim(
        check.cron,
        (last.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone),
        reverse=True,
    )
    slots: list[datetime] = []
    for match in back:
        slot = match.astimezone(UTC)
        slots.append(slot)
        if slot <= first or len(slots) > MAX_VERDICTS:
            break
    due = []
    for slot, before in pairwise(slots):
        if slot > first:
            due.append((slot, before + grace if before + grace < slot else slot - _TINY))
    return due[::-1]


def _every_slots(
    check: HeartbeatCheck, runs: _Runs, first: datetime, last: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The `every` chain after the judged slot ``first``, up to slots at ``last``: a period
    after the latest run that began in a slot's window, else after the slot itself. A stretch
    with no check-in is stepped over, yielding only its last MAX_VERDICTS missed slots."""
    assert check.every is not None
    period = timedelta(seconds=check.every)
    grace = timedelta(seconds=check.grace)
    slot = first
    opens = first - period
    while True:
        ran = runs.finishes_begun(opens, slot + grace)
        anchor = max((f.checkin.timestamp for f in ran), default=slot)
        slot, opens = anchor + period, anchor
        if slot > last:
            return
        quiet_until = min(runs.next_began(opens) or last + grace, last + grace)
        empty = int((quiet_until - slot - grace) / period) if quiet_until > slot + grace else 0
        for skipped in range(max(0, empty - MAX_VERDICTS), empty):
            yield slot + skipped * period, slot + (skipped - 1) * period
        if empty:
            slot, opens = slot + empty * period, slot + (empty - 1) * period
            if slot > last:
                return
        yield slot, opens


def _slot_before(check: HeartbeatCheck, at: datetime) -> datetime | None:
    assert check.cron is not None
    back = CronSim(check.cron, at.astimezone(ZoneInfo(check.timezone)), reverse=True)
    return next(back, None)


# -- one slot --------------------------------------------------------------------------------


def _judge_slot(
    check: HeartbeatCheck, runs: _Runs, slot: datetime, opens: datetime, clock: datetime
) -> HeartbeatVerdict | None:
    """The slot's verdict, None while a started run may still finish in time."""
    deadline = slot + timedelta(seconds=check.grace)
    ran = runs.finishes_begun(opens, deadline)
    by_deadline = [f for f in ran if f.checkin.timestamp <= deadline]
    if by_deadline:
        return _finished(check, slot, max(by_deadline, key=lambda f: f.checkin.timestamp))
    started = runs.starts_in(opens, deadline)
    if check.max_runtime is not None and started:
        limit = max(deadline, started[-1].timestamp + timedelta(seconds=check.max_runtime))
        if ran:  # finished after the deadline, within max_runtime or not (then overran)
            return _finished(check, slot, min(ran, key=lambda f: f.checkin.timestamp))
        if clock < limit:
            return None
        return HeartbeatVerdict(
            slot,
            False,
            f"started at {_when(started[-1].timestamp)} and not finished within"
            f" {format_duration(check.max_runtime)}",
            "overran",
            None,
            started[-1].checkin_id,
        )
    if started:
        why = f"started at {_when(started[-1].timestamp)}, no ok or fail by the deadline"
        return _missed(slot, why, started[-1].checkin_id)
    return _missed(slot, f"no check-in by {_when(deadline)}", None)


def _finished(check: HeartbeatCheck, slot: datetime, run: _Finish) -> HeartbeatVerdict:
    checkin, runtime = run.checkin, run.runtime
    if checkin.status == "fail":
        error = _shorten(checkin.message) or "the job sent fail"
        return HeartbeatVerdict(slot, False, error, "failed", runtime, checkin.checkin_id)
    if check.max_runtime is not None and runtime is not None and runtime > check.max_runtime:
        error = f"ran {format_duration(runtime)}, longer than {format_duration(check.max_runtime)}"
        return HeartbeatVerdict(slot, False, error, "overran", runtime, checkin.checkin_id)
    return HeartbeatVerdict(slot, True, None, None, runtime, checkin.checkin_id)


def _missed(slot: datetime, error: str, checkin_id: UUID | None) -> HeartbeatVerdict:
    return HeartbeatVerdict(slot, False, error, "missed", None, checkin_id)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shorten(message: str | None) -> str | None:
    """A job's message on one line, control characters dropped, cut to MAX_ERROR_CHARS."""
    if not message:
        return None
    line = " ".join("".join(c if c.isprintable() else " " for c in message).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
