"""Active health checks: ``observe()`` runs one check's probe (http, tcp, dns, tls, postgres
or kafka) within its timeout and returns what it saw, failures included, as an Observation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from mendline.analyzers.health import probe_result
from mendline.ingest.probes._dns import probe_dns
from mendline.ingest.probes._http import BODY_LIMIT, HttpClients, http_secrets, probe_http
from mendline.ingest.probes._kafka import (
    TAIL_STEP,
    TailRead,
    kafka_probe_options,
    probe_kafka,
    read_recent,
    tail_chunk,
)
from mendline.ingest.probes._postgres import postgres_secrets, probe_postgres
from mendline.ingest.probes._run import ProbeFailed, Seen, hide
from mendline.ingest.probes._tcp import probe_tcp
from mendline.ingest.probes._tls import probe_tls
from mendline.schemas.checks import (
    Check,
    CheckResult,
    DnsCheck,
    HeartbeatCheck,
    HttpCheck,
    KafkaCheck,
    Observation,
    PostgresCheck,
    TcpCheck,
    TlsCheck,
)
from mendline.schemas.redaction import redact_url
from mendline.schemas.settings import Settings

__all__ = [
    "BODY_LIMIT",
    "TAIL_STEP",
    "HttpClients",
    "TailRead",
    "kafka_probe_options",
    "observe",
    "read_recent",
    "run_check",
    "tail_chunk",
]

_ERROR_WIDTH = 1000


def _secrets(check: Check, settings: Settings, environ: Mapping[str, str]) -> list[str]:
    if isinstance(check, HttpCheck):
        return http_secrets(check, environ)
    if isinstance(check, PostgresCheck):
        return postgres_secrets(check, environ)
    if isinstance(check, KafkaCheck) and settings.kafka_sasl_password is not None:
        return [settings.kafka_sasl_password.get_secret_value()]
    return []


async def _probe(
    check: Check,
    settings: Settings,
    environ: Mapping[str, str],
    seen: Seen,
    http: HttpClients | None,
) -> None:
    if isinstance(check, HttpCheck):
        await probe_http(check, environ, seen, http)
    elif isinstance(check, TcpCheck):
        await probe_tcp(check, seen)
    elif isinstance(check, DnsCheck):
        await probe_dns(check, seen)
    elif isinstance(check, TlsCheck):
        await probe_tls(check, seen)
    elif isinstance(check, PostgresCheck):
        await probe_postgres(check, environ, seen)
    else:
        assert isinstance(check, KafkaCheck)
        await probe_kafka(check, settings, seen)


async def observe(
    check: Check,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    http: HttpClients | None = None,
) -> Observation:
    """Run ``check``'s probe once and return what it observed.

    Never raises for what the network or the target does: a failure is an Observation with
    ``error`` (a sentence, secrets filtered) and ``error_kind``, plus the values seen before
    it. ``check.timeout`` bounds the whole run ("timeout"). An environment variable the check
    names that is unset in ``environ`` is a "config" failure naming it. ``http`` shares
    clients (and their connections) between http probes; without it each makes its own.
    A HeartbeatCheck has no probe: ValueError.
    """
    if isinstance(check, HeartbeatCheck):
        raise ValueError(f"{check.name} is a heartbeat check: it is judged on check-ins")
    seen = Seen()
    secrets = _secrets(check, settings, environ)
    failure: ProbeFailed | None = None
    try:
        async with asyncio.timeout(check.timeout):
            await _probe(check, settings, environ, seen, http)
    except ProbeFailed as exc:
        failure = exc
    except TimeoutError:
        failure = ProbeFailed("timeout", f"no answer within the timeout of {check.timeout:g}s")
    except Exception as exc:  # a library's error none of the probes foresaw: still a result
        failure = ProbeFailed("other", f"the probe failed: {type(exc).__name__}: {exc}")
    seen.timings["total"] = time.perf_counter() - seen.started
    if failure is None:
        return Observation(values=seen.values, timings=seen.timings)
    message = hide(redact_url(failure.message, secrets), secrets)
    if len(message) > _ERROR_WIDTH:  # a server's words may be long; the sentence is enough
        message = message[: _ERROR_WIDTH - 1] + "…"
    return Observation(
        values=seen.values, timings=seen.timings, error=message, error_kind=failure.kind
    )


async def run_check(
    check: Check,
    scheduled_at: datetime,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    http: HttpClients | None = None,
) -> CheckResult:
    """Run ``check`` for its slot ``scheduled_at``: observe it, then judge its conditions."""
    started_at = datetime.now(UTC)
    began = time.monotonic()
    observation = await observe(check, settings, environ, http=http)
    return probe_result(check, scheduled_at, started_at, time.monotonic() - began, observation)
