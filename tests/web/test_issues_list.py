"""The issues list through the served dashboard: its tabs, search, sorts and keyset pages (on
the page and in the API alike), its sparklines, what it does with hostile text, its live
fragments, and its bulk actions as each role and in read-only mode."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.db_helpers import query, store_events
from tests.web.issues_helpers import (
    HOSTILE_MESSAGE,
    HOSTILE_TAG,
    audit_rows,
    element,
    event,
    execute,
    hostile_event,
    link,
    rows_of,
    seed_issues,
)
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


async def seed_states(url: str) -> None:
    """Issues 1 to 8 (api: 1-6 and 8, shop: 7), in the workflow's states: 3 resolved,
    4 ignored, 5 regressed, 6 escalating, 8 merged into 1; 2 carries the tag plan:pro and
    release 2.0."""
    batches: list[list[dict[str, Any]]] = [[event(n, minutes_ago=60 - n)] for n in range(1, 9)]
    batches[1] = [event(2, minutes_ago=58, tags={"region": "us", "plan": "pro"}, release="2.0")]
    batches[6] = [event(7, minutes_ago=53, service="shop")]
    await store_events(url, *batches)
    await execute(
        url,
        """UPDATE mendline.issues SET status = CASE id
               WHEN 3 THEN 'resolved' WHEN 4 THEN 'ignored' WHEN 8 THEN 'merged'
               ELSE status END,
           substatus = CASE id WHEN 5 THEN 'regressed' WHEN 6 THEN 'escalating' END,
           merged_into = CASE id WHEN 8 THEN 1 END""",
    )


async def page_ids(client: httpx.AsyncClient, path: str) -> list[int]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return rows_of(response.text)[0]


async def api_ids(client: httpx.AsyncClient, params: dict[str, Any]) -> list[int]:
    response = await client.get("/api/v1/issues", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("unresolved", [7, 6, 5, 2, 1]),
        ("regressed", [5]),
        ("escalating", [6]),
        ("ignored", [4]),
        ("resolved", [3]),
    ],
)
async def test_each_tab_lists_its_issues_and_the_api_the_same(
    web: ServedWeb, tab: str, expected: list[int]
) -> None:
    await seed_states(web.database_url)
    async with web.client("viewer") as client:
        assert await page_ids(client, f"/issues?tab={tab}") == expected
        assert await api_ids(client, {"tab": tab}) == expected
        assert await api_ids(client, {"status": tab}) == expected


async def test_the_tabs_show_their_counts(web: ServedWeb) -> None:
    await seed_states(web.database_url)
    async with web.client("viewer") as client:
        html = (await client.get("/issues")).text
        counted = (await client.get("/api/v1/issues")).json()["tab_counts"]
    assert counted == {
        "unresolved": 5,
        "regressed": 1,
        "escalating": 1,
        "ignored": 1,
        "resolved": 1,
    }
    for name, count in counted.items():
        tab = html[html.index(f'data-testid="tab-{name}"') :]
        assert f'<span class="badge count">{count}</span>' in tab[: tab.index("</a>")]
    escalating = element(html, "issue-tabs")
    assert escalating is not None and escalating["hx-trigger"] == "sse:issues"
    assert 'title="spiking:' in html  # Sentry's word for it, on the Escalating tab


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("order 2", [2]),  # words of the title
        ("handler_5", [5]),  # the culprit
        ("service:shop", [7]),
        ("release:2.0", [2]),
        ("plan:pro", [2]),
        ("region:eu", [7, 6, 5, 1]),
        ('region:eu "order 1"', [1]),
        ("env:production service:api", [6, 5, 2, 1]),
        ("nothing-like-it", []),
    ],
)
async def test_the_search_line_filters_the_list(
    web: ServedWeb, search: str, expected: list[int]
) -> None:
    await seed_states(web.database_url)
    async with web.client("viewer") as client:
        assert await page_ids(client, f"/issues?{httpx.QueryParams(q=search)}") == expected
        assert await api_ids(client, {"q": search}) == expected


async def test_the_api_takes_the_filters_on_their_own_too(web: ServedWeb) -> None:
    await seed_states(web.database_url)
    async with web.client("viewer") as client:
        assert await api_ids(client, {"service": "shop"}) == [7]
        assert await api_ids(client, {"tag": "plan:pro", "release": "2.0"}) == [2]
        assert await api_ids(client, {"text": "order 6", "tab": "escalating"}) == [6]
        assert await api_ids(client, {"last_seen_since": "1d", "tab": "all"}) == [
            7,
            6,
            5,
            4,
            3,
            2,
            1,
        ]
        for bad in (
            {"q": "service:a service:b"},
            {"q": "service:a", "service": "b"},
            {"cursor": "nonsense"},
            {"sort": "loudest"},
            {"tab": "merged"},
            {"limit": "many"},
            {"tag": "novalue"},
            {"first_seen_since": "yesterday"},
        ):
            response = await client.get("/api/v1/issues", params=bad)
            assert response.status_code == 400, bad
            assert response.json()["error"]["message"]
        page = await client.get("/issues", params={"cursor": "nonsense"})
        assert page.status_code == 400 and "not a cursor" in page.text


@pytest.mark.parametrize("sort", ["last_seen", "first_seen", "events", "events_1h", "trend"])
async def test_pages_walk_forward_and_back_without_gaps_or_repeats(
    web: ServedWeb, sort: str
) -> None:
    await seed_issues(web.database_url, 12)
    # Ties in every sort: the id must break them the same way on every page.
    await execute(
        web.database_url,
        """UPDATE mendline.issues SET last_seen = date_trunc('minute', now()),
               first_seen = date_trunc('minute', now()) - interval '1 hour', times_seen = 7
           WHERE id BETWEEN 3 AND 9""",
    )
    async with web.client("viewer") as client:
        whole = await api_ids(client, {"sort": sort, "limit": 100})
        assert sorted(whole) == list(range(1, 13))
        pages: list[list[int]] = []
        path: str | None = f"/issues?sort={sort}&limit=5"
        while path is not None:
            html = (await client.get(path)).text
            pages.append(rows_of(html)[0])
            path = link(html, "page-next")
        assert [len(p) for p in pages] == [5, 5, 2]
        assert [i for p in pages for i in p] == whole
        back: list[list[int]] = []
        path = link(html, "page-prev")
        while path is not None:
            html = (await client.get(path)).text
            back.append(rows_of(html)[0])
            path = link(html, "page-prev")
        assert back == pages[-2::-1]
        api_walk: list[int] = []
        cursor = None
        while True:
            answer = (
                await client.get(
                    "/api/v1/issues",
                    params={"sort": sort, "limit": 5, **({"cursor": cursor} if cursor else {})},
                )
            ).json()
            api_walk += [item["id"] for item in answer["items"]]
            cursor = answer["next_cursor"]
            if cursor is None:
                break
        assert api_walk == whole


async def test_the_rows_fragment_keeps_the_query_and_the_page(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 7)
    async with web.client("viewer") as client:
        first = (await client.get("/issues?q=order&sort=first_seen&limit=3")).text
        second_path = link(first, "page-next")
        assert second_path is not None
        page = (await client.get(second_path)).text
        rows = element(page, "issue-rows")
        assert rows is not None and rows["hx-trigger"] == "sse:issues"
        assert rows["data-live-every"] == "500"  # live.js: at most twice a second, the last kept
        fragment_url = rows["hx-get"]
        assert fragment_url is not None
        for kept in ("q=order", "sort=first_seen", "limit=3", "cursor=", "fragment=rows"):
            assert kept in fragment_url
        fragment = await client.get(fragment_url)
        assert fragment.status_code == 200
        assert fragment.text.lstrip().startswith("<tbody")
        assert rows_of(fragment.text)[0] == rows_of(page)[0] == [4, 3, 2]
        tabs = (await client.get("/issues?q=order&fragment=tabs")).text
        assert tabs.lstrip().startswith('<nav class="tabs"') and "<tbody" not in tabs


async def test_the_sparkline_shows_the_stored_counts(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 2)
    await execute(
        web.database_url,
        """DELETE FROM mendline.issue_counts;
           INSERT INTO mendline.issue_counts (issue_id, minute, count) VALUES
               (1, date_trunc('minute', now()) - interval '30 minutes', 3),
               (1, date_trunc('minute', now()) - interval '5 hours', 2),
               (1, date_trunc('minute', now()) - interval '5 hours 1 minute', 4),
               (1, date_trunc('minute', now()) - interval '30 hours', 9),
               (2, date_trunc('minute', now()) - interval '23 hours', 1)""",
    )
    async with web.client("viewer") as client:
        for _ in range(3):  # again if an hour began meanwhile
            hour = await query(web.database_url, "SELECT date_trunc('hour', now()) AS h")
            html = (await client.get("/issues")).text
            api = (await client.get("/api/v1/issues")).json()["items"]
            stored = await query(
                web.database_url,
                """SELECT c.issue_id, (extract(epoch FROM date_trunc('hour', now())
                          - date_trunc('hour', c.minute)) / 3600)::int AS ago, c.count
                   FROM mendline.issue_counts c""",
            )
            if hour == await query(web.database_url, "SELECT date_trunc('hour', now()) AS h"):
                break
    expected = {1: [0] * 24, 2: [0] * 24}
    for row in stored:
        if row["ago"] < 24:
            expected[row["issue_id"]][23 - row["ago"]] += row["count"]
    assert sum(expected[1]) == 9 and sum(expected[2]) == 1  # the 30 hours old count is out
    assert rows_of(html)[1] == expected
    assert {item["id"]: item["sparkline"] for item in api} == expected


async def test_hostile_text_is_escaped_on_the_list(web: ServedWeb) -> None:
    await store_events(web.database_url, [hostile_event(1)])
    async with web.client("viewer") as client:
        html = (await client.get("/issues")).text
        search = 'evil:"' + HOSTILE_TAG.replace('"', '\\"') + '"'  # a quote in it escaped
        searched = (await client.get("/issues", params={"q": search})).text
        api = (await client.get("/api/v1/issues", params={"q": search})).json()
    assert HOSTILE_MESSAGE not in html
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert rows_of(searched)[0] == [1] and [i["id"] for i in api["items"]] == [1]
    assert HOSTILE_TAG not in searched and "<img" not in searched
    assert 'value="evil:&#34;\\&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&#34;"' in searched


async def test_bulk_actions_of_a_responder_are_done_and_audited(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 6)
    await execute(web.database_url, "UPDATE mendline.issues SET times_seen = 10 WHERE id = 5")
    async with web.client("responder") as client:
        page = (await client.get("/issues?sort=events")).text
        for button in ("bulk-resolve", "bulk-ignore", "bulk-merge"):
            assert element(page, button) is not None
        resolved = await client.post(
            "/issues/bulk",
            data={"action": "resolve", "ids": ["1", "2"], "back": "/issues?sort=events"},
        )
        assert resolved.status_code == 303
        assert resolved.headers["location"] == "/issues?sort=events&done=resolve&count=2"
        shown = (await client.get(resolved.headers["location"])).text
        assert "Resolved 2 issues." in shown
        ignored = await client.post(
            "/issues/bulk", data={"action": "ignore", "ids": ["3"], "for": "1h"}
        )
        assert ignored.status_code == 303 and ignored.headers["location"].startswith("/issues?")
        merged = await client.post(
            "/api/v1/issues/bulk", json={"action": "merge", "ids": [4, 5, 6]}
        )
        assert merged.status_code == 200
        assert merged.json() == {
            "action": "merge",
            "results": [{"id": 4, "changed": True}, {"id": 6, "changed": True}],
            "done": 2,
            "failed": 0,
            "merged_into": 5,  # the one with the most events
        }
        # Issue 1 is resolved already: resolving it again changes nothing; 99 is no issue.
        again = await client.post("/api/v1/issues/bulk", json={"action": "resolve", "ids": [1, 99]})
        assert again.json()["results"] == [
            {"id": 1, "changed": False},
            {
                "id": 99,
                "error": {
                    "code": "issue_not_found",
                    "message": again.json()["results"][1]["error"]["message"],
                },
            },
        ]
        failed_page = await client.post(
            "/issues/bulk", data={"action": "reopen", "ids": ["1", "99"]}
        )
        assert failed_page.status_code == 409 and "1 done, 1 not" in failed_page.text
    states = await query(
        web.database_url, "SELECT id, status, merged_into FROM mendline.issues ORDER BY id"
    )
    assert [(r["status"], r["merged_into"]) for r in states] == [
        ("unresolved", None),  # reopened last
        ("resolved", None),
        ("ignored", None),
        ("merged", 5),
        ("unresolved", None),
        ("merged", 5),
    ]
    resolves = await audit_rows(web.database_url, "issue.resolve")
    assert [(r["target"], r["actor_name"], r["origin"]) for r in resolves] == [
        ("issue:1", "responder", "web@127.0.0.1"),
        ("issue:2", "responder", "web@127.0.0.1"),
    ]
    assert [r["target"] for r in await audit_rows(web.database_url, "issue.merge")] == [
        "issue:4",
        "issue:6",
    ]
    assert len(await audit_rows(web.database_url, "issue.ignore")) == 1


async def test_a_viewer_sees_no_bulk_actions_and_is_refused_them(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 2)
    async with web.client("viewer") as client:
        page = (await client.get("/issues")).text
        assert element(page, "bulk-resolve") is None and 'name="ids"' not in page
        for action in ("resolve", "ignore", "merge"):
            form = await client.post("/issues/bulk", data={"action": action, "ids": ["1", "2"]})
            assert form.status_code == 403
            api = await client.post("/api/v1/issues/bulk", json={"action": action, "ids": [1, 2]})
            assert api.status_code == 403 and api.json()["error"]["code"] == "permission_denied"
    states = await query(web.database_url, "SELECT DISTINCT status FROM mendline.issues")
    assert [r["status"] for r in states] == ["unresolved"]
    assert (
        await query(
            web.database_url, "SELECT 1 FROM mendline.audit_log WHERE action LIKE 'issue.%'"
        )
        == []
    )


async def test_a_read_only_dashboard_hides_and_refuses_bulk_actions(fresh_db_url: str) -> None:
    await seed_issues(fresh_db_url, 2)
    async with (
        served_web(fresh_db_url, web_read_only=True) as served,
        served.client("admin") as client,
    ):
        page = (await client.get("/issues")).text
        assert rows_of(page)[0] == [2, 1]
        assert element(page, "bulk-resolve") is None and 'name="ids"' not in page
        refused = await client.post("/api/v1/issues/bulk", json={"action": "resolve", "ids": [1]})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]["message"]
    states = await query(fresh_db_url, "SELECT DISTINCT status FROM mendline.issues")
    assert [r["status"] for r in states] == ["unresolved"]


@pytest.mark.parametrize(
    "back",
    [
        "https://evil.example/",
        "//evil.example/issues",
        "/issues\\evil",
        "/issues\r\nSet-Cookie: x=1",
        "/admin",
    ],
)
async def test_a_bulk_form_goes_back_only_to_the_list(web: ServedWeb, back: str) -> None:
    await seed_issues(web.database_url, 1)
    async with web.client("responder") as client:
        done = await client.post(
            "/issues/bulk", data={"action": "resolve", "ids": ["1"], "back": back}
        )
    assert done.status_code == 303
    assert done.headers["location"] == "/issues?done=resolve&count=1"


async def test_a_filtered_lists_links_and_live_fragments_keep_its_filters(web: ServedWeb) -> None:
    await store_events(web.database_url, [event(i, service="api") for i in range(1, 4)])
    await store_events(web.database_url, [event(9, service="billing")])
    asked = {"service": "api", "tag": "region:eu", "limit": "2", "last_seen_since": "24h"}
    async with web.client("viewer") as client:
        page = (await client.get("/issues", params=asked)).text
        rows = element(page, "issue-rows")
        assert rows is not None and rows["hx-get"] is not None
        urls = [rows["hx-get"], link(page, "page-next")]
        for url in urls:
            assert url is not None
            for kept in ("service=api", "tag=region%3Aeu", "last_seen_since=24h", "limit=2"):
                assert kept in url, (kept, url)
        refreshed = await client.get(rows["hx-get"])
        next_page = await client.get(urls[1] or "")
    shown = rows_of(refreshed.text)[0] + rows_of(next_page.text)[0]
    assert len(shown) == len(set(shown)) == 3  # the three api issues, never billing's
