"""The fixes pages on the served dashboard and the real PostgreSQL: the review queue with the
policy's reasons, a fix's page and its JSON, approve and reject by an approver (audited from
the client's address), the buttons left out and forged posts refused for lower roles, the
patch download, and a hostile finding and delivery shown inert."""

from __future__ import annotations

import re

import pytest

from mendline.schemas.fix import Delivery
from mendline.schemas.people import Role
from tests.db_helpers import query
from tests.web.fixes_helpers import (
    ASK,
    HOSTILE,
    delivered_fix,
    fix_now,
    passed,
    proposed_fix,
)
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


async def test_the_queue_shows_a_proposed_fix_with_the_policy_reasons(web: ServedWeb) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client("viewer") as client:
        page = await client.get("/fixes")
        api = (await client.get("/api/v1/fixes", params={"tab": "queue"})).json()
    assert page.status_code == 200
    rows = re.findall(r'<tr data-testid="fix-row" data-fix="(\d+)">', page.text)
    assert rows == [str(fix.id)]
    assert "fix kind guard is not one of [auto] kinds" in page.text
    assert "approval 0/1" in page.text
    assert f'href="/issues/{fix.issue_id}"' in page.text
    [shown] = api["fixes"]
    assert (shown["id"], shown["state"], shown["decision"]["reasons"]) == (
        fix.id,
        "proposed",
        fix.decision.reasons,
    )
    assert api["counts"] == {"queue": 1, "active": 0, "history": 0}
    async with web.client("viewer") as client:
        history = await client.get("/fixes", params={"tab": "history"})
    assert 'data-testid="fix-row"' not in history.text


async def test_the_list_pages_with_a_keyset_cursor(web: ServedWeb) -> None:
    made = [(await proposed_fix(web.database_url, issue)).id for issue in (1, 2, 3)]
    async with web.client("viewer") as client:
        first = (await client.get("/api/v1/fixes", params={"limit": 2})).json()
        second = (
            await client.get("/api/v1/fixes", params={"limit": 2, "before": first["next_before"]})
        ).json()
        page = await client.get("/fixes", params={"limit": 2})
    assert [f["id"] for f in first["fixes"]] == made[:0:-1]
    assert [f["id"] for f in second["fixes"]] == made[:1] and second["next_before"] is None
    assert f'href="/fixes?tab=queue&amp;before={made[1]}"' in page.text


async def test_an_approver_approves_and_it_is_audited_from_the_web(web: ServedWeb) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client("approver") as client:
        page = await client.get(f"/fixes/{fix.id}")
        assert 'id="fix-approve"' in page.text and 'id="fix-reject"' in page.text
        moved = await client.post(f"/fixes/{fix.id}/approve", data={"note": "read the diff"})
    assert moved.status_code == 303 and moved.headers["Location"] == f"/fixes/{fix.id}"
    now = await fix_now(web.database_url, fix.id)
    assert now.state == "approved" and now.approvals == ("approver",)
    [row] = await query(
        web.database_url,
        "SELECT actor_name, origin, after FROM mendline.audit_log WHERE action = 'fix.approve'",
    )
    assert (row["actor_name"], row["origin"]) == ("approver", "web@127.0.0.1")
    assert '"note": "read the diff"' in row["after"]
    async with web.client("approver") as client:
        page = await client.get(f"/fixes/{fix.id}")
    assert 'id="fix-state" class="badge approved" data-state="approved"' in page.text
    assert 'data-action="fix.approve"' in page.text  # the state history, from the audit trail


async def test_an_approver_rejects_with_a_reason_through_the_api(web: ServedWeb) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client("approver") as client:
        without = await client.post(f"/api/v1/fixes/{fix.id}/reject", json={})
        rejected = await client.post(f"/api/v1/fixes/{fix.id}/reject", json={"reason": "too wide"})
        again = await client.post(f"/api/v1/fixes/{fix.id}/reject", json={"reason": "again"})
    assert without.status_code == 400 and "reason" in without.json()["error"]["message"]
    assert rejected.status_code == 200
    body = rejected.json()
    assert body["fix"]["state"] == "rejected" and body["fix"]["rejected_reason"] == "too wide"
    assert body["fix"]["moves"] == []
    assert again.status_code == 409
    assert (await fix_now(web.database_url, fix.id)).rejected_reason == "too wide"


@pytest.mark.parametrize("role", ["viewer", "responder"])
async def test_lower_roles_see_no_buttons_and_forged_posts_change_nothing(
    web: ServedWeb, role: Role
) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client(role) as client:
        page = await client.get(f"/fixes/{fix.id}")
        forged = [
            await client.post(f"/fixes/{fix.id}/{move}", data={"reason": "x"})
            for move in ("approve", "apply", "reject", "rollback")
        ]
        api = await client.post(f"/api/v1/fixes/{fix.id}/apply", json={})
    assert page.status_code == 200
    for button in ("fix-apply", "fix-approve", "fix-reject", "fix-rollback"):
        assert f'id="{button}"' not in page.text
    assert [r.status_code for r in forged] == [403, 403, 403, 403]
    assert api.status_code == 403 and api.json()["error"]["code"] == "permission_denied"
    now = await fix_now(web.database_url, fix.id)
    assert (now.state, now.approvals) == ("proposed", ())
    rows = await query(
        web.database_url, "SELECT action FROM mendline.audit_log WHERE target = $1", f"fix:{fix.id}"
    )
    assert [r["action"] for r in rows] == ["fix.propose"]


async def test_read_only_shows_no_buttons_and_refuses_an_approver(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_read_only=True) as web:
        fix = await proposed_fix(web.database_url)
        async with web.client("approver") as client:
            page = await client.get(f"/fixes/{fix.id}")
            refused = await client.post(f"/api/v1/fixes/{fix.id}/approve", json={})
        assert 'id="fix-approve"' not in page.text and 'id="fix-apply"' not in page.text
        assert refused.status_code == 403
        assert (await fix_now(web.database_url, fix.id)).state == "proposed"


async def test_the_patch_downloads_as_a_diff_file(web: ServedWeb) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client("viewer") as client:
        response = await client.get(f"/fixes/{fix.id}/patch")
        missing = await client.get("/fixes/999/patch")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/x-diff")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="mendline-fix-{fix.id}.patch"'
    )
    assert response.text == fix.mapped_patch
    assert missing.status_code == 404


async def test_a_hostile_finding_and_delivery_render_inert(web: ServedWeb) -> None:
    hostile_patch = (
        "--- a/calc/core.py\n+++ b/calc/core.py\n@@ -9 +9 @@\n"
        f"-    return table[key]  # {HOSTILE}\n+    return '<img src=x onerror=alert(2)>'\n"
    )
    delivery = Delivery(
        mode="pull_request",
        branch="mendline/fix-1-1",
        commit="c" * 40,
        pr_url="javascript:alert(1)",
    )
    fix = await delivered_fix(
        web.database_url,
        delivery,
        passed(f"{HOSTILE}\n\x1b[31mred\x1b[0m"),
        decision=ASK.model_copy(
            update={"mapped_patch": hostile_patch, "reasons": [f"{HOSTILE} in a path"]}
        ),
        patch=hostile_patch,
        root_cause=HOSTILE,
        suggested_fix=HOSTILE,
    )
    async with web.client("approver") as client:
        page = await client.get(f"/fixes/{fix.id}")
        listing = await client.get("/fixes", params={"tab": "active"})
    assert page.status_code == 200
    for text in (page.text, listing.text):
        assert "<script>alert(1)</script>" not in text
        assert "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<span class="add">+    return &#39;&lt;img src=x onerror=alert(2)&gt;&#39;</span>' in (
        page.text
    )
    assert '<span class="del">-    return table[key]  # &lt;script&gt;' in page.text
    assert '<span class="file">--- a/calc/core.py</span>' in page.text
    assert '<span class="hunk">@@ -9 +9 @@</span>' in page.text
    assert 'href="javascript:' not in page.text
    assert '<span data-testid="pr-text">javascript:alert(1)</span>' in page.text
    assert "\x1b" not in page.text and "\\x1b[31mred" in page.text  # escapes made visible
    assert 'id="fix-rollback"' in page.text  # applied: an approver may roll it back


async def test_a_pull_request_on_https_is_a_link(web: ServedWeb) -> None:
    url = "https://forge.example.test/shop/pulls/7"
    delivery = Delivery(mode="pull_request", branch="b", commit="d" * 40, pr_url=url)
    fix = await delivered_fix(web.database_url, delivery, passed())
    async with web.client("viewer") as client:
        page = await client.get(f"/fixes/{fix.id}")
        api = (await client.get(f"/api/v1/fixes/{fix.id}")).json()
    assert f'<a href="{url}" rel="noopener noreferrer" target="_blank" data-testid="pr-link">' in (
        page.text
    )
    assert api["delivery"]["pr_url"] == url and api["verification"]["passed"] is True
    assert api["issue"]["id"] == fix.issue_id and api["finding"]["id"] == fix.finding_id
    assert [row["action"] for row in api["history"]] == [
        "fix.propose",
        "fix.approve",
        "fix.apply",
        "fix.applied",
    ]
    assert api["moves"] == []  # a viewer may make none


async def test_a_missing_fix_is_404_and_a_bad_filter_400(web: ServedWeb) -> None:
    async with web.client("viewer") as client:
        page = await client.get("/fixes/12345")
        api = await client.get("/api/v1/fixes/12345")
        bad = await client.get("/api/v1/fixes", params={"state": "nonsense"})
        nobody = await client.get("/api/v1/fixes", headers={"Authorization": ""})
    assert page.status_code == 404 and api.status_code == 404
    assert bad.status_code == 400 and "no fix state" in bad.json()["error"]["message"]
    assert nobody.status_code == 401


async def test_the_pages_follow_their_fixes_live_by_fragments(web: ServedWeb) -> None:
    fix = await proposed_fix(web.database_url)
    async with web.client("approver") as client:
        page = await client.get(f"/fixes/{fix.id}")
        state = await client.get(f"/fixes/{fix.id}", params={"fragment": "state"})
        outcome = await client.get(f"/fixes/{fix.id}", params={"fragment": "outcome"})
        listing = await client.get("/fixes")
        rows = await client.get("/fixes", params={"tab": "queue", "fragment": "list"})
        swapped = await client.post(
            f"/fixes/{fix.id}/approve", headers={"HX-Request": "true"}, data={}
        )
    assert f'data-live="/live?topic=fix-{fix.id}"' in page.text
    assert (
        f'hx-get="/fixes/{fix.id}?fragment=state" hx-trigger="sse:fix-{fix.id}"'
        ' hx-swap="outerHTML"' in page.text
    )
    assert state.text.lstrip().startswith('<section class="card" id="fix-state-block"')
    assert "<html" not in state.text and 'id="fix-apply"' in state.text
    assert outcome.text.lstrip().startswith('<section class="card" id="fix-outcome-block"')
    assert 'data-action="fix.propose"' in outcome.text
    assert 'data-live="/live?topic=fixes"' in listing.text
    assert 'hx-trigger="sse:fixes"' in listing.text
    assert rows.text.lstrip().startswith('<section class="card" id="fix-list"')
    assert f'data-fix="{fix.id}"' in rows.text
    assert swapped.status_code == 200 and 'data-state="approved"' in swapped.text
    assert "<html" not in swapped.text
