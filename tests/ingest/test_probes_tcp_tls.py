"""The tcp and tls probes against real listeners on loopback, with certificates made by
trustme for each test: valid, expiring soon, expired, unknown to the checker."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from mendline.devstack import free_port
from mendline.ingest.probes import observe
from mendline.schemas.checks import TcpCheck, TlsCheck
from mendline.schemas.settings import Settings
from tests.loopback import HOST

pytestmark = pytest.mark.integration

SETTINGS = Settings()
DAY = 86400.0


@contextlib.asynccontextmanager
async def listener(tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A server on loopback that accepts (with a TLS handshake when ``tls``) and hangs up."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, HOST, 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def serving(ca: trustme.CA, **issue: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", **issue).configure_cert(context)
    return context


def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_tcp_connects_to_a_listener_and_reports_its_address() -> None:
    async with listener() as port:
        seen = await observe(TcpCheck(kind="tcp", name="t", host=HOST, port=port), SETTINGS, {})
    assert seen.error is None
    assert seen.values["CONNECTED"] is True and seen.values["IP"] == HOST
    assert isinstance(seen.values["RESPONSE_TIME"], float)
    assert seen.timings["total"] >= seen.timings["connect"] >= 0


async def test_tcp_to_a_closed_port_is_refused_and_not_connected() -> None:
    check = TcpCheck(kind="tcp", name="t", host=HOST, port=free_port())
    seen = await observe(check, SETTINGS, {})
    assert seen.error_kind == "refused" and seen.values["CONNECTED"] is False
    assert seen.error is not None and str(check.port) in seen.error


async def test_tcp_to_an_unresolvable_name_is_a_dns_error() -> None:
    seen = await observe(TcpCheck(kind="tcp", name="t", host="nope.invalid", port=80), SETTINGS, {})
    assert seen.error_kind == "dns"


async def test_tls_reports_the_days_left_subject_and_issuer_of_a_trusted_certificate(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    not_after = datetime.now(UTC) + timedelta(days=90)
    async with listener(serving(ca, not_after=not_after)) as port:
        check = TlsCheck(
            kind="tls",
            name="cert",
            host=HOST,
            port=port,
            server_name="localhost",
            ca_file=ca_file(ca, tmp_path),
        )
        seen = await observe(check, SETTINGS, {})
    assert seen.error is None
    left = seen.values["CERTIFICATE_EXPIRATION"]
    assert isinstance(left, float) and 89 * DAY < left <= 90 * DAY
    assert seen.values["CONNECTED"] is True and seen.values["IP"] == HOST
    assert "trustme" in str(seen.values["CERTIFICATE_ISSUER"])
    assert seen.values["CERTIFICATE_DNS_NAMES"] == ["localhost"]
    assert seen.timings["tls"] >= 0


async def test_tls_a_certificate_expiring_soon_is_observed_not_an_error(tmp_path: Path) -> None:
    ca = trustme.CA()
    not_after = datetime.now(UTC) + timedelta(days=3)
    async with listener(serving(ca, not_after=not_after)) as port:
        check = TlsCheck(
            kind="tls", name="cert", host="localhost", port=port, ca_file=ca_file(ca, tmp_path)
        )
        seen = await observe(check, SETTINGS, {})
    assert seen.error is None
    left = seen.values["CERTIFICATE_EXPIRATION"]
    assert isinstance(left, float) and 2 * DAY < left <= 3 * DAY


async def test_tls_an_unknown_ca_is_a_tls_error_that_still_reports_the_expiry() -> None:
    ca = trustme.CA()
    not_after = datetime.now(UTC) + timedelta(days=10)
    async with listener(serving(ca, not_after=not_after)) as port:
        check = TlsCheck(kind="tls", name="cert", host=HOST, port=port, server_name="localhost")
        seen = await observe(check, SETTINGS, {})
    assert seen.error_kind == "tls"
    assert seen.error is not None and "not trusted" in seen.error
    left = seen.values["CERTIFICATE_EXPIRATION"]
    assert isinstance(left, float) and 9 * DAY < left <= 10 * DAY


async def test_tls_an_expired_certificate_fails_verification_but_shows_negative_time_left(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    expired = dict(
        not_before=datetime.now(UTC) - timedelta(days=30),
        not_after=datetime.now(UTC) - timedelta(days=2),
    )
    async with listener(serving(ca, **expired)) as port:
        cafile = ca_file(ca, tmp_path)
        verified = TlsCheck(kind="tls", name="c", host="localhost", port=port, ca_file=cafile)
        failed = await observe(verified, SETTINGS, {})
        unverified = verified.model_copy(update={"verify_tls": False})
        seen = await observe(unverified, SETTINGS, {})
    assert failed.error_kind == "tls" and "expired" in (failed.error or "")
    assert seen.error is None
    for result in (failed, seen):
        left = result.values["CERTIFICATE_EXPIRATION"]
        assert isinstance(left, float) and -3 * DAY < left < -DAY


async def test_tls_a_name_the_certificate_is_not_for_is_a_tls_error(tmp_path: Path) -> None:
    ca = trustme.CA()
    async with listener(serving(ca)) as port:
        check = TlsCheck(
            kind="tls",
            name="c",
            host=HOST,
            port=port,
            server_name="other.example",
            ca_file=ca_file(ca, tmp_path),
        )
        seen = await observe(check, SETTINGS, {})
    assert seen.error_kind == "tls" and "other.example" in (seen.error or "")


async def test_tls_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    check = TlsCheck(kind="tls", name="c", host=HOST, port=1, ca_file=str(tmp_path / "none.pem"))
    seen = await observe(check, SETTINGS, {})
    assert seen.error_kind == "config" and "none.pem" in (seen.error or "")


async def test_tls_to_a_server_that_hangs_up_or_speaks_plain_http_is_a_tls_error() -> None:
    async with listener() as port:
        check = TlsCheck(kind="tls", name="c", host=HOST, port=port, verify_tls=False)
        hung_up = await observe(check, SETTINGS, {})
    assert hung_up.error_kind == "tls"
    assert hung_up.values["CONNECTED"] is True

    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, HOST, 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        check = TlsCheck(kind="tls", name="c", host=HOST, port=port, verify_tls=False)
        plain = await observe(check, SETTINGS, {})
    assert plain.error_kind == "tls" and "handshake" in (plain.error or "")
    assert "CERTIFICATE_EXPIRATION" not in plain.values


async def test_tls_to_a_server_that_never_answers_the_handshake_stops_at_the_timeout() -> None:
    # Only the check's timeout bounds this: asyncio's own handshake limit is a minute.
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # say nothing

    server = await asyncio.start_server(silent, HOST, 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        check = TlsCheck(kind="tls", name="c", host=HOST, port=port, timeout=0.5)
        seen = await observe(check, SETTINGS, {})
        for writer in accepted:
            writer.close()
    assert seen.error_kind == "timeout"
    assert seen.values["CONNECTED"] is True
    assert "CERTIFICATE_EXPIRATION" not in seen.values
