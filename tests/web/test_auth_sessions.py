"""Dashboard sessions on the real PostgreSQL: their idle and absolute timeouts (the rows aged
in SQL), logout ending them on the server, the user's current role and disabling read at
every request, nobody sent to the login form, and ``/api/v1/me``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from mendline.analyzers.policy import PERMISSIONS
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.sinks.postgres import PeopleStore, append_audit
from tests.db_helpers import query
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


async def age(web: ServedWeb, assignments: str) -> None:
    """Move the times of every session (``SET`` clause), as if that long had passed."""
    await query(web.database_url, f"UPDATE mendline.web_sessions SET {assignments}")


async def sessions(web: ServedWeb) -> int:
    rows = await query(web.database_url, "SELECT count(*) AS n FROM mendline.web_sessions")
    return int(rows[0]["n"])


async def test_a_session_unused_for_the_idle_timeout_ends(web: ServedWeb) -> None:
    async with web.logged_in("viewer") as (browser, _):
        await age(web, "last_seen_at = now() - interval '11 hours 59 minutes'")
        assert (await browser.get("/api/v1/me")).status_code == 200  # used: idle again from now
        (row,) = await query(
            web.database_url,
            "SELECT last_seen_at > now() - interval '1 minute'"
            " AS touched FROM mendline.web_sessions",
        )
        assert row["touched"]
        await age(web, "last_seen_at = now() - interval '12 hours 1 second'")
        response = await browser.get("/api/v1/me")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"
    assert await sessions(web) == 0


async def test_last_seen_is_not_written_at_every_request(web: ServedWeb) -> None:
    async with web.logged_in("viewer") as (browser, _):
        await age(web, "last_seen_at = now() - interval '30 seconds'")
        (before,) = await query(web.database_url, "SELECT last_seen_at FROM mendline.web_sessions")
        assert (await browser.get("/api/v1/me")).status_code == 200
        (after,) = await query(web.database_url, "SELECT last_seen_at FROM mendline.web_sessions")
    assert after["last_seen_at"] == before["last_seen_at"]


async def test_a_session_ends_at_its_absolute_lifetime_however_busy(web: ServedWeb) -> None:
    async with web.logged_in("viewer") as (browser, _):
        await age(web, "created_at = now() - interval '7 days', last_seen_at = now()")
        assert (await browser.get("/api/v1/me")).status_code == 401
    async with web.logged_in("viewer") as (browser, _):
        await age(
            web, "expires_at = now() - interval '1 second', created_at = now() - interval '1 day'"
        )
        page = await browser.get("/api/v1/me")
        assert page.status_code == 401
    assert await sessions(web) == 0


async def test_logout_ends_the_session_on_the_server(web: ServedWeb) -> None:
    async with web.logged_in("responder") as (browser, csrf):
        cookie = browser.cookies["mendline_session"]
        out = await browser.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["Location"] == "/login"
        cleared = out.headers["set-cookie"]
        assert cleared.startswith('mendline_session=""') and "Max-Age=0" in cleared
    assert await sessions(web) == 0
    async with web.browser(cookies={"mendline_session": cookie}) as replay:
        assert (await replay.get("/api/v1/me")).status_code == 401  # the old cookie, replayed
    rows = await query(
        web.database_url,
        "SELECT actor_name, actor_auth, target FROM mendline.audit_log"
        " WHERE action = 'session.logout'",
    )
    assert [tuple(row) for row in rows] == [("responder", "session", "user:responder")]


async def test_disabling_a_user_or_changing_their_role_acts_on_their_next_request(
    web: ServedWeb,
) -> None:
    people = PeopleStore(web.pool, append_audit, origin="test")
    async with web.logged_in("responder") as (browser, _):
        assert (await browser.get("/api/v1/me")).json()["role"] == "responder"
        await people.set_role(SYSTEM_ACTOR, "responder", "approver")
        assert (await browser.get("/api/v1/me")).json()["role"] == "approver"
        await people.disable_user(SYSTEM_ACTOR, "responder")
        assert (await browser.get("/api/v1/me")).status_code == 401
        await people.enable_user(SYSTEM_ACTOR, "responder")
        assert (await browser.get("/api/v1/me")).status_code == 401  # that session is over
    async with web.client("responder") as token:  # their token stopped at once too
        await people.disable_user(SYSTEM_ACTOR, "responder")
        assert (await token.get("/api/v1/me")).status_code == 401


async def test_nobody_is_sent_to_the_login_form_and_the_api_answers_401(web: ServedWeb) -> None:
    async with web.browser() as nobody:
        for path in ("/", "/issues?tab=regressed", "/no/such/page"):
            response = await nobody.get(path)
            assert response.status_code == 303
            assert response.headers["Location"].startswith("/login?next=")
        sent_to = urlsplit((await nobody.get("/issues?tab=regressed")).headers["Location"])
        assert sent_to.path == "/login"
        assert parse_qs(sent_to.query) == {"next": ["/issues?tab=regressed"]}
        api = await nobody.get("/api/v1/me")
        assert api.status_code == 401
        assert api.json() == {
            "error": {
                "code": "authentication_failed",
                "message": "log in first",
                "hint": "open /login",
            }
        }
        for public in ("/login", "/healthz", "/static/mendline.css"):
            assert (await nobody.get(public)).status_code == 200, public


async def test_me_says_who_asks_how_and_what_they_may_do(web: ServedWeb) -> None:
    async with web.client("approver") as token:
        me = (await token.get("/api/v1/me")).json()
    assert (me["name"], me["role"], me["auth"]) == ("approver", "approver", "token")
    assert me["token_id"].startswith("mlt_") and me["csrf_token"] is None and me["session"] is None
    assert "fix.apply" in me["permissions"] and "user.add" not in me["permissions"]
    assert me["permissions"] == sorted(me["permissions"]) and me["read_only"] is False
    async with web.logged_in("admin") as (browser, csrf):
        mine = (await browser.get("/api/v1/me")).json()
    assert (mine["auth"], mine["csrf_token"], mine["token_id"]) == ("session", csrf, None)
    assert set(mine["permissions"]) == set(PERMISSIONS)
    assert mine["session"]["expires_at"] > mine["session"]["created_at"]
