"""The dashboard's frame: security headers on every answer, errors as JSON under /api/ and as
pages elsewhere, the static files served from the package, the charts escaped."""

from __future__ import annotations

import re

import pytest

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
