"""The dashboard's frame: security headers on every answer, errors as JSON under /api/ and as
pages elsewhere, the static files served from the package, the charts escaped."""

from __future__ import annotations

import re

import httpx
import pytest
from aiohttp import web as web_

from mendline.web import WebDeps, build_app, serving_web
from mendline.web._charts import line_chart, sparkline, uptime_bars
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


async def test_every_answer_carries_the_security_headers(web: ServedWeb) -> None:
    async with web.client() as client:
        for path in ("/healthz", "/no/such/page", "/api/v1/no-such"):
            response = await client.get(path)
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"


async def test_a_bad_token_is_answered_401_as_json_under_the_api(web: ServedWeb) -> None:
    async with web.client(headers={"Authorization": "Bearer mlt_00000000_nope"}) as client:
        response = await client.get("/api/v1/anything")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


async def test_the_pages_load_only_our_own_small_scripts(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        page = await client.get("/issues")
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        assert [s.split("?")[0] for s in scripts] == [
            "/static/htmx.min.js",
            "/static/live.js",
            "/static/mendline.js",
        ]
        total = 0
        for src in scripts:
            response = await client.get(src)
            assert response.status_code == 200, src
            total += len(response.content)
    assert "<script>" not in page.text  # nothing inline (the CSP would refuse it anyway)
    assert total < 150 * 1024


def test_chart_labels_are_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    chart = str(line_chart({hostile: [1.0, None, 3.0]}, [hostile, "b", "c"]))
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert "<script>" not in str(sparkline([1, 2], label=hostile))
    assert "<script>" not in str(uptime_bars([(hostile, 0.5), ("b", None)]))


def test_a_gap_splits_the_line() -> None:
    chart = str(line_chart({"a": [1.0, None, 3.0, 4.0]}, ["1", "2", "3", "4"]))
    assert chart.count("<polyline") == 2


async def test_each_answer_says_how_long_the_handler_took(web: ServedWeb) -> None:
    async with web.client() as client:
        response = await client.get("/healthz")
    name, _, duration = response.headers["Server-Timing"].partition(";dur=")
    assert name == "app" and float(duration) >= 0


@pytest.mark.parametrize(
    "path",
    [
        "/alerts?limit=%C2%B2",  # "²".isdigit() is true, and int() refuses it
        "/api/v1/deliveries?cursor=%C2%B2",
        "/alerts?limit=" + "9" * 5000,  # int() refuses more than 4300 digits
        "/live?topic=issues&last_id=x-%C2%B2",  # replays nothing: a refresh
        "/audit?before=%C2%B2",
    ],
)
async def test_odd_numbers_are_never_a_server_error(web: ServedWeb, path: str) -> None:
    async with web.client("viewer") as client:
        if path.startswith("/live"):
            async with client.stream("GET", path) as stream:
                assert stream.status_code == 200
            return
        response = await client.get(path)
    assert response.status_code == 400, response.text[:300]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_a_body_nested_too_deep_is_a_400(web: ServedWeb) -> None:
    async with web.client("responder") as client:
        response = await client.post(
            "/api/v1/issues/bulk",
            content="[" * 100_000 + "]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "usage_error"
    assert "Content-Security-Policy" in response.headers


async def test_a_bug_is_a_500_page_with_the_headers_and_says_nothing_of_it(
    web: ServedWeb,
) -> None:
    app = build_app(WebDeps(settings=web.settings, pool=web.pool))

    async def broken(request: web_.Request) -> web_.Response:
        raise RuntimeError("secret detail of the bug")

    app.router.add_get("/api/v1/broken", broken)
    async with serving_web(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get(
            "/api/v1/broken", headers={"Authorization": f"Bearer {web.tokens['viewer']}"}
        )
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert "secret detail" not in answer.text
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


async def test_a_request_past_its_deadline_is_a_503_not_a_wait(
    web: ServedWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mendline.web import _app

    monkeypatch.setattr(_app, "REQUEST_DEADLINE", 0.000_001)  # as if the database hung
    async with web.client("viewer") as client:
        answer = await client.get("/api/v1/issues")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json()["error"]["code"] == "database_unavailable"


async def test_an_ended_session_sends_a_live_fragment_to_the_login_whole(web: ServedWeb) -> None:
    async with web.logged_in("viewer") as (browser, _):
        await web.pool.execute("DELETE FROM mendline.web_sessions")  # its timeouts, say
        fragment = await browser.get(
            "/issues?fragment=rows",
            headers={"HX-Request": "true", "HX-Current-URL": f"{web.url}/issues?tab=resolved"},
        )
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/login?next=%2Fissues%3Ftab%3Dresolved"
    assert "<form" not in fragment.text  # no login page swapped into the list


async def test_a_page_refreshing_itself_does_not_keep_its_session_from_idling(
    web: ServedWeb,
) -> None:
    async with web.logged_in("viewer") as (browser, _):
        await web.pool.execute(
            "UPDATE mendline.web_sessions SET last_seen_at = now() - interval '10 minutes'"
        )
        refreshed = await browser.get("/issues?fragment=rows", headers={"HX-Request": "true"})
        assert refreshed.status_code == 200
        idle = await web.pool.fetchval(
            "SELECT now() - last_seen_at > interval '9 minutes' FROM mendline.web_sessions"
        )
        assert idle is True  # a refresh by itself is no sign of the person
        assert (await browser.get("/issues")).status_code == 200
        seen = await web.pool.fetchval(
            "SELECT now() - last_seen_at < interval '1 minute' FROM mendline.web_sessions"
        )
        assert seen is True  # opening a page is
