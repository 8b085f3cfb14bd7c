"""judge_heartbeat(): on time, late within grace, early, missed, failed, overran (paired and
hanging), cron across DST in Paris, `every` anchored at the runs, long gaps bounded, a
backlog that cannot make a false missed; validate_cron() and expected_after()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from mendline.analyzers.health import (
    MAX_VERDICTS,
    RECOVERY_HOLD,
    SETTLE_MARGIN,
    ClockGuard,
    HeartbeatJudgement,
    checkins_since,
    expected_after,
    judge_heartbeat,
    judged_until_after,
    validate_cron,
)
from mendline.schemas.checks import CheckIn, HeartbeatCheck

T = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday, 00:00
HOURLY = {"cron": "0 * * * *", "grace": "5m"}


def heartbeat(**fields: Any) -> HeartbeatCheck:
    return HeartbeatCheck.model_validate({"name": "backup", "kind": "heartbeat", **fields})


def checkin(status: str, minute: float, **fields: Any) -> CheckIn:
    """A check-in ``minute`` minutes after T."""
    return CheckIn(
        schema_version=1,
        checkin_id=uuid4(),
        check="backup",
        status=status,  # type: ignore[arg-type]
        timestamp=T + timedelta(minutes=minute),
        **fields,
    )


def at(minute: float) -> datetime:
    return T + timedelta(minutes=minute)


def told(judgement: HeartbeatJudgement) -> list[str]:
    """Each verdict as "HH:MM ok", "HH:MM missed", ... with the run time when known."""
    shown = []
    for verdict in judgement.verdicts:
        text = f"{verdict.slot:%H:%M} {verdict.error_kind or 'ok'}"
        shown.append(text if verdict.runtime is None else f"{text} {verdict.runtime:g}s")
    return shown


def judged(fields: dict[str, Any], checkins: list[CheckIn], clock: float) -> list[str]:
    """The verdicts at ``clock`` (minutes after T), the 00:00 slot being judged already."""
    check = heartbeat(**fields)
    since = T + timedelta(seconds=check.grace)
    return told(judge_heartbeat(check, checkins, at(clock), since))


@pytest.mark.parametrize(
    ("fields", "checkins", "clock", "expected"),
    [
        # The 00:00 slot is judged (until 00:05); the clock is at 03:10.
        (
            HOURLY,
            [checkin("ok", 60), checkin("ok", 120), checkin("ok", 180)],
            190,
            ["01:00 ok", "02:00 ok", "03:00 ok"],
        ),
        (HOURLY, [checkin("ok", 64)], 66, ["01:00 ok"]),  # late, within grace
        (HOURLY, [checkin("ok", 119)], 126, ["01:00 missed", "02:00 ok"]),  # early: the next
        # Late beyond grace: 01:00 is missed, the run counts (early) for 02:00.
        (HOURLY, [checkin("ok", 66)], 126, ["01:00 missed", "02:00 ok"]),
        # Not judged before the deadline: the clock at 01:04 leaves 01:00 open.
        (HOURLY, [], 64, []),
        (HOURLY, [], 65, ["01:00 missed"]),
        (HOURLY, [checkin("fail", 60, message="disk full")], 65, ["01:00 failed"]),
        # A retry that succeeded: the latest finish by the deadline decides.
        (HOURLY, [checkin("fail", 60), checkin("ok", 62)], 65, ["01:00 ok"]),
        # Run time from the start with the same run_id, interleaved with another run.
        (
            {**HOURLY, "grace": "30m"},
            [
                checkin("start", 60, run_id="a"),
                checkin("start", 61, run_id="b"),
                checkin("ok", 63, run_id="b"),
                checkin("ok", 64, run_id="a"),
            ],
            90,
            ["01:00 ok 240s"],
        ),
        # Without run_id: the latest start without one.
        (HOURLY, [checkin("start", 60), checkin("ok", 62)], 65, ["01:00 ok 120s"]),
        # Without a start: the duration the job measured.
        (HOURLY, [checkin("ok", 62, duration=7.5)], 65, ["01:00 ok 7.5s"]),
        # Longer than max_runtime, finished within grace: overran, with its run time.
        (
            {**HOURLY, "grace": "30m", "max_runtime": "10m"},
            [checkin("start", 60, run_id="a"), checkin("ok", 75, run_id="a")],
            90,
            ["01:00 overran 900s"],
        ),
        # A started run may finish after the deadline, within max_runtime: a success.
        (
            {**HOURLY, "max_runtime": "10m"},
            [checkin("start", 60), checkin("ok", 68)],
            70,
            ["01:00 ok 480s"],
        ),
        # ... and is waited for until start + max_runtime.
        ({**HOURLY, "max_runtime": "10m"}, [checkin("start", 60)], 69, []),
        # A run that hangs: no finish by start + max_runtime.
        ({**HOURLY, "max_runtime": "10m"}, [checkin("start", 60)], 70, ["01:00 overran"]),
        # Its finish read later than the limit: overran with the run time.
        (
            {**HOURLY, "max_runtime": "10m"},
            [checkin("start", 60), checkin("ok", 75)],
            76,
            ["01:00 overran 900s"],
        ),
        # Without max_runtime, a start alone by the deadline is a missed run.
        (HOURLY, [checkin("start", 60)], 65, ["01:00 missed"]),
        # The wait for one slot holds back the next.
        ({**HOURLY, "max_runtime": "2h"}, [checkin("start", 60)], 126, []),
        # Grace as long as the period: [slot, slot + grace], one run may cover several slots.
        (
            {"cron": "*/10 * * * *", "grace": "15m"},
            [checkin("ok", 22)],
            40,
            ["00:10 ok", "00:20 ok"],
        ),
        (
            {"cron": "*/10 * * * *", "grace": "15m"},
            [checkin("ok", 27)],
            40,
            ["00:10 missed", "00:20 ok"],
        ),
        (
            {"cron": "*/10 * * * *", "grace": "25m"},
            [checkin("ok", 22)],
            55,
            ["00:10 ok", "00:20 ok", "00:30 missed"],
        ),
    ],
)
def test_cron_slots(
    fields: dict[str, Any], checkins: list[CheckIn], clock: float, expected: list[str]
) -> None:
    assert judged(fields, checkins, clock) == expected


def test_the_judged_until_is_the_last_judged_deadline() -> None:
    check = heartbeat(**HOURLY)
    judgement = judge_heartbeat(check, [checkin("ok", 60)], at(130), at(5))
    assert judgement.judged_until == at(125)
    assert judge_heartbeat(check, [], at(130), at(125)).verdicts == ()
    waiting = judge_heartbeat(
        heartbeat(**HOURLY, max_runtime="1h"), [checkin("start", 60)], at(70), at(5)
    )
    assert waiting == HeartbeatJudgement((), at(5))


@pytest.mark.parametrize(
    ("checkins", "clock", "settle", "expected"),
    [
        # The 01:00 slot's deadline is 01:05: with no margin it is judged at 01:05.
        ([], 65, timedelta(0), ["01:00 missed"]),
        # With the monitor's margin, not until the clock is 30 s past it.
        ([], 65, SETTLE_MARGIN, []),
        ([], 65.4, SETTLE_MARGIN, []),
        ([], 65.5, SETTLE_MARGIN, ["01:00 missed"]),
        # A run on time (by its own clock) read after the deadline, within the margin, counts.
        ([checkin("ok", 64.9)], 65.5, SETTLE_MARGIN, ["01:00 ok"]),
        # A started run waits its max_runtime plus the margin too.
        ([checkin("start", 60)], 70.4, SETTLE_MARGIN, []),
        ([checkin("start", 60)], 70.5, SETTLE_MARGIN, ["01:00 overran"]),
    ],
)
def test_a_slot_is_judged_once_the_clock_is_the_settle_margin_past_its_deadline(
    checkins: list[CheckIn], clock: float, settle: timedelta, expected: list[str]
) -> None:
    check = heartbeat(**HOURLY, max_runtime="10m")
    judgement = judge_heartbeat(check, checkins, at(clock), at(5), settle=settle)
    assert told(judgement) == expected


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # (seconds on the monitor's clock, the stream clock in minutes after T): judged as read
        # while the clock moves with the ticks (every 10 s).
        ([(0, 0), (10, 10 / 60), (20, 20 / 60)], [0, 10 / 60, 20 / 60]),
        # Kafka is out 10 minutes: the clock stands at 0, then jumps; the jumped-over minutes
        # wait RECOVERY_HOLD (senders' held check-ins come in), then are judged.
        (
            [(0, 0), (300, 0), (600, 10), (610, 10.2), (600 + RECOVERY_HOLD, 11)],
            [0, 0, 0, 0, 11],
        ),
        # Standing still for less than STALLED_AFTER: no hold.
        ([(0, 0), (20, 0), (25, 0.4)], [0, 0, 0.4]),
        # Not looked at for a while (a slow pass): moved, not stood still.
        ([(0, 0), (45, 0.75), (46, 0.77)], [0, 0.75, 0.77]),
        # A hold ends; a later stall holds again.
        (
            [(0, 0), (40, 0), (50, 1), (110, 2), (150, 2), (160, 3)],
            [0, 0, 0, 2, 2, 2],
        ),
    ],
)
def test_after_the_stream_clock_stood_still_the_slots_it_jumps_over_wait(
    readings: list[tuple[float, float]], expected: list[float]
) -> None:
    guard = running_guard(tick_interval=10.0)
    assert [guard.judge_by(at(minute), now) for now, minute in readings] == [
        at(minute) for minute in expected
    ]


def test_three_ticks_of_a_long_tick_interval_are_not_a_stall() -> None:
    guard = running_guard(tick_interval=60.0)
    readings = [(0, 0), (150, 0), (180, 3)]  # one tick late: the clock did not stand still
    assert [guard.judge_by(at(m), now) for now, m in readings] == [at(0), at(0), at(3)]


def running_guard(tick_interval: float) -> ClockGuard:
    """A guard of a monitor that has been running a while (its start's hold is over), the
    stream clock last read at T - 1 minute, 10 seconds before 0 on the monitor's clock."""
    guard = ClockGuard(tick_interval)
    first_moved = -65.0  # held until -5
    for minute, now in ((-3, first_moved - 5), (-2, first_moved), (-1, -10.0)):
        guard.judge_by(at(minute), now)
    assert first_moved + RECOVERY_HOLD < 0
    return guard


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # Started while Kafka is out: the clock stands at 0 (it stood before the start too),
        # then jumps within STALLED_AFTER; the jumped-over minutes still wait RECOVERY_HOLD.
        (
            [(0, 0), (10, 0), (20, 10), (30, 10.2), (20 + RECOVERY_HOLD, 11)],
            [0, 0, 0, 0, 11],
        ),
        # Started with the clock moving: its first movement is held all the same (it cannot
        # tell), then the clock is judged by as read.
        (
            [(0, 0), (10, 10 / 60), (20, 20 / 60), (10 + RECOVERY_HOLD, 2)],
            [0, 0, 0, 2],
        ),
    ],
)
def test_a_monitor_just_started_holds_the_first_movement_of_the_clock(
    readings: list[tuple[float, float]], expected: list[float]
) -> None:
    guard = ClockGuard(tick_interval=10.0)
    assert [guard.judge_by(at(minute), now) for now, minute in readings] == [
        at(minute) for minute in expected
    ]


def test_a_failure_tells_its_message_shortened_and_on_one_line() -> None:
    hostile = "\x1b[31mDROP TABLE\r\n\u202e" + "A" * 3900
    judgement = judge_heartbeat(
        heartbeat(**HOURLY), [checkin("fail", 60, message=hostile)], at(65), at(5)
    )
    (verdict,) = judgement.verdicts
    assert verdict.error is not None and verdict.error.startswith("[31mDROP TABLE")
    assert len(verdict.error) <= 300
    assert verdict.error.isprintable()
    assert verdict.checkin_id == judgement.verdicts[0].checkin_id
    assert not verdict.success
    plain = judge_heartbeat(heartbeat(**HOURLY), [checkin("fail", 60)], at(65), at(5))
    assert plain.verdicts[0].error == "the job sent fail"


def test_missed_and_overran_verdicts_say_why() -> None:
    (missed,) = judge_heartbeat(heartbeat(**HOURLY), [], at(65), at(5)).verdicts
    assert missed.error == "no check-in by 2026-12-07 01:05:00 UTC"
    assert missed.checkin_id is None and missed.slot == at(60)
    start = checkin("start", 60)
    (hung,) = judge_heartbeat(
        heartbeat(**HOURLY, max_runtime="10m"), [start], at(70), at(5)
    ).verdicts
    assert hung.error == "started at 2026-12-07 01:00:00 UTC and not finished within 10m"
    assert hung.checkin_id == start.checkin_id


@pytest.mark.parametrize(
    ("fields", "checkins", "since", "clock", "expected"),
    [
        # Nothing is expected before the first finished run.
        ({"every": "1h", "grace": "5m"}, [], None, 600, []),
        ({"every": "1h", "grace": "5m"}, [checkin("start", 17)], None, 600, []),
        # Anchored at the first run (00:17), then a period after each run.
        (
            {"every": "1h", "grace": "5m"},
            [checkin("ok", 17), checkin("ok", 80)],
            None,
            144,
            ["01:17 ok"],
        ),
        (
            {"every": "1h", "grace": "5m"},
            [checkin("ok", 17), checkin("ok", 80)],
            None,
            146,
            ["01:17 ok", "02:20 missed"],
        ),
        # An early run counts and restarts the period.
        (
            {"every": "1h", "grace": "5m"},
            [checkin("ok", 17), checkin("ok", 50), checkin("ok", 112)],
            None,
            176,
            ["01:17 ok", "01:50 ok"],
        ),
        # After a missed slot the next is a period after that slot.
        (
            {"every": "1h", "grace": "5m"},
            [checkin("ok", 0)],
            None,
            185,
            ["01:00 missed", "02:00 missed", "03:00 missed"],
        ),
        # Continued from an earlier judgement: the last run (00:10) is in the window.
        (
            {"every": "1h", "grace": "5m"},
            [checkin("ok", 10), checkin("ok", 70)],
            15,
            80,
            ["01:10 ok"],
        ),
        ({"every": "1h", "grace": "5m"}, [checkin("ok", 10)], 15, 74, []),
        ({"every": "1h", "grace": "5m"}, [checkin("ok", 10)], 15, 75, ["01:10 missed"]),
    ],
)
def test_every_slots(
    fields: dict[str, Any],
    checkins: list[CheckIn],
    since: float | None,
    clock: float,
    expected: list[str],
) -> None:
    check = heartbeat(**fields)
    until = None if since is None else at(since)
    assert told(judge_heartbeat(check, checkins, at(clock), until)) == expected


def test_a_long_gap_is_told_in_its_newest_slots() -> None:
    month = 30 * 24 * 60
    for fields, since in ((HOURLY, 5.0), ({"every": "1h", "grace": "5m"}, 5.0)):
        check = heartbeat(**fields)
        judgement = judge_heartbeat(check, [checkin("ok", 0)], at(month), at(since))
        assert len(judgement.verdicts) == MAX_VERDICTS
        assert all(v.error_kind == "missed" for v in judgement.verdicts)
        last = judgement.verdicts[-1].slot
        assert at(month) - timedelta(hours=1) < last + timedelta(minutes=5) <= at(month)
        assert judgement.judged_until == last + timedelta(minutes=5)


def test_a_quiet_stretch_of_a_short_period_is_stepped_over() -> None:
    """A week of one-second slots without a check-in, then a run: the newest ten slots."""
    week = 7 * 24 * 60
    check = heartbeat(every="1s", grace=0)
    judgement = judge_heartbeat(check, [checkin("ok", 0), checkin("ok", week)], at(week), None)
    assert [v.error_kind for v in judgement.verdicts] == ["missed"] * 9 + [None]
    assert judgement.verdicts[-1].slot == at(week)
    assert [v.slot for v in judgement.verdicts][:2] == [
        at(week) - timedelta(seconds=9),
        at(week) - timedelta(seconds=8),
    ]


@pytest.mark.parametrize("fields", [HOURLY, {"every": "1h", "grace": "5m"}])
def test_judging_bit_by_bit_agrees_with_judging_at_once(fields: dict[str, Any]) -> None:
    """The monitor judges on each tick, passing only the check-ins checkins_since() asks for."""
    check = heartbeat(**fields)
    runs = [
        checkin("ok", 0),
        checkin("start", 59),
        checkin("ok", 62),
        checkin("ok", 240),
        checkin("fail", 301, message="boom"),
        checkin("ok", 359),
    ]
    at_once = judge_heartbeat(check, runs, at(600), None)
    since: datetime | None = None
    bit_by_bit = []
    for minute in range(0, 601, 7):
        after = checkins_since(check, since)
        seen = [
            c for c in runs if c.timestamp <= at(minute) and (after is None or c.timestamp > after)
        ]
        judgement = judge_heartbeat(check, seen, at(minute), since)
        bit_by_bit.extend(judgement.verdicts)
        since = judgement.judged_until
    assert bit_by_bit == list(at_once.verdicts)
    assert [v.error_kind for v in bit_by_bit].count("failed") == 1


def test_a_backlog_cannot_make_a_false_missed() -> None:
    """Six hours of on-time runs read at once, hours late in wall time: the stream clock only
    reaches a slot's deadline once the check-ins before it were read, so every slot is a
    success. Judged on the wall clock before reading them, they would all be missed."""
    check = heartbeat(**HOURLY)
    runs = [checkin("ok", 60 * hour + 1) for hour in range(1, 7)]
    since: datetime | None = at(5)
    verdicts = []
    for read in range(len(runs)):  # the consumer catches up, one check-in at a time
        clock = runs[read].timestamp  # the newest timestamp read
        judgement = judge_heartbeat(check, runs[: read + 1], clock, since)
        verdicts.extend(judgement.verdicts)
        since = judgement.judged_until
    tick = judge_heartbeat(check, runs, at(6 * 60 + 5), since)  # then a tick moves it on
    verdicts.extend(tick.verdicts)
    assert [v.success for v in verdicts] == [True] * 6
    wall_clock = judge_heartbeat(check, [], at(6 * 60 + 5), at(5))
    assert [v.error_kind for v in wall_clock.verdicts] == ["missed"] * 6


PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # 02:30 does not exist on 29 March 2026 in Paris: the run is at 03:00 CEST.
        (
            "30 2 * * *",
            datetime(2026, 3, 28, 12, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        ),
        (
            "30 2 * * *",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        ),
        (
            "30 2 * * *",
            datetime(2026, 3, 29, 12, tzinfo=UTC),
            datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
        ),
        # 02:30 happens twice on 25 October 2026: once, the first (CEST).
        (
            "30 2 * * *",
            datetime(2026, 10, 24, 12, tzinfo=UTC),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        (
            "30 2 * * *",
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        ),
        (
            "0 9 * * *",
            datetime(2026, 10, 24, 12, tzinfo=UTC),
            datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
        ),
        # Strictly after.
        (
            "0 9 * * *",
            datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
            datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
        ),
    ],
)
def test_expected_after_in_paris(cron: str, after: datetime, expected: datetime) -> None:
    check = heartbeat(cron=cron, timezone="Europe/Paris")
    assert expected_after(check, after) == expected


def test_expected_after_every_is_a_fixed_period() -> None:
    check = heartbeat(every="90s")
    assert expected_after(check, T) == T + timedelta(seconds=90)


def test_a_cron_in_paris_across_the_spring_change_is_judged_on_its_real_slots() -> None:
    check = heartbeat(cron="30 2 * * *", timezone="Europe/Paris", grace="10m")
    runs = [
        datetime(2026, 3, 28, 1, 31, tzinfo=UTC),  # 02:31 CET
        datetime(2026, 3, 29, 1, 2, tzinfo=UTC),  # 03:02 CEST: the skipped 02:30's run
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]  # 02:30 CEST
    checkins = [checkin("ok", (when - T).total_seconds() / 60) for when in runs]
    judgement = judge_heartbeat(
        check, checkins, datetime(2026, 3, 31, tzinfo=UTC), datetime(2026, 3, 27, 1, 40, tzinfo=UTC)
    )
    assert [
        (v.slot.astimezone(PARIS).strftime("%d %H:%M"), v.success) for v in judgement.verdicts
    ] == [("28 02:30", True), ("29 03:00", True), ("30 02:30", True)]


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/15 * * * mon-fri", "0 0 29 2 *"])
def test_validate_cron_accepts(expr: str) -> None:
    validate_cron(expr)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 3 * *", "it needs 5 fields"),
        ("0 0 3 * * *", "it needs 5 fields"),  # seconds are not a cron field here
        ("61 * * * *", "Bad minute"),
        ("0 0 31 2 *", "Bad day-of-month"),
        ("* * * * funday", "Bad day-of-week"),
    ],
)
def test_validate_cron_says_what_is_wrong(expr: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        validate_cron(expr)


@pytest.mark.parametrize(
    ("grace", "last_slot", "resumes"),
    [
        ("5m", None, None),
        ("5m", datetime(2026, 12, 5, 3, 0, tzinfo=UTC), datetime(2026, 12, 5, 3, 5, tzinfo=UTC)),
        ("0s", datetime(2026, 12, 5, 3, 0, tzinfo=UTC), datetime(2026, 12, 5, 3, 0, tzinfo=UTC)),
    ],
)
def test_judging_resumes_at_the_deadline_of_the_newest_judged_slot(
    grace: str, last_slot: datetime | None, resumes: datetime | None
) -> None:
    check = HeartbeatCheck(name="job", kind="heartbeat", every="1h", grace=grace)
    assert judged_until_after(check, last_slot) == resumes
