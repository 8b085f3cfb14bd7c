"""The overview, served: the pipeline's stages as the database shows them (and the consumer's
lag and dead letters when the self checks recorded them), the error rate per hour and
service, open issues by level, checks up and down, fixes awaiting approval, and the measures
computed right on known data; each card a live fragment; escaped; readable by a viewer; the
same data as JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.health import self_checks
from mendline.schemas.fix import CommandOutcome, Delivery, Verification
from mendline.schemas.people import Actor
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import DashboardReads, FixStore, HealthStore, append_audit
from mendline.web._overview import ErrorCounts
from tests.db_helpers import RESPONDER, issue_actions, store_events
from tests.integration.event_factory import make_event
from tests.web.status_helpers import (
    AUTOMATIC,
    HOSTILE,
    NEEDS_APPROVAL,
    T0,
    finding_of,
    http_check,
    probe_result,
    proposed_fix,
    record,
    run_marks,
    settle_deliveries,
)
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration

ALICE = Actor(name="alice", role="approver", auth="token")
PASSED = Verification(
    passed=True, commands=[CommandOutcome(argv=["pytest", "-q"], exit_code=0, seconds=1.0)]
)


def event(issue: int, *, hours_ago: float = 0, **fields: Any) -> dict[str, Any]:
    """An event of issue number ``issue`` that happened ``hours_ago``."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return make_event(issue) | {"timestamp": at.isoformat()} | fields


async def issue_of(web: ServedWeb, number: int) -> int:
    """The id of the issue of ``make_event(number)``'s call site."""
    found = await web.pool.fetchval(
        "SELECT issue_id FROM mendline.events WHERE payload::jsonb @> $1::jsonb LIMIT 1",
        f'{{"exceptions": [{{"frames": [{{"function": "handler_{number}"}}]}}]}}',
    )
    assert found is not None
    return int(found)


def check_rows(page: str) -> dict[str, str]:
    return dict(
        re.findall(r'data-testid="check-row" data-check-name="([^"]+)" data-state="([^"]+)"', page)
    )


async def test_the_overview_shows_every_card_from_seeded_data(
    web: ServedWeb, tmp_path: Path
) -> None:
    await store_events(
        web.database_url,
        [event(1, service="api"), event(1, service="api"), event(2, service="web")],
        [event(3, service="api", level="warning")],
    )
    health = HealthStore(web.pool)
    await health.ensure_partitions()
    up, down = http_check("up"), http_check("down")
    await health.sync_checks([up, down], T0)
    await run_marks(health, up, "++")
    await run_marks(health, down, "+-")  # its downtime opens a (critical) health issue
    fix_id = await proposed_fix(
        web.pool, await finding_of(web.pool, await issue_of(web, 1), "one"), NEEDS_APPROVAL
    )
    await settle_deliveries(web.pool, tmp_path, "boom")
    async with web.client("viewer") as client:
        response = await client.get("/")
        data = (await client.get("/api/v1/overview")).json()
    assert response.status_code == 200
    page = response.text
    assert check_rows(page) == {"up": "up", "down": "down"}
    assert 'data-testid="checks-down">1<' in page and 'data-testid="checks-up">1<' in page
    levels = {c["level"]: c["open"] for c in data["issues"]["by_level"]}
    assert levels == {"error": 3, "warning": 1}  # the three error groups: 1, 2 and the check
    assert 'data-testid="open-total">4<' in page
    assert f'href="/fixes/{fix_id}"' in page and 'data-testid="awaiting-total">1<' in page
    # The error rate: this hour's events per service, api first (it has more).
    series = data["errors"]["series"]
    assert list(series) == ["api", "web"] and (series["api"][-1], series["web"][-1]) == (3, 1)
    assert len(data["errors"]["hours"]) == 24
    # The queues: the triggers are waiting for analysis; deliveries are pending.
    pipeline = data["pipeline"]
    assert pipeline["unanalysed"] == 4 and pipeline["oldest_unanalysed"] is not None
    assert pipeline["pending_deliveries"] >= 1
    stages = {s["stage"]: s for s in pipeline["stages"]}
    assert list(stages) == ["consume", "analyze", "alert", "monitor", "heal"]
    assert stages["consume"]["state"] == "working"  # it stored events just now
    assert stages["heal"]["state"] == "working"  # it proposed the fix just now
    assert stages["heal"]["reasons"][0].startswith("last fix moved")
    assert re.search(r'data-stage="consume" data-state="working"', page)
    assert "not recorded" in page  # no self check ran: no lag, no dead letters
    assert pipeline["consumer_lag"] is None and pipeline["dead_letters"] == []
    assert data["metrics"]["events_last_hour"] == 4


async def test_the_measures_are_computed_right_on_known_data(web: ServedWeb) -> None:
    # A, B, C first seen 1, 3 and 5 hours ago; D ten days ago; E two hours ago.
    await store_events(
        web.database_url,
        [event(1, hours_ago=1), event(2, hours_ago=3), event(3, hours_ago=5)],
        [event(4, hours_ago=240), event(5, hours_ago=2)],
    )
    a, b, c, d = [await issue_of(web, n) for n in (1, 2, 3, 4)]
    async with issue_actions(web.database_url) as actions:
        for issue_id in (a, b, c, d):
            await actions.resolve(RESPONDER, issue_id)
        # D comes back (a regression) and is resolved again at once: its episode is short.
        await store_events(web.database_url, [event(4)])
        await actions.resolve(RESPONDER, d)
    async with web.client("viewer") as client:
        measures = (await client.get("/api/v1/overview")).json()["metrics"]
        page = (await client.get("/")).text
    mttr = measures["mttr"]
    # Durations: D about 0 s, A 1 h, B 3 h, C 5 h.
    assert mttr["count"] == 4
    assert mttr["median"] == pytest.approx((3600 + 10800) / 2, abs=120)
    assert mttr["p90"] == pytest.approx(10800 + 0.7 * (18000 - 10800), abs=120)
    mtta = measures["mtta"]
    # The first person's action on each: A, B, C, D resolved now; E untouched.
    assert (mtta["count"], measures["unacknowledged"]) == (4, 1)
    assert mtta["mean"] == pytest.approx((3600 + 10800 + 18000 + 864000) / 4, abs=120)
    assert measures["events_last_hour"] == 6
    assert measures["error_rate"] == pytest.approx(6 / 60)
    assert (measures["fix_success_rate"], measures["false_positive_rate"]) == (None, None)
    # The page shows them, each with its definition as a tooltip.
    assert 'data-testid="metric-mttr"' in page and "2h" in page
    assert page.count('class="label" title="') == 5
    assert measures["definitions"]["mttr"] in page.replace("&#39;", "'")


async def test_fix_success_and_false_positive_rates_on_known_data(web: ServedWeb) -> None:
    await store_events(web.database_url, [event(n) for n in range(1, 5)])
    findings = [await finding_of(web.pool, await issue_of(web, n), f"k{n}") for n in range(1, 5)]
    fixes = FixStore(web.pool, append_audit, "test")
    worked, broke = [await proposed_fix(web.pool, f, AUTOMATIC) for f in findings[:2]]
    claimed = {fix.id for fix in await fixes.claim("heal-test", 60, 10)}
    assert claimed == {worked, broke}
    delivery = Delivery(mode="branch", branch="mendline/fix", commit="a" * 40)
    assert (await fixes.finish_applied("heal-test", worked, delivery, PASSED)).done
    assert (await fixes.finish_failed("heal-test", broke, "the tests failed")).done
    await fixes.deployed(ALICE, worked, "1.1.0")
    await store_events(web.database_url, [event(9, release="1.1.0")])  # 1.1.0 runs
    [verified] = await fixes.settle_deployed(0)
    assert verified.state == "verified"
    async with issue_actions(web.database_url) as actions:
        for finding_id, verdict in zip(findings, ("right", "right", "right", "wrong"), strict=True):
            await actions.mark_finding(RESPONDER, finding_id, verdict)
    async with web.client("viewer") as client:
        measures = (await client.get("/api/v1/overview")).json()["metrics"]
        page = (await client.get("/")).text
    outcomes = measures["fix_outcomes"]
    assert (outcomes["verified"], outcomes["failed"], outcomes["regressed"]) == (1, 1, 0)
    assert measures["fix_success_rate"] == 0.5
    assert measures["false_positive_rate"] == 0.25
    verdicts = [
        (v["analyser"], v["judged"], v["marked_wrong"]) for v in measures["finding_verdicts"]
    ]
    assert verdicts == [("heuristic", 4, 1)]
    assert "50.0 %" in page and "25.0 %" in page


async def test_the_pipeline_shows_what_the_self_checks_read(web: ServedWeb) -> None:
    health = HealthStore(web.pool)
    await health.ensure_partitions()
    own = {c.name: c for c in self_checks(load_settings(database_url=web.database_url))}
    await health.sync_checks(list(own.values()), T0)
    lag, letters = own["mendline.consumer-lag"], own["mendline.dead-letters"]
    await record(health, lag, probe_result(lag, T0, True, condition="[LAG] <= 1000", observed="12"))
    await record(
        health, letters, probe_result(letters, T0, False, condition="[RECENT] == 0", observed="3")
    )
    async with web.client("viewer") as client:
        pipeline = (await client.get("/api/v1/overview")).json()["pipeline"]
        page = (await client.get("/?fragment=pipeline")).text
    assert (pipeline["consumer_lag"]["value"], pipeline["consumer_lag"]["ok"]) == ("12", True)
    assert [(r["check"], r["value"]) for r in pipeline["dead_letters"]] == [
        ("mendline.dead-letters", "3")
    ]
    assert "12 records behind" in page and "mendline.dead-letters: 3 in the 10 minutes" in page


async def test_work_waiting_too_long_marks_its_stage_stalled(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, self_check_max_age=0.001) as web:
        await store_events(web.database_url, [event(1)])
        async with web.client("viewer") as client:
            stages = (await client.get("/api/v1/overview")).json()["pipeline"]["stages"]
            page = (await client.get("/")).text
    states = {s["stage"]: s["state"] for s in stages}
    # The new issue's trigger waits for analysis and for routing: longer than 1 ms.
    assert (states["analyze"], states["alert"]) == ("stalled", "stalled")
    reasons = {s["stage"]: s["reasons"] for s in stages}
    assert reasons["analyze"][0].startswith("1 triggers not analysed, the oldest for")
    assert 'data-stage="analyze" data-state="stalled"' in page


async def test_each_card_is_a_live_fragment(web: ServedWeb) -> None:
    topics = {
        "pipeline": ["sse:issues", "sse:deliveries", "sse:fixes", "sse:checks"],
        "errors": ["sse:issues"],
        "issues": ["sse:issues"],
        "checks": ["sse:checks"],
        "fixes": ["sse:fixes"],
        "metrics": ["sse:issues", "sse:fixes"],
    }
    async with web.client("viewer") as client:
        page = (await client.get("/")).text
        for card, triggers in topics.items():
            fragment = (await client.get("/", params={"fragment": card})).text
            assert fragment.startswith(f'<section class="card" id="card-{card}"'), card
            assert "<html" not in fragment and f'hx-get="/?fragment={card}' in fragment
            assert all(t in fragment for t in triggers), card
            assert f'id="card-{card}"' in page
        wrong = await client.get("/?fragment=everything")
    live = "topic=issues&amp;topic=checks&amp;topic=fixes&amp;topic=deliveries"
    assert f'"/live?{live}"' in page  # the stream the page follows
    assert wrong.status_code == 400


async def test_the_chart_covers_a_week_on_asking(web: ServedWeb) -> None:
    await store_events(web.database_url, [event(1)])
    async with web.client("viewer") as client:
        week = (await client.get("/api/v1/overview", params={"range": "7d"})).json()
        page = (await client.get("/", params={"range": "7d"})).text
        bad = await client.get("/api/v1/overview", params={"range": "1y"})
    assert len(week["errors"]["hours"]) == 168 and week["errors"]["range"] == "7d"
    assert 'hx-get="/?fragment=errors&amp;range=7d"' in page
    assert '<a href="/?range=7d" class="current"' in page
    assert bad.status_code == 400


async def test_hostile_service_and_title_come_out_escaped(web: ServedWeb) -> None:
    hostile = make_event(1, service=HOSTILE)
    hostile["exceptions"][0]["value"] = HOSTILE
    await store_events(web.database_url, [hostile])
    issue_id = await issue_of(web, 1)
    await proposed_fix(web.pool, await finding_of(web.pool, issue_id, "one"), NEEDS_APPROVAL)
    health = HealthStore(web.pool)
    await health.ensure_partitions()
    check = http_check("api", service=HOSTILE)
    await health.sync_checks([check], T0)
    await run_marks(health, check, "+")
    async with web.client("viewer") as client:
        pages = [(await client.get(path)).text for path in ("/", "/?fragment=fixes")]
    for page in pages:
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_viewer_reads_and_nobody_is_let_in(web: ServedWeb) -> None:
    async with web.client("viewer") as viewer, web.client() as nobody:
        assert (await viewer.get("/")).status_code == 200
        assert (await viewer.get("/api/v1/overview")).status_code == 200
        refused = await nobody.get("/api/v1/overview")
        page = await nobody.get("/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        401,
        "authentication_failed",
    )
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=")


async def test_the_api_says_what_the_page_shows(web: ServedWeb) -> None:
    await store_events(web.database_url, [event(n) for n in range(1, 4)])
    health = HealthStore(web.pool)
    await health.ensure_partitions()
    checks = [http_check(name) for name in ("a", "b")]
    await health.sync_checks(checks, T0)
    await run_marks(health, checks[0], "+")
    async with web.client("viewer") as client:
        data = (await client.get("/api/v1/overview")).json()
        page = (await client.get("/")).text
    assert {v["check"]["name"]: v["state"] for v in data["checks"]["checks"]} == check_rows(page)
    assert f'data-testid="open-total">{data["issues"]["total"]}<' in page
    for stage in data["pipeline"]["stages"]:
        assert f'data-stage="{stage["stage"]}" data-state="{stage["state"]}"' in page
    metrics = data["metrics"]
    assert f"{metrics['events_last_hour']} events in the last hour" in page


def by_hour(rows: list[tuple[str, datetime, int]]) -> dict[tuple[str, datetime], int]:
    summed: dict[tuple[str, datetime], int] = {}
    for service, hour, events in rows:
        summed[service, hour] = summed.get((service, hour), 0) + events
    return summed


async def test_the_kept_counts_say_what_a_fresh_read_says(web: ServedWeb) -> None:
    async def shift(minutes: int) -> None:
        """Move what was counted in the last two minutes back by ``minutes``, as if counted
        then: settled counts, which are kept."""
        await web.pool.execute(
            """UPDATE mendline.issue_counts SET minute = minute - make_interval(mins => $1)
               WHERE minute > now() - interval '2 minutes'""",
            minutes,
        )

    await store_events(web.database_url, [event(1), event(2, service="web")])
    await shift(300)  # an hour kept whole
    await store_events(web.database_url, [event(1), event(1)])
    await shift(20)  # minutes kept one by one, within the last hour
    await store_events(web.database_url, [event(2, service="web")])  # not settled: read each time
    reads, kept = DashboardReads(web.pool), ErrorCounts()
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    fresh = by_hour(await reads.event_counts("hour", start))
    for _ in range(2):  # the second from what the first kept
        rows, last_hour = await kept.read(reads, start, 24, now)
        assert (by_hour(rows), last_hour) == (fresh, 3)
    await store_events(web.database_url, [event(3, service="jobs")])
    rows, last_hour = await kept.read(reads, start, 24, datetime.now(UTC))
    assert by_hour(rows) == by_hour(await reads.event_counts("hour", start)) != fresh
    assert last_hour == 4


async def test_counts_that_land_late_in_a_past_minute_are_still_read(web: ServedWeb) -> None:
    # A consumer's batch counts into the minute it began by its own clock: a held-up batch
    # (or a clock behind the web's) lands in a minute that ended a few minutes ago.
    async def back(minutes: int) -> None:
        await web.pool.execute(
            """UPDATE mendline.issue_counts SET minute = minute - make_interval(mins => $1)
               WHERE minute > now() - interval '2 minutes'""",
            minutes,
        )

    await store_events(web.database_url, [event(1), event(2)])
    await back(3)
    reads, kept = DashboardReads(web.pool), ErrorCounts()
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    _, before = await kept.read(reads, start, 24, now)
    await store_events(web.database_url, [event(3), event(4), event(4)])
    await back(3)  # late: into the minute read three minutes ago
    rows, after = await kept.read(reads, start, 24, datetime.now(UTC))
    assert (before, after) == (2, 5)
    assert by_hour(rows) == by_hour(await reads.event_counts("hour", start))
