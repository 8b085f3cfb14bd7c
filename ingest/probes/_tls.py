"""The tls probe: a handshake with the host, and what its certificate says (expiry,
subject, issuer, names), verified or not."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import time
from datetime import UTC, datetime

from cryptography import x509

from mendline.ingest.probes._run import ProbeFailed, Seen, network_failure
from mendline.ingest.probes._tcp import connect
from mendline.schemas.checks import TlsCheck

__all__ = ["probe_tls"]


@functools.lru_cache(maxsize=64)
def _verifying(ca_file: str | None, modified: float | None) -> ssl.SSLContext:
    # Loading a CA bundle costs milliseconds of CPU: one context per bundle (and version of
    # it, by modification time) serves every check that names it.
    return ssl.create_default_context(cafile=ca_file)


@functools.lru_cache(maxsize=1)
def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _context(check: TlsCheck, verify: bool) -> ssl.SSLContext:
    if not verify:
        return _unverified()
    try:
        modified = os.stat(check.ca_file).st_mtime if check.ca_file else None
        return _verifying(check.ca_file, modified)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        problem = f"the CA file {check.ca_file} cannot be used ({reason})"
        raise ProbeFailed("config", problem) from exc


async def _certificate(check: TlsCheck, context: ssl.SSLContext, seen: Seen) -> bytes:
    """The server's certificate (DER) after a handshake with ``context``."""
    sock = await connect(check.host, check.port, seen)
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname=check.server_name or check.host
        )
    except ssl.SSLCertVerificationError:
        sock.close()
        raise
    except (OSError, ssl.SSLError) as exc:  # connected, so the handshake is what failed
        sock.close()
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        where = f"{check.host}:{check.port}"
        raise ProbeFailed("tls", f"the TLS handshake with {where} failed: {reason}") from exc
    except BaseException:
        sock.close()
        raise
    try:
        seen.timings["tls"] = time.perf_counter() - started
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise ProbeFailed("tls", f"{check.host}:{check.port} sent no certificate")
    return bytes(der)


def _describe(der: bytes, seen: Seen) -> None:
    cert = x509.load_der_x509_certificate(der)
    left = cert.not_valid_after_utc - datetime.now(UTC)
    seen.values["CERTIFICATE_EXPIRATION"] = left.total_seconds()
    seen.values["CERTIFICATE_SUBJECT"] = cert.subject.rfc4514_string()
    seen.values["CERTIFICATE_ISSUER"] = cert.issuer.rfc4514_string()
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        seen.values["CERTIFICATE_DNS_NAMES"] = names.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):
        seen.values["CERTIFICATE_DNS_NAMES"] = []


async def probe_tls(check: TlsCheck, seen: Seen) -> None:
    """Handshake with the check's host: CONNECTED, IP, CERTIFICATE_EXPIRATION (seconds left,
    negative once expired), CERTIFICATE_SUBJECT, CERTIFICATE_ISSUER, CERTIFICATE_DNS_NAMES,
    RESPONSE_TIME (connect and handshake, ms). A certificate that fails verification is a
    "tls" failure that still reports what the certificate says (from a second handshake
    without verification)."""
    context = _context(check, check.verify_tls)
    target = f"{check.host}:{check.port}"
    try:
        der = await _certificate(check, context, seen)
    except ssl.SSLCertVerificationError as exc:
        failure = network_failure(exc, target)
        with contextlib.suppress(ProbeFailed, OSError, ssl.SSLError, ValueError):
            _describe(await _certificate(check, _context(check, False), Seen()), seen)
        raise failure from exc
    except (OSError, ssl.SSLError) as exc:
        raise network_failure(exc, target) from exc
    try:
        _describe(der, seen)
    except ValueError as exc:
        raise ProbeFailed("tls", f"the certificate of {target} cannot be read ({exc})") from exc
    seen.values["RESPONSE_TIME"] = (seen.timings["connect"] + seen.timings["tls"]) * 1000.0
