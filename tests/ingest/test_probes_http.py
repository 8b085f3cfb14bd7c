"""The http probe against a real aiohttp server on loopback whose behaviour each test flips."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme

from mendline.devstack import free_port
from mendline.ingest.probes import HttpClients, observe, run_check
from mendline.schemas.checks import HeartbeatCheck, HttpCheck
from mendline.schemas.settings import Settings
from tests.probe_servers import http_target

pytestmark = pytest.mark.integration

SETTINGS = Settings()


def http_check(url: str, **fields: Any) -> HttpCheck:
    return HttpCheck(kind="http", url=url, **{"name": "web", **fields})


async def test_a_healthy_server_is_observed_with_status_body_headers_ip_and_timings() -> None:
    async with http_target() as target:
        seen = await observe(http_check(target.url), SETTINGS, {})
    assert seen.error is None and seen.error_kind is None
    assert seen.values["STATUS"] == 200
    assert seen.values["BODY"] == "all good"
    headers = seen.values["HEADERS"]
    assert isinstance(headers, dict) and headers["x-served-by"] == "loopback"
    assert seen.values["CONNECTED"] is True
    assert seen.values["IP"] == "127.0.0.1"
    response_time = seen.values["RESPONSE_TIME"]
    assert isinstance(response_time, float) and response_time >= 0
    assert {"connect", "first_byte", "total"} <= seen.timings.keys()
    assert "tls" not in seen.timings  # plain HTTP has no handshake
    assert seen.timings["total"] >= seen.timings["first_byte"] >= 0


async def test_a_503_and_a_wrong_body_are_observations_not_errors() -> None:
    async with http_target() as target:
        target.mode = "down"
        down = await observe(http_check(target.url), SETTINGS, {})
        target.mode = "wrong-body"
        wrong = await observe(http_check(target.url), SETTINGS, {})
    assert (down.values["STATUS"], down.values["BODY"], down.error) == (503, "unavailable", None)
    assert (wrong.values["STATUS"], wrong.values["BODY"], wrong.error) == (200, "maintenance", None)


async def test_a_server_slower_than_the_timeout_is_a_timeout_with_the_connection_seen() -> None:
    async with http_target() as target:
        target.mode = "slow"
        seen = await observe(http_check(target.url, timeout=0.5), SETTINGS, {})
    assert seen.error_kind == "timeout"
    assert seen.error is not None
    assert seen.values["CONNECTED"] is True
    assert "STATUS" not in seen.values


async def test_a_redirect_loop_is_an_http_error_and_redirects_can_be_left_unfollowed() -> None:
    async with http_target() as target:
        target.mode = "redirect-loop"
        looped = await observe(http_check(target.url), SETTINGS, {})
        unfollowed = await observe(http_check(target.url, follow_redirects=False), SETTINGS, {})
    assert looped.error_kind == "http"
    assert looped.error is not None and "redirect" in looped.error
    assert unfollowed.error is None and unfollowed.values["STATUS"] == 302


SECRET_HEADERS = {"Authorization": "PROBE_TOKEN", "X-Api-Key": "PROBE_KEY"}
SECRETS = {"PROBE_TOKEN": "Bearer s3cr3t-token", "PROBE_KEY": "s3cr3t-api-key"}


def sent(received: list[tuple[str, dict[str, str]]], *names: str) -> list[tuple[str, set[str]]]:
    """Each request's path and which of the header ``names`` it carried (lower-cased)."""
    wanted = {name.lower() for name in names}
    return [(path, {h.lower() for h in headers} & wanted) for path, headers in received]


async def test_secret_headers_go_only_to_the_checks_origin_across_redirects() -> None:
    """/health on A redirects to B (another port: another origin), which redirects back to
    A: the headers from the environment reach A's first request only; plain ones follow."""
    names = ("Authorization", "X-Api-Key", "X-Plain")
    async with http_target() as a, http_target() as b:
        a.location = b.url
        b.location = f"http://127.0.0.1:{a.port}/landing"
        check = http_check(a.url, headers={"X-Plain": "yes"}, headers_env=SECRET_HEADERS)
        seen = await observe(check, SETTINGS, SECRETS)
    assert (seen.error, seen.values["STATUS"], seen.values["BODY"]) == (None, 200, "all good")
    assert sent(a.received, *names) == [
        ("/health", {"authorization", "x-api-key", "x-plain"}),
        ("/landing", {"x-plain"}),
    ]
    assert sent(b.received, *names) == [("/health", {"x-plain"})]
    assert seen.timings["first_byte"] >= 0


async def test_secret_headers_follow_a_redirect_within_the_origin() -> None:
    async with http_target() as target:
        target.location = "/landing"
        seen = await observe(http_check(target.url, headers_env=SECRET_HEADERS), SETTINGS, SECRETS)
    assert (seen.error, seen.values["STATUS"]) == (None, 200)
    assert sent(target.received, *SECRET_HEADERS) == [
        ("/health", {"authorization", "x-api-key"}),
        ("/landing", {"authorization", "x-api-key"}),
    ]


async def test_a_refused_port_is_refused() -> None:
    seen = await observe(http_check(f"http://127.0.0.1:{free_port()}/"), SETTINGS, {})
    assert seen.error_kind == "refused"
    assert seen.values["CONNECTED"] is False


async def test_an_unresolvable_name_is_a_dns_error() -> None:
    seen = await observe(http_check("http://no-such-host.invalid/"), SETTINGS, {})
    assert seen.error_kind == "dns"
    assert seen.error is not None and "no-such-host.invalid" in seen.error


async def test_the_method_headers_and_body_are_sent_and_a_header_secret_is_never_observed() -> None:
    secret = "s3cr3t-token-value"
    check = http_check(
        "http://x/",
        method="POST",
        body="ping",
        headers={"X-Plain": "yes"},
        headers_env={"Authorization": "PROBE_TOKEN"},
    )
    async with http_target() as target:
        target.mode = "echo"
        check = check.model_copy(update={"url": target.url})
        seen = await observe(check, SETTINGS, {"PROBE_TOKEN": secret})
    assert target.requests == ["POST"]
    assert seen.values["STATUS"] == 200
    assert seen.values["BODY"] == "you sent [Filtered]"  # the server echoed it; we hide it
    headers = seen.values["HEADERS"]
    assert isinstance(headers, dict) and headers["x-echo"] == "[Filtered]"
    assert secret not in seen.model_dump_json()


async def test_an_unset_header_variable_is_a_config_error_naming_it_and_nothing_is_sent() -> None:
    async with http_target() as target:
        check = http_check(target.url, headers_env={"Authorization": "PROBE_TOKEN"})
        seen = await observe(check, SETTINGS, {"OTHER": "value"})
    assert seen.error_kind == "config"
    assert seen.error is not None and "PROBE_TOKEN" in seen.error
    assert target.requests == []


async def test_https_verifies_the_certificate_unless_told_not_to() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    async with http_target(server_tls) as target:
        verified = await observe(http_check(target.url), SETTINGS, {})
        unverified = await observe(http_check(target.url, verify_tls=False), SETTINGS, {})
    assert verified.error_kind == "tls"  # trustme's CA is not in the system's bundle
    assert verified.error is not None and "certificate" in verified.error
    assert unverified.error is None and unverified.values["STATUS"] == 200
    assert unverified.timings["tls"] >= 0


async def test_shared_clients_serve_many_checks_and_keep_each_checks_tls_setting() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    async with http_target(server_tls) as target, HttpClients() as clients:
        results = [
            await observe(http_check(target.url, verify_tls=False), SETTINGS, {}, http=clients)
            for _ in range(3)
        ]
        verified = await observe(http_check(target.url), SETTINGS, {}, http=clients)
    assert [r.values["STATUS"] for r in results] == [200, 200, 200]
    assert all(r.values["IP"] == "127.0.0.1" for r in results)  # reused connections too
    assert verified.error_kind == "tls"


async def test_a_cookie_an_answer_sets_is_never_sent_by_a_later_run_or_another_check() -> None:
    async with http_target() as target, HttpClients() as clients:
        target.cookie = "from-the-first-answer"
        first = await observe(http_check(target.url), SETTINGS, {}, http=clients)
        await observe(http_check(target.url, name="other"), SETTINGS, {}, http=clients)
        await observe(http_check(target.url), SETTINGS, {}, http=clients)
    assert "session=from-the-first-answer" in first.values["HEADERS"]["set-cookie"]
    assert len(target.received) == 3
    assert [headers.get("Cookie") for _, headers in target.received] == [None, None, None]


async def test_a_heartbeat_check_has_no_probe() -> None:
    check = HeartbeatCheck(kind="heartbeat", name="nightly", every=3600)
    with pytest.raises(ValueError, match="heartbeat"):
        await observe(check, SETTINGS, {})


async def test_many_checks_at_once_through_shared_clients_each_get_their_answer() -> None:
    async with http_target() as target, HttpClients(max_connections=10) as clients:
        checks = [http_check(target.url, name=f"web-{i}") for i in range(50)]
        results = await asyncio.gather(
            *(observe(check, SETTINGS, {}, http=clients) for check in checks)
        )
    assert [(r.values["STATUS"], r.error) for r in results] == [(200, None)] * 50
    assert len(target.requests) == 50


async def test_shared_clients_keep_a_few_idle_connections_not_one_per_check_run() -> None:
    async with http_target() as target, HttpClients(max_keepalive=2) as clients:
        target.mode, target.delay = "slow", 0.2  # ten at once need ten connections
        checks = [http_check(target.url, name=f"web-{i}") for i in range(10)]
        await asyncio.gather(*(observe(c, SETTINGS, {}, http=clients) for c in checks))
        first = set(target.peers)
        await asyncio.gather(*(observe(c, SETTINGS, {}, http=clients) for c in checks))
        again = set(target.peers[10:])
    assert len(first) == 10
    assert 1 <= len(first & again) <= 2  # two kept alive and reused, the rest closed


async def test_run_check_judges_the_conditions_over_what_the_probe_saw() -> None:
    async with http_target() as target:
        check = http_check(target.url, conditions=["[STATUS] == 200", "[BODY] == pat(*good*)"])
        slot = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
        healthy = await run_check(check, slot, SETTINGS, {})
        target.mode = "wrong-body"
        wrong = await run_check(check, slot, SETTINGS, {})
    assert healthy.success and healthy.scheduled_at == slot
    assert not wrong.success
    failed = [(c.condition, c.observed) for c in wrong.conditions if not c.success]
    assert failed == [("[BODY] == pat(*good*)", "maintenance")]
