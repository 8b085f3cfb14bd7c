"""The alerts page, served: deliveries by receiver and status, failures and retries with
their errors, attempts and next attempt, what is pending oldest first, the silences in
effect; filtered by receiver and status, paged; escaped; readable by a viewer; the same data
as JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mendline.analyzers.policy import parse_matcher
from mendline.schemas.people import Actor
from mendline.sinks.postgres import SilenceStore, append_audit
from tests.db_helpers import store_events
from tests.integration.event_factory import make_event
from tests.web.status_helpers import HOSTILE, Deliveries, settle_deliveries
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration

ERROR = "HTTP 503 from the webhook: " + HOSTILE


async def seeded(web: ServedWeb, tmp_path: Path, issues: int = 3) -> Deliveries:
    """``issues`` new issues, each routed to two receivers ('team' and a hostile one); of the
    deliveries one delivered, one retried, one failed, the rest pending."""
    await store_events(web.database_url, [make_event(i) for i in range(issues)])
    return await settle_deliveries(web.pool, tmp_path, ERROR)


def ids(page: str, testid: str) -> list[int]:
    return [int(i) for i in re.findall(rf'data-testid="{testid}" data-delivery-id="(\d+)"', page)]


async def test_the_alerts_page_shows_counts_troubles_and_what_is_pending(
    web: ServedWeb, tmp_path: Path
) -> None:
    settled = await seeded(web, tmp_path)
    async with web.client("viewer") as client:
        response = await client.get("/alerts")
        data = (await client.get("/api/v1/deliveries")).json()
    assert response.status_code == 200
    page = response.text
    counts = {r["receiver"]: r["counts"] for r in data["by_receiver"]}
    assert set(counts) == {"team", HOSTILE}
    assert data["totals"] == {
        "pending": len(settled.pending) + len(settled.retrying),
        "delivered": 1,
        "failed": 1,
        "dead": 0,
        "suppressed": 0,
    }
    assert sum(r["total"] for r in data["by_receiver"]) == 6  # 3 issues x 2 receivers
    # Failures and retries, newest first, with the error and when it is tried again.
    assert ids(page, "troubled-delivery") == sorted(settled.failed + settled.retrying)[::-1]
    retry = next(d for d in data["troubled"] if d["id"] in settled.retrying)
    assert (retry["status"], retry["attempts"], retry["last_error"]) == ("pending", 1, ERROR)
    next_attempt = datetime.fromisoformat(retry["due_at"])
    assert next_attempt > datetime.now(UTC) + timedelta(minutes=5)  # retried 600 s later
    # What is pending, oldest first: the released ones and the one being retried.
    assert ids(page, "pending-delivery") == sorted(settled.pending + settled.retrying)
    assert [d["id"] for d in data["pending"]] == ids(page, "pending-delivery")
    assert ids(page, "delivery-row") == [d["id"] for d in data["items"]]
    assert len(data["items"]) == 6 and data["next_cursor"] is None


async def test_filters_and_pages(web: ServedWeb, tmp_path: Path) -> None:
    settled = await seeded(web, tmp_path, issues=4)
    async with web.client("viewer") as client:
        team = (await client.get("/api/v1/deliveries", params={"receiver": "team"})).json()
        failed = (await client.get("/alerts", params={"status": "failed"})).text
        first = (await client.get("/api/v1/deliveries", params={"limit": 3})).json()
        second = (
            await client.get(
                "/api/v1/deliveries", params={"limit": 3, "cursor": first["next_cursor"]}
            )
        ).json()
        page = (await client.get("/alerts", params={"limit": 3})).text
        bad = [
            await client.get("/api/v1/deliveries", params=p)
            for p in ({"status": "lost"}, {"range": "1y"}, {"limit": 1000}, {"cursor": "x"})
        ]
    assert {d["receiver"] for d in team["items"]} == {"team"}
    assert {r["receiver"] for r in team["by_receiver"]} == {"team", HOSTILE}  # counts: all
    assert {d["receiver"] for d in team["pending"] + team["troubled"]} <= {"team"}
    assert re.findall(r'data-testid="delivery-row"[^>]*data-status="(\w+)"', failed) == ["failed"]
    assert ids(failed, "delivery-row") == settled.failed
    everything = [d["id"] for d in first["items"]] + [d["id"] for d in second["items"]]
    assert everything == sorted(everything, reverse=True) and len(set(everything)) == 6
    assert second["next_cursor"] == str(second["items"][-1]["id"])
    assert f'href="/alerts?range=7d&amp;cursor={first["next_cursor"]}"' in page
    assert [r.status_code for r in bad] == [400, 400, 400, 400]


async def test_silences_in_effect_are_shown(web: ServedWeb, tmp_path: Path) -> None:
    await seeded(web, tmp_path, issues=1)
    silences = SilenceStore(web.pool, append_audit, origin="test")
    rita = Actor(name="rita", role="responder", auth="local")
    made = await silences.add(
        rita, [parse_matcher("service=api")], datetime.now(UTC) + timedelta(hours=2), HOSTILE
    )
    async with web.client("viewer") as client:
        page = (await client.get("/alerts")).text
        data = (await client.get("/api/v1/deliveries")).json()
    assert [(s["id"], s["matchers"], s["created_by"]) for s in data["silences"]] == [
        (made.id, ["service=api"], "rita")
    ]
    assert f'data-testid="silence-row" data-silence-id="{made.id}"' in page
    assert "<code>service=api</code>" in page


async def test_a_hostile_receiver_and_error_come_out_escaped(
    web: ServedWeb, tmp_path: Path
) -> None:
    await store_events(web.database_url, [make_event(i, service=HOSTILE) for i in range(3)])
    await settle_deliveries(web.pool, tmp_path, ERROR)
    async with web.client("viewer") as client:
        pages = [
            (await client.get("/alerts")).text,
            (await client.get("/alerts", params={"receiver": HOSTILE})).text,
            (await client.get("/alerts?fragment=alerts")).text,
        ]
    for page in pages:
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_viewer_reads_and_nobody_is_let_in(web: ServedWeb, tmp_path: Path) -> None:
    await seeded(web, tmp_path, issues=1)
    async with web.client("viewer") as viewer, web.client() as nobody:
        assert (await viewer.get("/alerts")).status_code == 200
        assert (await viewer.get("/api/v1/deliveries")).status_code == 200
        refused = await nobody.get("/api/v1/deliveries")
        page = await nobody.get("/alerts")
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        401,
        "authentication_failed",
    )
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=")


async def test_the_live_fragment_refreshes_with_the_filters(web: ServedWeb, tmp_path: Path) -> None:
    await seeded(web, tmp_path, issues=1)
    async with web.client("viewer") as client:
        page = (await client.get("/alerts", params={"receiver": "team"})).text
        fragment = (await client.get("/alerts?fragment=alerts&receiver=team")).text
        wrong = await client.get("/alerts?fragment=nope")
    assert '"/live?topic=deliveries"' in page  # the stream the page follows
    assert 'hx-get="/alerts?receiver=team&amp;range=7d&amp;fragment=alerts"' in page
    assert fragment.startswith('<div id="alerts-live"') and "<html" not in fragment
    assert 'hx-trigger="sse:deliveries" data-live-every="2000"' in fragment
    assert wrong.status_code == 400


async def test_no_deliveries_says_so(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        page = (await client.get("/alerts")).text
        data = (await client.get("/api/v1/deliveries")).json()
    assert "No deliveries made in the last 7d" in page and "Nothing pending" in page
    assert (data["by_receiver"], data["pending"], data["troubled"], data["items"]) == (
        [],
        [],
        [],
        [],
    )
