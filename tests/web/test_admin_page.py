"""The admin page on the served dashboard and the real PostgreSQL: users with their roles and
tokens for admins only (everyone else 403, the nav link hidden), a user added, given another
role, disabled and enabled, a token made (shown once, working at once) and revoked, each
audited from the client's address; the same through the JSON API."""

from __future__ import annotations

import re

import pytest

from mendline.schemas.people import SYSTEM_ACTOR, Role
from mendline.sinks.postgres import PeopleStore, append_audit
from tests.db_helpers import query
from tests.web.fixes_helpers import HOSTILE
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


async def audited(url: str, action: str) -> list[tuple[str, str, str]]:
    rows = await query(
        url,
        "SELECT actor_name, target, origin FROM mendline.audit_log WHERE action = $1 ORDER BY id",
        action,
    )
    return [(r["actor_name"], r["target"], r["origin"]) for r in rows]


async def test_admins_see_users_and_tokens_and_no_one_else_does(web: ServedWeb) -> None:
    await PeopleStore(web.pool, append_audit, "test").add_user(SYSTEM_ACTOR, HOSTILE, "viewer")
    async with web.client("admin") as client:
        page = await client.get("/admin")
    assert page.status_code == 200
    users = re.findall(r'<tr data-testid="user-row" data-user="([^"]+)"', page.text)
    assert users == sorted(
        ["admin", "approver", "responder", "viewer", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    )
    assert "<script>" not in page.text
    assert len(re.findall(r'data-testid="token-row"', page.text)) == 4
    assert 'href="/admin"' in page.text and 'id="add-user"' in page.text
    for role in ("viewer", "responder", "approver"):
        async with web.client(role) as client:
            refused = await client.get("/admin")
            other = await client.get("/fixes")
        assert refused.status_code == 403
        assert 'href="/admin"' not in other.text  # the nav link is hidden


async def test_an_admin_adds_a_user_sets_a_role_disables_and_enables(web: ServedWeb) -> None:
    async with web.client("admin") as client:
        added = await client.post("/admin/users", data={"name": "nora", "role": "viewer"})
        role = await client.post("/admin/users/role", data={"name": "nora", "role": "approver"})
        disabled = await client.post("/admin/users/disable", data={"name": "nora"})
        page = await client.get("/admin")
        enabled = await client.post("/admin/users/enable", data={"name": "nora"})
        taken = await client.post("/admin/users", data={"name": "nora", "role": "viewer"})
        last = await client.post("/admin/users/disable", data={"name": "admin"})
    assert [r.status_code for r in (added, role, disabled, enabled)] == [303] * 4
    assert added.headers["Location"] == "/admin"
    row = re.search(r'data-user="nora".*?</tr>', page.text, re.S)
    assert row is not None and 'value="approver" selected' in row[0] and "disabled" in row[0]
    assert row[0].count('<input type="hidden" name="name" value="nora">') == 2  # role, enable
    assert taken.status_code == 422
    assert last.status_code == 403 and "last active admin" in last.text
    [nora] = await query(
        web.database_url, "SELECT role, disabled_at FROM mendline.users WHERE name = 'nora'"
    )
    assert (nora["role"], nora["disabled_at"]) == ("approver", None)
    web_origin = "web@127.0.0.1"
    for action in ("user.add", "user.set_role", "user.disable", "user.enable"):
        assert (await audited(web.database_url, action))[-1] == ("admin", "user:nora", web_origin)


async def test_a_token_is_shown_once_works_and_is_revoked(web: ServedWeb) -> None:
    async with web.client("admin") as client:
        made = await client.post(
            "/admin/tokens",
            data={"user": "responder", "role": "viewer", "name": "ci", "expires": "30d"},
        )
        shown = re.search(
            r'<pre class="token" id="new-token" data-testid="new-token">([^<]+)</pre>', made.text
        )
        assert made.status_code == 200 and shown is not None
        token = shown[1]
        page = await client.get("/admin")
    assert token not in page.text  # never again
    token_id = token[: len("mlt_") + 8]
    assert f'data-token="{token_id}" data-state="active"' in page.text
    async with web.client(headers={"Authorization": f"Bearer {token}"}) as ci:
        me = await ci.get("/api/v1/tokens")
        assert me.status_code == 200
        listed = me.json()["tokens"]
        assert {t["user_name"] for t in listed} == {"responder"}  # its user's own only
        assert [t["role"] for t in listed if t["token_id"] == token_id] == ["viewer"]
    async with web.client("admin") as client:
        revoked = await client.post(f"/admin/tokens/{token_id}/revoke")
        page = await client.get("/admin")
    assert revoked.status_code == 303
    assert f'data-token="{token_id}" data-state="revoked"' in page.text
    async with web.client(headers={"Authorization": f"Bearer {token}"}) as ci:
        assert (await ci.get("/api/v1/tokens")).status_code == 401
    assert (await audited(web.database_url, "token.create"))[-1] == (
        "admin",
        f"token:{token_id}",
        "web@127.0.0.1",
    )
    rows = await query(web.database_url, "SELECT after::text FROM mendline.audit_log")
    assert all(token not in row["after"] for row in rows if row["after"])


@pytest.mark.parametrize("role", ["viewer", "responder", "approver"])
async def test_lower_roles_are_refused_every_change(web: ServedWeb, role: Role) -> None:
    async with web.client(role) as client:
        answers = [
            await client.post("/admin/users", data={"name": "mallory", "role": "admin"}),
            await client.post("/admin/users/role", data={"name": role, "role": "admin"}),
            await client.post("/admin/users/disable", data={"name": "admin"}),
            await client.post("/admin/tokens", data={"user": "admin"}),
            await client.post("/api/v1/users", json={"name": "mallory", "role": "admin"}),
            await client.post("/api/v1/tokens", json={"user": "admin"}),
        ]
    assert [a.status_code for a in answers] == [403] * 6
    users = await query(web.database_url, "SELECT name, role FROM mendline.users ORDER BY name")
    assert [(u["name"], u["role"]) for u in users] == [
        ("admin", "admin"),
        ("approver", "approver"),
        ("responder", "responder"),
        ("viewer", "viewer"),
    ]
    assert len(await query(web.database_url, "SELECT id FROM mendline.api_tokens")) == 4


async def test_the_api_manages_users_and_tokens(web: ServedWeb) -> None:
    async with web.client("admin") as client:
        added = await client.post("/api/v1/users", json={"name": "a/b c", "role": "responder"})
        role = await client.post("/api/v1/users/a%2Fb%20c/role", json={"role": "viewer"})
        users = (await client.get("/api/v1/users")).json()["users"]
        made = await client.post("/api/v1/tokens", json={"user": "a/b c", "name": "script"})
        every = (await client.get("/api/v1/tokens")).json()["tokens"]
        theirs = (await client.get("/api/v1/tokens", params={"user": "a/b c"})).json()["tokens"]
        revoked = await client.post(f"/api/v1/tokens/{made.json()['token_id']}/revoke")
    assert added.status_code == 201 and added.json()["user"]["role"] == "responder"
    assert role.status_code == 200 and role.json()["message"] == "a/b c is now viewer"
    assert [u["name"] for u in users] == ["a/b c", "admin", "approver", "responder", "viewer"]
    assert made.status_code == 201 and made.json()["token"].startswith(made.json()["token_id"])
    assert made.json()["role"] == "viewer" and made.json()["state"] == "active"
    assert len(every) == 5 and [t["name"] for t in theirs] == ["script"]
    assert revoked.json()["state"] == "revoked"
    async with web.client("viewer") as client:
        own = (await client.get("/api/v1/tokens")).json()["tokens"]
        others = await client.get("/api/v1/tokens", params={"user": "admin"})
        listed = await client.get("/api/v1/users")
    assert [t["user_name"] for t in own] == ["viewer"]
    assert others.status_code == 403
    assert listed.status_code == 200  # anyone may list the users, as with the CLI


async def test_read_only_shows_the_page_without_forms_and_refuses_changes(
    fresh_db_url: str,
) -> None:
    async with served_web(fresh_db_url, web_read_only=True) as web:
        async with web.client("admin") as client:
            page = await client.get("/admin")
            refused = await client.post("/admin/users", data={"name": "nora"})
        assert page.status_code == 200
        assert 'id="add-user"' not in page.text and 'id="create-token"' not in page.text
        assert 'data-testid="set-role"' not in page.text
        assert refused.status_code == 403
