"""CSRF on the served dashboard: a session's state change needs its token and the dashboard's
own Origin, a Bearer token needs neither, and a trusted SSO proxy's header is believed only
from the proxies allowed (and its changes still need the Origin)."""

from __future__ import annotations

import httpx
import pytest

from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.sinks.postgres import PeopleStore, append_audit
from tests.db_helpers import query
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration


async def live_sessions(web: ServedWeb) -> int:
    rows = await query(web.database_url, "SELECT count(*) AS n FROM mendline.web_sessions")
    return int(rows[0]["n"])


async def test_a_sessions_change_without_its_token_or_from_another_site_is_refused(
    web: ServedWeb,
) -> None:
    async with web.logged_in("approver") as (browser, csrf):
        forged = [
            ({}, {}),  # no token at all
            ({"X-CSRF-Token": "not-the-token"}, {}),
            ({}, {"csrf_token": "not-the-token"}),
            ({"X-CSRF-Token": csrf, "Origin": "https://evil.example"}, {}),
            ({"X-CSRF-Token": csrf, "Origin": "null"}, {}),
        ]
        for headers, form in forged:
            response = await browser.post("/logout", headers=headers, data=form)
            assert response.status_code == 403, (headers, form)
            assert response.headers["content-type"].startswith("text/html")
            assert await live_sessions(web) == 1  # nothing happened
        api = await browser.post("/api/v1/issues/1/resolve", json={})
        assert api.status_code == 403
        assert api.json()["error"] == {
            "code": "permission_denied",
            "message": "a change needs the session's CSRF token (X-CSRF-Token or a csrf_token"
            " field)",
            "hint": "reload the dashboard's page and try again; scripts send an API token"
            " (Authorization: Bearer) instead of a cookie",
        }
        cross = await browser.post(
            "/api/v1/issues/1/resolve",
            json={},
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )
        assert "another site (Origin 'https://evil.example')" in cross.json()["error"]["message"]
        # The right token from the dashboard's own page passes.
        passed = await browser.post("/logout", headers={"X-CSRF-Token": csrf})
        assert passed.status_code == 303
    assert await live_sessions(web) == 0


async def test_the_form_field_or_a_same_site_referer_will_do(web: ServedWeb) -> None:
    async with web.logged_in("viewer") as (browser, csrf):
        del browser.headers["Origin"]
        no_origin = await browser.post(
            "/logout", data={"csrf_token": csrf}, headers={"Referer": web.url + "/issues/3"}
        )
        assert no_origin.status_code == 303
    async with web.logged_in("viewer") as (browser, csrf):
        del browser.headers["Origin"]
        neither = await browser.post("/logout", data={"csrf_token": csrf})
        assert neither.status_code == 403 and await live_sessions(web) == 1


async def test_a_bearer_token_needs_no_csrf_token_even_with_a_cookie(web: ServedWeb) -> None:
    async with web.client("approver") as token:
        response = await token.post("/logout")  # no Origin, no CSRF token: not a browser's
        assert response.status_code == 303
    async with web.logged_in("viewer") as (browser, _):
        cookie = browser.cookies["mendline_session"]
    headers = {"Authorization": f"Bearer {web.tokens['admin']}"}
    async with web.client(headers=headers, cookies={"mendline_session": cookie}) as both:
        me = await both.get("/api/v1/me")
        assert me.json()["auth"] == "token" and me.json()["name"] == "admin"  # the token speaks
        assert (await both.post("/logout")).status_code == 303
    assert await live_sessions(web) == 1  # the cookie's session was not the one asking


PROXY = {"web_auth_proxy_header": "X-WEBAUTH-USER"}


async def test_a_trusted_proxys_header_names_the_user(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_auth_proxy_allow=["127.0.0.1"], **PROXY) as web:
        async with web.browser(headers={"X-WEBAUTH-USER": "responder"}) as proxied:
            me = (await proxied.get("/api/v1/me")).json()
            assert (me["name"], me["role"], me["auth"]) == ("responder", "responder", "proxy")
            assert me["csrf_token"] is None
            # The header is ambient (the proxy adds it to a forged request too): a change
            # still needs the dashboard's own Origin, but no token (there is no session).
            assert (await proxied.post("/logout")).status_code == 303
            evil = await proxied.post("/logout", headers={"Origin": "https://evil.example"})
            assert evil.status_code == 403
        async with web.browser(headers={"X-WEBAUTH-USER": "nobody-we-know"}) as unknown:
            assert (await unknown.get("/api/v1/me")).status_code == 401
        await PeopleStore(web.pool, append_audit, "test").disable_user(SYSTEM_ACTOR, "viewer")
        async with web.browser(headers={"X-WEBAUTH-USER": "viewer"}) as disabled:
            assert (await disabled.get("/api/v1/me")).status_code == 401


async def test_a_proxy_header_from_anywhere_else_is_ignored(fresh_db_url: str) -> None:
    async with served_web(
        fresh_db_url,
        web_auth_proxy_allow=["10.0.0.0/8"],
        web_forwarded_allow=["127.0.0.1"],
        **PROXY,
    ) as web:
        # A forwarded address inside the allowed network proves nothing: the direct peer is
        # what the allowlist is about.
        spoofed = {"X-WEBAUTH-USER": "admin", "X-Forwarded-For": "10.1.2.3"}
        async with web.browser(headers=spoofed) as attacker:
            assert (await attacker.get("/api/v1/me")).status_code == 401
            page = await attacker.get("/")
            assert page.status_code == 303 and page.headers["Location"] == "/login?next=/"
            await web.login(attacker, "viewer")  # the header does not outrank a login
            me = (await attacker.get("/api/v1/me")).json()
            assert (me["name"], me["auth"]) == ("viewer", "session")


async def test_a_proxy_actors_changes_can_be_audited(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_auth_proxy_allow=["127.0.0.1"], **PROXY) as web:
        async with web.browser(headers={"X-WEBAUTH-USER": "admin"}) as proxied:
            me = (await proxied.get("/api/v1/me")).json()
        people = PeopleStore(web.pool, append_audit, origin="web@127.0.0.1")
        admin = Actor(name=me["name"], role=me["role"], auth="proxy", user_id=me["user_id"])
        await people.add_user(admin, "carol", "viewer")
    rows = await query(
        fresh_db_url,
        "SELECT actor_name, actor_auth FROM mendline.audit_log WHERE action = 'user.add'"
        " AND target = 'user:carol'",
    )
    assert [tuple(row) for row in rows] == [("admin", "proxy")]
    checks = await query(
        fresh_db_url,
        """SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
           WHERE conrelid = 'mendline.fix_jobs'::regclass AND contype = 'c'
             AND pg_get_constraintdef(oid) LIKE '%requested_auth%'""",
    )
    assert len(checks) == 1 and "'proxy'" in checks[0]["def"]  # a fix may be asked for too


async def test_a_dns_rebinding_page_cannot_act_with_the_proxys_header(fresh_db_url: str) -> None:
    async with served_web(
        fresh_db_url, web_auth_proxy_allow=["127.0.0.1"], web_auth_proxy_header="X-WEBAUTH-USER"
    ) as web:
        port = web.url.rsplit(":", 1)[1]
        rebound = f"rebind.evil.example:{port}"  # its name resolves to 127.0.0.1
        async with httpx.AsyncClient(
            base_url=web.url, headers={"Host": rebound, "Origin": f"http://{rebound}"}
        ) as client:
            response = await client.post(
                "/api/v1/users/viewer/role",
                json={"role": "admin"},
                headers={"X-WEBAUTH-USER": "admin"},
            )
            login = await client.post("/login", data={"name": "admin", "password": "guess"})
        assert response.status_code == 421 and login.status_code == 421
        assert "MENDLINE_WEB_PUBLIC_URL" in response.text
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        rows = await query(
            web.database_url, "SELECT role FROM mendline.users WHERE name = $1", "viewer"
        )
        assert rows[0]["role"] == "viewer"
        failures = await query(
            web.database_url, "SELECT count(*) AS n FROM mendline.login_failures"
        )
        assert failures[0]["n"] == 0  # not even counted: the victim is not locked out


async def test_a_trusted_reverse_proxy_may_pass_its_upstreams_name(fresh_db_url: str) -> None:
    async with served_web(fresh_db_url, web_forwarded_allow=["127.0.0.1"]) as web:
        async with web.client("viewer", headers={"Host": "mendline:8040"}) as client:
            answer = await client.get("/api/v1/me")
        assert answer.status_code == 200  # nginx's proxy_pass http://mendline:8040 default
