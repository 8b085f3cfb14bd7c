"""The health page and a check's page, served: every check and heartbeat with the state the
monitor judged (maintenance while a window is open), uptime bars, response times, recent
results with the values their conditions read, maintenance windows, a heartbeat's
check-ins; escaped; readable by a viewer; the same data as JSON; a check going down shows."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.health import HeartbeatVerdict, heartbeat_result
from mendline.ingest import prepare_checkin
from mendline.schemas.checks import HeartbeatCheck
from mendline.sinks.postgres import CheckinStore, HealthStore
from tests.web.status_helpers import (
    HOSTILE,
    T0,
    heartbeat_check,
    http_check,
    probe_result,
    record,
    run_marks,
)
from tests.web.web_helpers import ServedWeb

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

pytestmark = pytest.mark.integration


def rows(page: str) -> dict[str, str]:
    """The check rows of a page: name -> state shown."""
    return dict(
        re.findall(r'data-testid="check-row" data-check-name="([^"]+)" data-state="([^"]+)"', page)
    )


async def health_store(web: ServedWeb) -> HealthStore:
    store = HealthStore(web.pool)
    await store.ensure_partitions()
    return store


async def checkin(web: ServedWeb, check: str, status: str, at: datetime, **fields: object) -> None:
    """A check-in as the check-ins consumer stores it."""
    document = {
        "schema_version": 1,
        "checkin_id": str(uuid.uuid4()),
        "check": check,
        "status": status,
        "timestamp": at.isoformat(),
        **fields,
    }
    prepared = prepare_checkin(json.dumps(document).encode(), at, Scrubber())
    await CheckinStore(web.pool).store([prepared])


async def test_the_health_page_shows_each_check_with_its_state_and_figures(web: ServedWeb) -> None:
    store = await health_store(web)
    now = datetime.now(UTC)
    api, db, quiet = http_check("api"), http_check("db"), http_check("quiet")
    # A window open around now: its check is shown in maintenance, whatever it was judged.
    window = {"start": (now - timedelta(hours=1)).isoformat(), "duration": "1d"}
    batch = http_check("batch", maintenance=[window])
    nightly = heartbeat_check("nightly")
    await store.sync_checks([api, db, quiet, batch, nightly], T0)
    await run_marks(store, api, "++++", responses=[0.1, 0.1, 0.1, 0.4])
    await run_marks(store, db, "++--")
    await run_marks(store, batch, "+")
    async with web.client("viewer") as client:
        response = await client.get("/health")
        listed = (await client.get("/api/v1/checks")).json()
    assert response.status_code == 200
    page = response.text
    assert rows(page) == {
        "api": "up",
        "db": "down",
        "quiet": "unknown",
        "batch": "maintenance",
        "nightly": "unknown",
    }
    assert page.count('class="uptime"') == 5  # a bar chart per check
    by_name = {v["check"]["name"]: v for v in listed["checks"] + listed["heartbeats"]}
    # db: up for 2 of its 4 minutes (the first result counts one interval).
    assert by_name["db"]["last_30d"]["uptime"] == pytest.approx(0.5)
    assert by_name["api"]["last_30d"]["uptime"] == 1.0
    assert by_name["quiet"]["last_30d"]["uptime"] is None  # no result: no figure
    # The bars: 90 days, yesterday's from the results, the days before without data.
    days = by_name["db"]["days"]
    assert len(days) == 90 and days[-2] == [T0.date().isoformat(), pytest.approx(0.5)]
    assert [up for _, up in days[:-2]] == [None] * 88
    # api's p95 is its slow answer's (400 ms, within the histogram's 4.4 %).
    assert by_name["api"]["last_30d"]["p95_ms"] == pytest.approx(400, rel=0.05)
    assert by_name["api"]["check"]["last_response_ms"] == pytest.approx(400)
    assert [v["check"]["name"] for v in listed["heartbeats"]] == ["nightly"]
    assert by_name["batch"]["in_maintenance"] is True


async def test_a_checks_page_has_its_chart_results_windows_and_state(web: ServedWeb) -> None:
    store = await health_store(web)
    # Two days that are neither today nor yesterday in Paris: the window is never open now.
    today = datetime.now(ZoneInfo("Europe/Paris")).weekday()
    days = [_WEEKDAYS[(today + 2) % 7], _WEEKDAYS[(today + 4) % 7]]
    weekly = {"days": days, "at": "02:30", "duration": "2h", "timezone": "Europe/Paris"}
    api = http_check("api", maintenance=[weekly])
    await store.sync_checks([api], T0)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    await run_marks(store, api, "++-+", start=start, responses=[0.02, 0.03, 0.5, 0.04])
    await record(
        store,
        api,
        probe_result(api, start + timedelta(minutes=10), False, observed="502 bad gateway"),
    )
    async with web.client("viewer") as client:
        page = (await client.get("/health/checks/api")).text
        detail = (await client.get("/api/v1/checks/api")).json()
        week = (await client.get("/api/v1/checks/api?range=7d&limit=2")).json()
    assert 'data-testid="check-header" data-check-name="api" data-state="down"' in page
    assert page.count('data-testid="result-row"') == 5
    assert "502 bad gateway" in page  # the value its condition read
    assert f"{days[0]}, {days[1]} at 02:30 for 2h (Europe/Paris)" in page
    assert "<polyline" in page  # the response-time chart has lines
    assert [r["success"] for r in detail["results"]] == [False, True, False, True, True]
    hours = detail["hours"]
    assert len(hours) == 1 and hours[0]["results"] == 5
    assert hours[0]["p50_ms"] is not None and hours[0]["p99_ms"] >= hours[0]["p50_ms"]
    described = f"{days[0]}, {days[1]} at 02:30 for 2h (Europe/Paris)"
    assert detail["windows"][0]["description"] == described
    assert detail["next_window_change"] is not None
    assert (week["range"], len(week["results"])) == ("7d", 2)


async def test_a_heartbeats_page_has_its_check_ins_and_run_time(web: ServedWeb) -> None:
    store = await health_store(web)
    nightly = heartbeat_check("nightly")
    assert isinstance(nightly, HeartbeatCheck)
    await store.sync_checks([nightly], T0)
    ran = datetime.now(UTC) - timedelta(minutes=30)
    await checkin(web, "nightly", "start", ran - timedelta(seconds=12), run_id="r1")
    await checkin(web, "nightly", "ok", ran, run_id="r1", duration=12.5, host="batch-1")
    verdict = HeartbeatVerdict(ran, True, None, None, 12.5, None)
    await record(store, nightly, heartbeat_result(nightly, verdict))
    async with web.client("viewer") as client:
        health = (await client.get("/health")).text
        page = (await client.get("/health/checks/nightly")).text
        detail = (await client.get("/api/v1/checks/nightly")).json()
    assert rows(health) == {"nightly": "up"}
    assert "12.5 s" in health  # its last run time
    checkins = [(c["status"], c["run_id"]) for c in detail["checkins"]]
    assert checkins == [("ok", "r1"), ("start", "r1")]
    assert detail["view"]["check"]["last_checkin_status"] == "ok"
    assert page.count('data-testid="checkin-row"') == 2 and "batch-1" in page


async def test_hostile_text_from_a_check_comes_out_escaped(web: ServedWeb) -> None:
    store = await health_store(web)
    api = http_check("api", service=HOSTILE)
    await store.sync_checks([api], T0)
    failed = probe_result(api, T0, False, observed=HOSTILE, error=HOSTILE, error_kind="other")
    await record(store, api, failed)
    async with web.client("viewer") as client:
        pages = [(await client.get(p)).text for p in ("/health", "/health/checks/api", "/")]
    for page in pages:
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_viewer_reads_and_nobody_is_let_in(web: ServedWeb) -> None:
    store = await health_store(web)
    await store.sync_checks([http_check("api")], T0)
    async with web.client("viewer") as viewer, web.client() as nobody:
        for path in ("/health", "/health/checks/api", "/api/v1/checks", "/api/v1/checks/api"):
            assert (await viewer.get(path)).status_code == 200, path
        for path in ("/api/v1/checks", "/api/v1/checks/api"):
            refused = await nobody.get(path)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "authentication_failed"
        login = await nobody.get("/health")
        assert login.status_code == 303 and login.headers["Location"].startswith("/login?next=")


async def test_an_unknown_check_or_parameter_is_refused(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        missing = await client.get("/api/v1/checks/nope")
        page = await client.get("/health/checks/nope")
        bad = [
            await client.get(path)
            for path in (
                "/api/v1/checks/nope?range=1y",
                "/health?fragment=everything",
                "/api/v1/checks/nope?limit=100000",
            )
        ]
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "check_not_found")
    assert page.status_code == 404 and "nope" in page.text
    assert [r.status_code for r in bad] == [400, 400, 400]


async def test_the_api_says_what_the_page_shows(web: ServedWeb) -> None:
    store = await health_store(web)
    checks = [http_check(name) for name in ("a", "b", "c")]
    await store.sync_checks([*checks, heartbeat_check("hb")], T0)
    for check, marks in zip(checks, ("+", "-", "+-+"), strict=True):
        await run_marks(store, check, marks)
    async with web.client("viewer") as client:
        page = (await client.get("/health")).text
        listed = (await client.get("/api/v1/checks")).json()
        detail = (await client.get("/api/v1/checks/c")).json()
        check_page = (await client.get("/health/checks/c")).text
    api_states = {v["check"]["name"]: v["state"] for v in listed["checks"] + listed["heartbeats"]}
    assert api_states == rows(page)
    assert page.count('data-testid="result-row"') == 0
    assert check_page.count('data-testid="result-row"') == len(detail["results"]) == 3
    assert f'data-state="{detail["view"]["state"]}"' in check_page


async def test_a_check_going_down_shows_in_its_live_fragments(web: ServedWeb) -> None:
    store = await health_store(web)
    api = http_check("api")
    await store.sync_checks([api], T0)
    await run_marks(store, api, "+")
    async with web.client("viewer") as client:
        page = (await client.get("/health")).text
        before = (await client.get("/health?fragment=checks")).text
        await record(store, api, probe_result(api, T0 + timedelta(minutes=1), False))
        after = (await client.get("/health?fragment=checks")).text
        state = (await client.get("/health/checks/api?fragment=state")).text
        check_page = (await client.get("/health/checks/api")).text
    assert '"/live?topic=checks"' in page  # the stream the page follows
    assert after.startswith('<section id="health-checks"') and 'hx-trigger="sse:checks"' in after
    assert "<html" not in after
    assert (rows(before), rows(after)) == ({"api": "up"}, {"api": "down"})
    assert state.startswith('<section id="check-state"') and 'data-state="down"' in state
    assert "sse:check-api" in state
    assert "topic=check-api" in check_page


async def test_no_checks_says_how_to_add_them(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        page = await client.get("/health")
        listed = await client.get("/api/v1/checks")
    assert "mendline checks example" in page.text
    assert listed.json()["checks"] == [] and listed.json()["heartbeats"] == []
    assert isinstance(listed, httpx.Response)
