"""The audit page on the served dashboard and the real, chained audit trail: rows newest first,
filtered and paged as the JSON API pages them, before and after shown escaped, and the chain's
status at the top: intact through the newest row, and where it breaks once a row is altered or
removed behind the trigger."""

from __future__ import annotations

import re

import pytest

from mendline.schemas.people import SYSTEM_ACTOR
from mendline.sinks.postgres import PeopleStore, append_audit
from tests.db_helpers import behind_audit_trigger, query
from tests.web.fixes_helpers import HOSTILE
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-testid="audit-row" data-id="(\d+)"', html)]


def chain_status(html: str) -> str:
    found = re.search(r'<p id="chain-status"[^>]*>(.*?)</p>', html, re.S)
    assert found is not None, html
    return re.sub(r"<[^>]+>", "", found[1]).strip()


async def ids_of(url: str, where: str = "TRUE") -> list[int]:
    rows = await query(url, f"SELECT id FROM mendline.audit_log WHERE {where} ORDER BY id DESC")
    return [r["id"] for r in rows]


async def test_the_trail_is_shown_newest_first_and_filtered(web: ServedWeb) -> None:
    every = await ids_of(web.database_url)
    users = await ids_of(web.database_url, "action = 'user.add'")
    async with web.client("viewer") as client:
        page = await client.get("/audit")
        filtered = await client.get("/audit", params={"action": "user.", "actor": "mendline"})
        target = await client.get("/audit", params={"target": "user:admin"})
        future = await client.get("/audit", params={"since": "2999-01-01T00:00:00Z"})
        recent = await client.get("/audit", params={"since": "1h", "until": "2999-01-01"})
        api = (await client.get("/api/v1/audit", params={"action": "user."})).json()
    assert page.status_code == 200 and len(every) == 8  # a user and a token of each role
    assert row_ids(page.text) == every
    assert row_ids(filtered.text) == users
    assert len(row_ids(target.text)) == 1 and "user:admin" in target.text
    assert row_ids(future.text) == [] and 'id="audit-empty"' in future.text
    assert row_ids(recent.text) == every
    assert [row["id"] for row in api["rows"]] == users
    assert api["rows"][0]["actor"]["name"] == "mendline"
    assert api["rows"][0]["after"] == {"role": "admin"}  # the last user added


async def test_the_trail_pages_with_a_keyset_cursor(web: ServedWeb) -> None:
    every = await ids_of(web.database_url)
    async with web.client("viewer") as client:
        first = await client.get("/audit", params={"limit": 3, "actor": "mendline"})
        api = (await client.get("/api/v1/audit", params={"limit": 3})).json()
        found = re.search(r'id="audit-next" href="/audit\?([^"]+)"', first.text)
        assert found is not None
        second = await client.get("/audit?" + found[1].replace("&amp;", "&") + "&limit=3")
    assert row_ids(first.text) == every[:3]
    assert "actor=mendline" in found[1] and f"before={every[2]}" in found[1]
    assert row_ids(second.text) == every[3:6]
    assert api["next_before"] == every[2]


async def test_before_and_after_are_shown_escaped(web: ServedWeb) -> None:
    people = PeopleStore(web.pool, append_audit, origin=HOSTILE)
    await people.add_user(SYSTEM_ACTOR, HOSTILE, "viewer")
    async with web.client("viewer") as client:
        page = await client.get("/audit", params={"action": "user.add"})
    assert "<script>" not in page.text
    assert "user:&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the target
    assert (
        '<pre class="json" data-testid="audit-after">{\n  &#34;role&#34;: &#34;viewer&#34;\n}'
        in (page.text)
    )


async def test_the_chain_is_intact_through_the_newest_row(web: ServedWeb) -> None:
    newest = (await ids_of(web.database_url))[0]
    async with web.client("viewer") as client:
        page = await client.get("/audit")
        people = PeopleStore(web.pool, append_audit, origin="test")
        await people.add_user(SYSTEM_ACTOR, "nora", "viewer")  # a row since the last view
        later = await client.get("/audit")
        verify = (await client.get("/api/v1/audit/verify")).json()
    assert chain_status(page.text) == f"intact Chain intact through #{newest} (8 rows)."
    assert chain_status(later.text) == f"intact Chain intact through #{newest + 1} (9 rows)."
    assert (verify["intact"], verify["rows"], verify["last_id"]) == (True, 9, newest + 1)


async def test_an_altered_row_is_where_the_chain_breaks(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url) as web:
        async with web.client("viewer") as client:
            intact = await client.get("/audit")
        second = sorted(await ids_of(fresh_db_url))[1]
        await behind_audit_trigger(
            fresh_db_url,
            """UPDATE mendline.audit_log SET after = '{"role": "admin"}' WHERE id = $1""",
            second,
        )
        async with web.client("viewer") as client:
            walked = await client.get("/audit", params={"verify": "full"})
            verify = (await client.get("/api/v1/audit/verify")).json()
            page = await client.get("/audit")
        assert 'data-intact="yes"' in intact.text
        assert f'data-intact="no" data-broken="{second}"' in walked.text
        status = chain_status(walked.text)
        assert status.startswith(f"broken Chain broken at #{second}: row {second} (")
        assert status.endswith(f"its content was altered. Intact through #{second - 1}.")
        assert (verify["intact"], verify["broken_id"], verify["reason"]) == (
            False,
            second,
            "altered",
        )
        assert f'data-broken="{second}"' in page.text  # a break stays shown


async def test_a_removed_row_is_found_by_the_first_view(web: ServedWeb) -> None:
    third = sorted(await ids_of(web.database_url))[2]
    await behind_audit_trigger(
        web.database_url, "DELETE FROM mendline.audit_log WHERE id = $1", third - 1
    )
    async with web.client("viewer") as client:
        page = await client.get("/audit")
        verify = (await client.get("/api/v1/audit/verify")).json()
    assert chain_status(page.text).startswith(
        f"broken Chain broken at #{third}: the row before {third} was removed or altered."
    )
    assert verify["reason"] == "removed" and verify["broken_id"] == third


async def test_bad_filters_are_refused_and_nobody_is_sent_to_log_in(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        bad_time = await client.get("/api/v1/audit", params={"since": "yesterday"})
        bad_page = await client.get("/audit", params={"before": "-1"})
        bad_hash = await client.get("/api/v1/audit/verify", params={"expect": "abc"})
    async with web.client() as nobody:
        page = await nobody.get("/audit")
        api = await nobody.get("/api/v1/audit")
    assert bad_time.status_code == 400 and "since" in bad_time.json()["error"]["message"]
    assert bad_page.status_code == 400
    assert bad_hash.status_code == 400
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=")
    assert api.status_code == 401


async def test_the_page_follows_the_trail_live_by_fragments(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        page = await client.get("/audit", params={"actor": "mendline"})
        rows = await client.get("/audit", params={"actor": "mendline", "fragment": "rows"})
        chain = await client.get("/audit", params={"fragment": "chain"})
    assert 'data-live="/live?topic=audit"' in page.text
    assert 'hx-get="/audit?actor=mendline&amp;fragment=rows" hx-trigger="sse:audit"' in page.text
    assert rows.text.lstrip().startswith('<section class="card" id="audit-rows"')
    assert row_ids(rows.text) == await ids_of(web.database_url)
    assert chain.text.lstrip().startswith('<section class="card" id="chain-block"')
    assert 'id="chain-status" data-intact="yes"' in chain.text
