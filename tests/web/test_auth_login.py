"""Logging in to the served dashboard through its form, on the real PostgreSQL: the cookie and
its attributes, a new session at every login, one answer for every wrong name or password,
the back-off per account and per address, and where a login may send the browser."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import httpx
import pytest

from mendline.analyzers.policy import account_key, address_key, pair_key
from tests.db_helpers import query
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


def set_cookie(response: httpx.Response) -> dict[str, str]:
    """The attributes of the session cookie the response sets (lower-case names; flags as
    ``""``), and its value as ``value``."""
    (header,) = [
        h for h in response.headers.get_list("set-cookie") if h.startswith("mendline_session=")
    ]
    first, *attributes = (part.strip() for part in header.split(";"))
    found = {"value": first.partition("=")[2]}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        found[key.lower()] = value
    return found


def login_error(response: httpx.Response) -> str:
    """The error the login page shows."""
    found = re.search(r'<p class="flash bad" id="login-error"[^>]*>(.*?)</p>', response.text)
    assert found is not None, response.text
    return unescape(found[1])


async def post_login(
    client: httpx.AsyncClient, name: str, password: str, **form: str
) -> httpx.Response:
    return await client.post("/login", data={"name": name, "password": password, **form})


async def test_a_login_sets_an_httponly_lax_cookie_and_goes_where_it_was_asked(
    web: ServedWeb,
) -> None:
    async with web.browser() as browser:
        page = await browser.get("/login?next=/issues%3Ftab%3Dregressed")
        assert page.status_code == 200
        assert 'name="next" value="/issues?tab=regressed"' in page.text
        response = await post_login(
            browser, "approver", web.passwords["approver"], next="/issues?tab=regressed"
        )
        assert response.status_code == 303
        assert response.headers["Location"] == "/issues?tab=regressed"
        cookie = set_cookie(response)
        assert cookie["httponly"] == "" and cookie["samesite"] == "Lax" and cookie["path"] == "/"
        assert "secure" not in cookie  # plain http, no trusted proxy saying otherwise
        assert cookie["max-age"] == str(7 * 24 * 3600)
        me = (await browser.get("/api/v1/me")).json()
    assert (me["name"], me["role"], me["auth"]) == ("approver", "approver", "session")
    (row,) = await query(
        web.database_url,
        """SELECT s.id, s.client, s.user_agent, u.name FROM mendline.web_sessions s
           JOIN mendline.users u ON u.id = s.user_id""",
    )
    assert row["name"] == "approver" and row["client"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{64}", row["id"]) and cookie["value"] not in row["id"]
    assert row["user_agent"].startswith("python-httpx")
    (audit,) = await query(
        web.database_url,
        "SELECT actor_name, actor_auth, target, origin FROM mendline.audit_log"
        " WHERE action = 'session.login'",
    )
    assert dict(audit) == {
        "actor_name": "approver",
        "actor_auth": "session",
        "target": "user:approver",
        "origin": "web@127.0.0.1",
    }


async def test_every_login_makes_a_new_session_and_ends_the_one_it_replaces(
    web: ServedWeb,
) -> None:
    async with web.browser() as browser:
        await web.login(browser, "viewer")
        first = browser.cookies["mendline_session"]
        await web.login(browser, "viewer")
        second = browser.cookies["mendline_session"]
        assert second != first
        assert (await browser.get("/api/v1/me")).status_code == 200
    async with web.browser(cookies={"mendline_session": first}) as replay:
        old = await replay.get("/api/v1/me")
        assert old.status_code == 401
        assert "mendline_session" in old.headers.get("set-cookie", "")  # told to forget it
    sessions = await query(web.database_url, "SELECT count(*) AS n FROM mendline.web_sessions")
    assert sessions[0]["n"] == 1


HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}


async def test_the_cookie_is_secure_over_https_from_a_trusted_proxy(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_forwarded_allow=["127.0.0.1/32"]) as web:
        async with web.browser(headers=HTTPS) as browser:
            response = await post_login(browser, "viewer", web.passwords["viewer"])
            assert response.status_code == 403  # the page was https: its Origin would say so
            browser.headers["Origin"] = web.url.replace("http://", "https://")
            response = await post_login(browser, "viewer", web.passwords["viewer"])
            assert response.status_code == 303, response.text
            assert set_cookie(response)["secure"] == ""
        (row,) = await query(web.database_url, "SELECT client FROM mendline.web_sessions")
        assert row["client"] == "198.51.100.7"


async def test_forwarded_https_from_anyone_else_is_not_believed(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_forwarded_allow=["10.0.0.0/8"]) as web:
        async with web.browser(headers=HTTPS) as browser:
            response = await post_login(browser, "viewer", web.passwords["viewer"])
            assert response.status_code == 303
            assert "secure" not in set_cookie(response)
        (row,) = await query(web.database_url, "SELECT client FROM mendline.web_sessions")
        assert row["client"] == "127.0.0.1"


async def test_an_https_public_url_makes_the_cookie_secure(fresh_db_url: str) -> None:
    public = "https://mendline.example.com"
    async with (
        served_web(fresh_db_url, web_public_url=public) as web,
        web.browser(headers={"Origin": public}) as browser,
    ):
        response = await post_login(browser, "viewer", web.passwords["viewer"])
        assert response.status_code == 303
        assert set_cookie(response)["secure"] == ""
        browser.headers["Origin"] = web.url  # the address it is served at is not it
        refused = await post_login(browser, "viewer", web.passwords["viewer"])
        assert refused.status_code == 403


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(web: ServedWeb) -> None:
    answers = []
    async with web.browser() as browser:
        for name, password in (
            ("viewer", "not-the-password"),
            ("nobody-by-this-name", "not-the-password"),
            ("viewer", ""),
        ):
            response = await post_login(browser, name, password)
            assert "mendline_session" not in response.headers.get("set-cookie", "")
            answers.append((response.status_code, login_error(response)))
        assert (await browser.get("/api/v1/me")).status_code == 401
    assert answers == [(401, "Wrong user name or password.")] * 3
    rows = await query(
        web.database_url,
        """SELECT actor_name, target, after->>'reason' AS reason FROM mendline.audit_log
           WHERE action = 'session.login_failed' ORDER BY id""",
    )
    assert [tuple(row) for row in rows] == [
        ("mendline", "user:viewer", "wrong_password"),
        ("mendline", "user:?", "unknown"),  # an attacker's (or a mistyped) name: not kept
        ("mendline", "user:viewer", "wrong_password"),
    ]


async def test_a_disabled_user_or_one_without_a_password_cannot_log_in(web: ServedWeb) -> None:
    await query(
        web.database_url, "UPDATE mendline.users SET disabled_at = now() WHERE name = 'viewer'"
    )
    await query(
        web.database_url, "UPDATE mendline.users SET password_hash = NULL WHERE name = 'admin'"
    )
    async with web.browser() as browser:
        for name in ("viewer", "admin"):
            response = await post_login(browser, name, web.passwords[name])
            assert (response.status_code, login_error(response)) == (
                401,
                "Wrong user name or password.",
            )
    rows = await query(
        web.database_url,
        """SELECT target, after->>'reason' AS reason FROM mendline.audit_log
           WHERE action = 'session.login_failed' ORDER BY id""",
    )
    assert [tuple(row) for row in rows] == [
        ("user:viewer", "disabled"),
        ("user:admin", "no_password"),
    ]


async def test_failed_logins_back_off_per_account_without_checking_the_password(
    fresh_db_url: str,
) -> None:
    async with served_web(
        fresh_db_url, web_login_free_failures=2, web_forwarded_allow=["127.0.0.1"]
    ) as web:
        right = web.passwords["responder"]
        async with web.browser() as browser:
            for _ in range(2):
                failed = await post_login(browser, "responder", "wrong-password!")
                assert failed.status_code == 401
            wait = await query(
                fresh_db_url,
                """SELECT round(extract(epoch FROM blocked_until - last_failure_at))::int
                   FROM mendline.login_failures WHERE key = $1""",
                account_key("responder"),
            )
            assert wait[0][0] == 1
            # The wait outlasts this test however slow the machine is now.
            await query(
                fresh_db_url,
                "UPDATE mendline.login_failures SET blocked_until = now() + interval '60 seconds'",
            )
            blocked = await post_login(browser, "responder", right)  # even the right one
            assert blocked.status_code == 429
            assert 50 <= int(blocked.headers["Retry-After"]) <= 60
            assert login_error(blocked).startswith("Too many failed logins: try again in ")
            assert "mendline_session" not in blocked.headers.get("set-cookie", "")
        # From another address (as a trusted proxy tells) the account still waits.
        async with web.browser(headers={"X-Forwarded-For": "203.0.113.50"}) as elsewhere:
            assert (await post_login(elsewhere, "responder", right)).status_code == 429
        audited = await query(
            fresh_db_url,
            "SELECT count(*) AS n FROM mendline.audit_log WHERE action = 'session.login_failed'",
        )
        assert audited[0]["n"] == 2  # blocked attempts are neither checked nor audited
        # The wait passes (moved in the table instead of slept through).
        await query(
            fresh_db_url,
            "UPDATE mendline.login_failures SET blocked_until = now() - interval '1 second'",
        )
        async with web.browser() as browser:
            assert (await post_login(browser, "responder", right)).status_code == 303
        keys = await query(fresh_db_url, "SELECT key FROM mendline.login_failures ORDER BY key")
        # The account is cleared, and so is the address: its failures were on this account.
        assert [row["key"] for row in keys] == []


async def test_the_wait_doubles_with_each_further_failure(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_login_free_failures=1) as web:
        waits = []
        wait = """SELECT round(extract(epoch FROM blocked_until - last_failure_at))::int
                  FROM mendline.login_failures WHERE key = $1"""
        async with web.browser() as browser:
            for _ in range(4):
                await query(fresh_db_url, "UPDATE mendline.login_failures SET blocked_until = NULL")
                assert (await post_login(browser, "viewer", "wrong-password!")).status_code == 401
                waits.append((await query(fresh_db_url, wait, account_key("viewer")))[0][0])
            # Within the last wait (8 s, however slow this machine is now), no guess is taken.
            await query(
                fresh_db_url,
                "UPDATE mendline.login_failures SET blocked_until = now() + interval '8 seconds'",
            )
            blocked = await post_login(browser, "viewer", web.passwords["viewer"])
            assert blocked.status_code == 429
            assert 1 <= int(blocked.headers["Retry-After"]) <= 8
        assert waits == [1, 2, 4, 8]
        rows = await query(
            fresh_db_url,
            "SELECT key, failures FROM mendline.login_failures ORDER BY key",
        )
        assert sorted(tuple(row) for row in rows) == sorted(
            [
                (address_key("127.0.0.1"), 4),
                (pair_key("viewer", "127.0.0.1"), 4),
                (account_key("viewer"), 4),
            ]
        )


async def test_failed_logins_back_off_per_address_across_accounts(fresh_db_url: str) -> None:
    async with served_web(
        fresh_db_url, web_login_free_failures=3, web_forwarded_allow=["127.0.0.1"]
    ) as web:
        sprayer = {"X-Forwarded-For": "203.0.113.66"}
        async with web.browser(headers=sprayer) as browser:
            for name in ("viewer", "responder", "no-such-user"):
                assert (await post_login(browser, name, "Summer2026!!!")).status_code == 401
            await query(  # the 1 s wait outlasts this step however slow the machine is now
                fresh_db_url,
                """UPDATE mendline.login_failures SET blocked_until = now() + interval '60 s'
                   WHERE blocked_until IS NOT NULL""",
            )
            blocked = await post_login(browser, "admin", web.passwords["admin"])
            assert blocked.status_code == 429
            # Logging in to an account of one's own does not wipe the guesses at the others.
            await query(
                fresh_db_url,
                "UPDATE mendline.login_failures SET blocked_until = NULL",
            )
            assert (await post_login(browser, "admin", web.passwords["admin"])).status_code == 303
        address = await query(
            fresh_db_url,
            "SELECT failures FROM mendline.login_failures WHERE key = $1",
            address_key("203.0.113.66"),
        )
        assert address[0]["failures"] == 3
        async with web.browser(headers={"X-Forwarded-For": "198.51.100.2"}) as other:
            assert (
                await post_login(other, "approver", web.passwords["approver"])
            ).status_code == 303


async def test_a_login_never_sends_the_browser_to_another_site(web: ServedWeb) -> None:
    async with web.browser() as browser:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil"):
            page = await browser.get("/login", params={"next": target})
            assert 'name="next" value="/"' in page.text
            response = await post_login(browser, "viewer", web.passwords["viewer"], next=target)
            assert response.status_code == 303 and response.headers["Location"] == "/"


async def test_the_login_form_escapes_what_it_shows_back(web: ServedWeb) -> None:
    hostile = '"><script>alert(1)</script>'
    async with web.browser() as browser:
        response = await post_login(browser, hostile, "wrong-password!", next="/" + hostile)
    assert response.status_code == 401
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_a_login_post_from_another_site_is_refused(web: ServedWeb) -> None:
    async with web.browser(headers={"Origin": "https://evil.example"}) as browser:
        response = await post_login(browser, "viewer", web.passwords["viewer"])
        assert response.status_code == 403
        assert "another site" in response.text and "mendline_session" not in response.headers.get(
            "set-cookie", ""
        )
    async with httpx.AsyncClient(base_url=web.url) as bare:  # no Origin, no Referer
        response = await post_login(bare, "viewer", web.passwords["viewer"])
        assert response.status_code == 403


async def test_login_and_logout_work_on_a_read_only_dashboard(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_read_only=True) as web, web.browser() as browser:
        page = await browser.get("/login")
        assert 'id="read-only-note"' in page.text
        csrf = await web.login(browser, "admin")
        me = (await browser.get("/api/v1/me")).json()
        assert me["read_only"] is True
        assert "issue.read" in me["permissions"] and "user.add" not in me["permissions"]
        page = await browser.get("/login")  # every page's header has the banner
        assert "read-only</span>" in page.text and 'id="logged-in-as"' in page.text
        out = await browser.post("/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 303 and out.headers["Location"] == "/login"
        assert (await browser.get("/api/v1/me")).status_code == 401


async def test_a_burst_of_logins_at_once_gets_no_more_guesses_than_the_free_ones(
    fresh_db_url: str,
) -> None:
    async with served_web(fresh_db_url, web_login_free_failures=2) as web, web.browser() as browser:
        answers = await asyncio.gather(
            *(post_login(browser, "admin", f"guess-number-{n:04d}") for n in range(6))
        )
        # Each attempt is counted before its password is checked, under the rows' locks.
        assert sorted(a.status_code for a in answers) == [401, 401, 429, 429, 429, 429]


async def test_failures_from_elsewhere_keep_the_owner_out_a_minute_at_most(
    fresh_db_url: str,
) -> None:
    async with served_web(
        fresh_db_url, web_login_free_failures=1, web_forwarded_allow=["127.0.0.1"]
    ) as web:
        async with web.browser(headers={"X-Forwarded-For": "203.0.113.9"}) as attacker:
            for _ in range(12):
                await query(fresh_db_url, "UPDATE mendline.login_failures SET blocked_until = NULL")
                assert (await post_login(attacker, "admin", "guess")).status_code == 401
        waits = {
            row["key"]: row["wait"]
            for row in await query(
                fresh_db_url,
                """SELECT key, round(extract(epoch FROM blocked_until - last_failure_at))::int
                          AS wait FROM mendline.login_failures""",
            )
        }
        assert waits[account_key("admin")] == 60  # the owner, from anywhere: a minute
        assert waits[address_key("203.0.113.9")] == 900  # the guesser's address: 15 minutes
        assert waits[pair_key("admin", "203.0.113.9")] == 900
        await query(  # the account's minute has passed; the guesser's address still waits
            fresh_db_url,
            "UPDATE mendline.login_failures SET blocked_until = now() - interval '1 s'"
            " WHERE key = $1",
            account_key("admin"),
        )
        async with web.browser(headers={"X-Forwarded-For": "198.51.100.7"}) as owner:
            assert (await post_login(owner, "admin", web.passwords["admin"])).status_code == 303
        async with web.browser(headers={"X-Forwarded-For": "203.0.113.9"}) as attacker:
            assert (await post_login(attacker, "viewer", "guess")).status_code == 429
