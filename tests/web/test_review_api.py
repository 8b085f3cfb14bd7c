"""``GET /api/v1/review/context`` on the served dashboard, over the sample shop's real
production: with a token of any role, without one (401), with parameters it refuses (400);
and DashboardProductionSource reading it back into the review's records, its errors (a
refused token never shown, unreachable, a timeout, answers that are not the API's)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import pytest_asyncio

from mendline.cli._review_sources import DashboardProductionSource
from mendline.devstack import free_port
from mendline.schemas.errors import ServiceError
from mendline.schemas.people import ROLES
from mendline.sinks.postgres import PostgresProductionSource
from tests.db_helpers import fresh_database
from tests.loopback import LoopbackHTTPServer, QuietHandler
from tests.review_helpers import Production, seed_production
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

PATH = "/api/v1/review/context"
NAMES = ["shop.py", "_logging.py"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop_web(database_url: str) -> AsyncIterator[tuple[ServedWeb, Production]]:
    """The dashboard over the shop's production, one for the module."""
    async with fresh_database(database_url) as url, served_web(url) as web:
        yield web, await seed_production(url)


async def test_any_role_reads_the_context_with_its_token(
    shop_web: tuple[ServedWeb, Production],
) -> None:
    web, seeded = shop_web
    expected = await PostgresProductionSource(web.pool).issues(NAMES, resolved_within_days=30)
    assert len(expected) >= 4
    for role in ROLES:
        async with web.client(role) as client:
            answer = await client.get(PATH, params=[("file", n) for n in NAMES])
        assert answer.status_code == 200, (role, answer.text)
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.json()
        assert [i["issue_id"] for i in body["issues"]] == [r.issue_id for r in expected]
        assert [(r["id"], r["number"]) for r in body["rules"]] == [
            (f"MRL{seeded.rules[0]}", seeded.rules[0])
        ]
    gift = next(i for i in body["issues"] if i["issue_id"] == seeded.issues["gift_wrap"])
    assert gift["patch"] == seeded.gift_patch and gift["verdict"] == "right"
    assert gift["frames"][0]["function"] == "gift_wrap_fee"
    async with web.client("viewer") as client:
        rules_only = (await client.get(PATH)).json()
        longer = (await client.get(PATH + "?file=shop.py&resolved_within_days=60")).json()
    assert rules_only["issues"] == [] and len(rules_only["rules"]) == 1
    assert seeded.issues["bad_quantity"] in [i["issue_id"] for i in longer["issues"]]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("file=shop.py", 401),
        ("file=shop%2Fapi.py", 400),
        ("file=..", 400),
        ("file=a%0Ab.py", 400),
        ("file=" + "x" * 256, 400),
        ("&".join(f"file=f{n}.py" for n in range(201)), 400),
        ("file=shop.py&resolved_within_days=366", 400),
        ("file=shop.py&resolved_within_days=-1", 400),
        ("file=shop.py&resolved_within_days=7d", 400),
    ],
)
async def test_what_is_refused(
    shop_web: tuple[ServedWeb, Production], query: str, status: int
) -> None:
    web, _ = shop_web
    async with web.client(None if status == 401 else "viewer") as client:
        answer = await client.get(f"{PATH}?{query}")
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == ("authentication_failed" if status == 401 else "usage_error")
    assert "issues" not in answer.json()


async def test_the_dashboard_source_reads_what_postgresql_has(
    shop_web: tuple[ServedWeb, Production],
) -> None:
    web, _ = shop_web
    direct = PostgresProductionSource(web.pool)
    source = DashboardProductionSource(web.url + "/", web.tokens["viewer"], timeout=10)
    read = await source.issues([*NAMES, "shop.py"], resolved_within_days=30)
    linked = [
        replace(r, link=f"{web.url}/issues/{r.issue_id}")
        for r in await direct.issues(NAMES, resolved_within_days=30)
    ]
    assert read == linked
    assert await source.learned_rules() == [
        replace(r, link=f"{web.url}/issues/{r.issue_id}") for r in await direct.learned_rules()
    ]
    # Rules alone, before any issue is asked for
    fresh = DashboardProductionSource(web.url, web.tokens["viewer"])
    assert [r.number for r in await fresh.learned_rules()] == [
        r.number for r in await direct.learned_rules()
    ]
    # More file names than one call takes: asked for in several, merged
    many = [f"f{n}.py" for n in range(450)] + ["shop.py"]
    in_shop = await direct.issues(["shop.py"], resolved_within_days=30)
    assert await source.issues(many, resolved_within_days=30) == [
        replace(r, link=f"{web.url}/issues/{r.issue_id}") for r in in_shop
    ]


async def test_a_refused_token_is_never_shown(shop_web: tuple[ServedWeb, Production]) -> None:
    web, _ = shop_web
    token = web.tokens["viewer"][:-4] + "abcd"
    source = DashboardProductionSource(web.url, token)
    with pytest.raises(ServiceError) as caught:
        await source.issues(["shop.py"], resolved_within_days=30)
    error = caught.value
    assert (error.code, error.status, error.retriable) == ("http_401", 401, False)
    assert error.hint is not None and "token" in error.hint
    for shown in (str(error), repr(error), repr(source), error.hint):
        assert token not in shown and token[:20] not in shown


class _Odd(QuietHandler):
    """Answers by path: ``/slow`` too late, ``/echo`` a 500 that echoes the token,
    ``/naive`` a time without its offset, else a 200 that is not the API's answer."""

    def do_GET(self) -> None:
        base = self.path.split("/api/", 1)[0]
        if base == "/slow":
            time.sleep(2)
        if base == "/echo":
            body = {"error": {"message": "bad " + self.headers.get("Authorization", "")}}
            status = 500
        elif base == "/naive":
            rule = {"number": 1, "shape": "s", "example": "e", "title": "t", "issue_id": 1}
            body = {
                "issues": [],
                "rules": [rule | {"finding_id": None, "created_at": "2026-01-01T00:00:00"}],
            }
            status = 200
        else:
            body = {"issues": [{"issue_id": "one"}], "rules": []}
            status = 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def odd() -> Iterator[str]:
    server = LoopbackHTTPServer(_Odd)
    server.start()
    try:
        yield server.base
    finally:
        server.close()


@pytest.mark.parametrize(
    ("where", "code", "retriable"),
    [
        ("/slow", "timeout", True),
        ("/echo", "http_500", True),
        ("/naive", "bad_response", False),
        ("/shapeless", "bad_response", False),
        (None, "unreachable", True),
    ],
)
async def test_errors_are_the_error_trees(
    odd: str, where: str | None, code: str, retriable: bool
) -> None:
    base = odd + where if where is not None else f"http://127.0.0.1:{free_port()}"
    token = "mlt_secret0token_" + "s" * 32
    source = DashboardProductionSource(base, token, timeout=0.5)
    with pytest.raises(ServiceError) as caught:
        await source.issues(["shop.py"], resolved_within_days=30)
    assert (caught.value.code, caught.value.retriable) == (code, retriable)
    assert token not in str(caught.value)
    if where == "/echo":
        assert "bad Bearer [Filtered]" in str(caught.value)
