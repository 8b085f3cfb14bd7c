"""``mendline doctor``'s checks of Kafka, PostgreSQL, the LLM endpoint and the routing file."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from mendline.cli._hints import KAFKA_HINT, MIGRATE_HINT, connect_failure
from mendline.cli.output import counted
from mendline.schemas.errors import ConfigError
from mendline.schemas.redaction import redact_url
from mendline.schemas.settings import Settings
from mendline.sinks.routing import (
    RoutingTable,
    check_secrets,
    disabled_receivers,
    is_loopback_host,
    plaintext_warnings,
)

__all__ = [
    "Status",
    "Verdict",
    "check_database",
    "check_kafka",
    "check_llm",
    "check_routes",
    "database_on_this_machine",
    "database_role_exposure",
    "fail",
    "local_role_exposure",
    "ok",
    "warn",
]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Verdict:
    """What one check found: its status, a sentence, and when not ok a hint to fix it."""

    status: Status
    detail: str
    hint: str | None = None


def ok(detail: str) -> Verdict:
    """All is well: ``detail`` says what was found."""
    return Verdict("ok", detail)


def warn(detail: str, hint: str) -> Verdict:
    """It works, but maybe not as meant."""
    return Verdict("warn", detail, hint)


def fail(detail: str, hint: str) -> Verdict:
    """It does not work: ``hint`` says how to fix it."""
    return Verdict("fail", detail, hint)


# -- kafka -------------------------------------------------------------------------------


async def check_kafka(settings: Settings, timeout: float) -> Verdict:
    """The brokers answer, with the errors and DLQ topics; else whether the port or the
    handshake (TLS, SASL) is what fails."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.conn import collect_hosts
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from mendline.ingest import kafka_client_options

    where = redact_url(settings.kafka_bootstrap)
    try:
        hosts = [(host, port) for host, port, _ in collect_hosts(where)]
    except ValueError as exc:
        return fail(
            f"MENDLINE_KAFKA_BOOTSTRAP is not a list of host:port ({exc})",
            "write it as host:port, comma-separated, e.g. kafka-1:9092,kafka-2:9092",
        )
    try:
        options = kafka_client_options(settings)
    except (OSError, ssl.SSLError) as exc:
        return fail(
            f"cannot make the TLS context for Kafka: {exc}",
            "check MENDLINE_KAFKA_SSL_CAFILE: a readable CA bundle (PEM)",
        )
    client = AIOKafkaClient(
        **options, client_id="mendline-doctor", request_timeout_ms=int(timeout * 1000)
    )
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
            try:
                cluster = await client.fetch_all_metadata()
            except KafkaError:
                # The bootstrap server answered; the addresses it gives for its brokers do not.
                advertised = ", ".join(f"{b.host}:{b.port}" for b in client.cluster.brokers())
                return fail(
                    f"{where} answered, but its brokers' advertised addresses ({advertised})"
                    " did not",
                    "the brokers' advertised.listeners must be reachable from here (with"
                    " Docker, use the listener published to the host)",
                )
    except (TimeoutError, KafkaConnectionError) as exc:
        # aiokafka only logs why each broker failed; tell a closed port from a handshake
        # that failed or hangs (TLS or SASL settings that do not match the broker's listener).
        refused = await _refused(hosts, timeout)
        if len(refused) == len(hosts):
            return fail(f"cannot reach Kafka at {where}: {'; '.join(refused)}", KAFKA_HINT)
        failed = (
            f"no Kafka answer within {timeout:g} s"
            if isinstance(exc, TimeoutError)
            else "the Kafka handshake failed"
        )
        return fail(
            f"{where} accepts connections, but {failed}",
            "check MENDLINE_KAFKA_SECURITY_PROTOCOL, MENDLINE_KAFKA_SSL_CAFILE and the SASL"
            " settings against the broker's listener (`mendline --debug doctor` shows more)",
        )
    except (KafkaError, ValueError) as exc:  # ValueError: TLS to a broker named by address
        return fail(f"Kafka at {where} failed: {exc}", KAFKA_HINT)
    finally:
        await client.close()
    brokers = len(cluster.brokers())
    topics = cluster.topics()
    wanted = (settings.errors_topic, settings.dlq_topic)
    found = [
        f"{topic} {counted(len(cluster.partitions_for_topic(topic) or ()), 'partition')}"
        for topic in wanted
        if topic in topics
    ]
    missing = [topic for topic in wanted if topic not in topics]
    detail = ", ".join([f"{where}: {counted(brokers, 'broker')}", *found])
    if missing:
        return fail(
            f"{detail}; topic{'s' if len(missing) > 1 else ''} {' and '.join(missing)}"
            f" {'is' if len(missing) == 1 else 'are'} missing",
            "`mendline topics ensure` creates them (or set MENDLINE_ERRORS_TOPIC and"
            " MENDLINE_DLQ_TOPIC to the topics you use)",
        )
    return ok(detail)


async def _refused(hosts: list[tuple[str, int]], timeout: float) -> list[str]:
    """Why each of ``hosts`` refuses a TCP connection; those that accept are left out."""

    async def refusal(host: str, port: int) -> str | None:
        try:
            async with asyncio.timeout(timeout / 2):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return f"{host}:{port} did not accept within {timeout / 2:g} s"
        except OSError as exc:
            return f"{host}:{port} {exc.strerror or exc}"
        writer.close()
        return None

    found = await asyncio.gather(*(refusal(host, port) for host, port in hosts))
    return [reason for reason in found if reason is not None]


# -- database ----------------------------------------------------------------------------

_LEAST_PRIVILEGE_HINT = (
    "connect mendline as a role that owns nothing: `mendline grants ROLE` prints what it"
    " needs (README, People and the audit trail)"
)
# Whether the role connected is a superuser, and whether it owns the audit log (or is a
# member of the role that does, which is the same).
_ROLE_POWERS = """
SELECT r.rolsuper AS superuser,
       coalesce(pg_has_role(current_user, (SELECT c.relowner FROM pg_class c
                WHERE c.oid = to_regclass('mendline.audit_log')), 'USAGE'), false) AS owner
FROM pg_roles r WHERE r.rolname = current_user
"""


def database_on_this_machine(url: str) -> bool:
    """Whether the database URL names this machine (a loopback host or a Unix socket), as
    the dev stack's and a developer's own do; production databases are elsewhere."""
    parts = urlsplit(url)
    hosts = [host for value in parse_qs(parts.query).get("host", []) for host in value.split(",")]
    hosts += [host for host in [parts.hostname] if host]
    return all(host.startswith("/") or is_loopback_host(host) for host in hosts)


def local_role_exposure(local_role: str, database_url: str) -> tuple[str, str] | None:
    """Why acting as the local OS user is risky here (it is on, and the database is not on
    this machine, so not the dev stack's), with a hint; None when it is off or local."""
    if local_role == "none" or database_on_this_machine(database_url):
        return None
    return (
        f"MENDLINE_LOCAL_ROLE is {local_role} for a database that is not on this machine:"
        f" without a token, anyone who runs a command here acts as {local_role}",
        "set MENDLINE_LOCAL_ROLE=none where mendline runs in production, and act with tokens"
        " (`mendline tokens create`)",
    )


def database_role_exposure(
    role: str, *, superuser: bool, owns_audit_log: bool, on_this_machine: bool
) -> tuple[str, str] | None:
    """Why the role mendline connects with could rewrite the audit trail (a superuser, or the
    audit log's owner, may disable its append-only trigger), with a hint; None when it
    cannot, or for a database on this machine (the dev stack's)."""
    if on_this_machine or not (superuser or owns_audit_log):
        return None
    power = "is a superuser" if superuser else "owns mendline.audit_log"
    return (
        f"the role {role} {power}, so it can disable the audit log's trigger and rewrite the trail",
        _LEAST_PRIVILEGE_HINT,
    )


async def check_database(settings: Settings, timeout: float) -> Verdict:
    """PostgreSQL takes the login, and every migration this mendline ships is applied."""
    import asyncpg

    from mendline.sinks.postgres import available_migrations

    url = settings.database_url.get_secret_value()
    shown = redact_url(url)
    try:
        conn = await asyncpg.connect(url, timeout=timeout, command_timeout=timeout)
    except TimeoutError:
        return fail(
            f"PostgreSQL at {shown} did not answer within {timeout:g} s",
            "something accepted the connection but did not answer as PostgreSQL: check the"
            " host and port in MENDLINE_DATABASE_URL",
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        return fail(*connect_failure(exc, shown))
    try:
        version = conn.get_server_version()
        applied: list[str] = []
        if await conn.fetchval("SELECT to_regclass('mendline.schema_migrations') IS NOT NULL"):
            rows = await conn.fetch("SELECT version FROM mendline.schema_migrations")
            applied = sorted(row["version"] for row in rows)
        role = await conn.fetchval("SELECT current_user")
        powers = await conn.fetchrow(_ROLE_POWERS)
    finally:
        await conn.close(timeout=timeout)
    exposure = database_role_exposure(
        role,
        superuser=bool(powers and powers["superuser"]),
        owns_audit_log=bool(powers and powers["owner"]),
        on_this_machine=database_on_this_machine(url),
    )
    shipped = [name for name, _ in available_migrations()]
    server = f"{shown}: PostgreSQL {version.major}.{version.minor}"
    pending = [name for name in shipped if name not in applied]
    unknown = [name for name in applied if name not in shipped]
    if not applied:
        return fail(f"{server}, but mendline's tables are not there yet", MIGRATE_HINT)
    if pending:
        return fail(
            f"{server}, {len(pending)} of {len(shipped)} migrations not applied:"
            f" {', '.join(pending)}",
            MIGRATE_HINT,
        )
    if unknown:
        return warn(
            f"{server}, migrated by a newer mendline ({', '.join(unknown)} unknown here)",
            "upgrade this mendline to the version the other processes run",
        )
    migrated = f"{server}, all {len(shipped)} migrations applied (newest {shipped[-1]})"
    if exposure is not None:
        return warn(f"{migrated}; but {exposure[0]}", exposure[1])
    return ok(migrated)


# -- llm ---------------------------------------------------------------------------------


async def check_llm(settings: Settings, timeout: float) -> Verdict:
    """The endpoint takes the key and lists the model (skipped with no endpoint set)."""
    import httpx

    from mendline.analyzers.rootcause.llm import endpoint_auth

    base = settings.llm_base_url
    if base is None:
        return Verdict("skip", "MENDLINE_LLM_BASE_URL is unset: the heuristic analyser, offline")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    headers, params = endpoint_auth(key, settings.llm_api_key_header, settings.llm_api_version)
    shown = redact_url(base.rstrip("/"))
    reach = (
        "is the server running? check MENDLINE_LLM_BASE_URL (the API root, …/v1), or unset it"
        " to use the offline heuristic analyser"
    )
    timeout = min(timeout, settings.llm_timeout)
    try:
        async with (
            httpx.AsyncClient(headers=headers, timeout=timeout) as client,
            asyncio.timeout(timeout),
        ):
            response = await client.get(base.rstrip("/") + "/models", params=params)
    except (httpx.TimeoutException, TimeoutError):
        return fail(f"{shown}: no answer within {timeout:g} s", reach)
    except httpx.TransportError as exc:
        return fail(f"cannot reach {shown}: {type(exc).__name__}: {exc}", reach)
    status = response.status_code
    if status in (401, 403):
        return fail(
            f"{shown}/models answered HTTP {status}: the key is refused", _key_hint(key, settings)
        )
    if status == 404:
        return warn(
            f"{shown}/models is not there (HTTP 404), so the model could not be looked up",
            "check that MENDLINE_LLM_BASE_URL is the API root (…/v1); Azure OpenAI deployments"
            " list no models there",
        )
    if status >= 400:
        verdict = warn if status == 429 else fail
        return verdict(
            f"{shown}/models answered HTTP {status}: {response.text[:200].strip()}",
            "check MENDLINE_LLM_BASE_URL; the endpoint's own logs say more",
        )
    models = _model_ids(response)
    model = settings.llm_model
    if models is None:
        return warn(
            f"{shown}/models answered without a list of models, so {model} could not be looked up",
            "check that MENDLINE_LLM_BASE_URL is an OpenAI-compatible API root (…/v1)",
        )
    if model not in models:
        listed = ", ".join(models[:5]) + (", …" if len(models) > 5 else "")
        return warn(
            f"{shown}: model {model} is not among the {len(models)} listed ({listed or 'none'})",
            "set MENDLINE_LLM_MODEL to a model the endpoint serves (with Azure, the deployment)",
        )
    return ok(f"{shown}: model {model} is listed ({counted(len(models), 'model')})")


def _key_hint(key: str | None, settings: Settings) -> str:
    if key is None:
        return "the endpoint wants a key: set MENDLINE_LLM_API_KEY"
    if settings.llm_api_key_header == "api-key":
        return (
            "check MENDLINE_LLM_API_KEY; MENDLINE_LLM_API_KEY_HEADER=api-key is for Azure"
            " OpenAI, other endpoints want the default (Authorization)"
        )
    return (
        "check MENDLINE_LLM_API_KEY; for Azure OpenAI also set MENDLINE_LLM_API_KEY_HEADER=api-key"
        " and MENDLINE_LLM_API_VERSION"
    )


def _model_ids(response: Any) -> list[str] | None:
    try:
        data = response.json()["data"]
        return [str(entry["id"]) for entry in data]
    except (ValueError, KeyError, TypeError):
        return None


# -- routes ------------------------------------------------------------------------------


async def check_routes(
    routes: RoutingTable | ConfigError,
    environ: Mapping[str, str],
    llm_base_url: str | None,
    profile: str = "production",
) -> Verdict:
    """The routing file loads, its secrets are set (in the development ``profile``, a
    receiver without one is disabled: a warning), every receiver is routed to, and no
    credential (of a receiver or the LLM) would go over plaintext."""
    if isinstance(routes, ConfigError):
        return fail(
            str(routes),
            "fix the routing file (MENDLINE_ROUTES_FILE); `mendline routes check` validates it",
        )
    detail = (
        f"{routes.source}: {counted(len(routes.routes), 'route')},"
        f" {counted(len(routes.receivers), 'receiver')}"
    )
    plaintext = plaintext_warnings(routes, environ, llm_base_url)
    missing = check_secrets(routes, environ)
    if missing and profile == "development":
        off = list(disabled_receivers(routes, environ).values())
        return warn(
            "; ".join([detail, *off, *plaintext]),
            "their alerts are recorded as suppressed, not sent: set the variables where"
            " `mendline alert` runs (MENDLINE_PROFILE=production refuses to start without them)",
        )
    if missing:
        return fail(
            "; ".join([detail, *missing, *plaintext]),
            "set these variables where `mendline alert` runs: it does not start without them",
        )
    used = {name for route in routes.routes for name in route.receivers}
    unused = [name for name in routes.receivers if name not in used]
    problems = [f"no route sends to {', '.join(unused)}"] if unused else []
    hints = ["name them in a route's receivers, or remove them"] if unused else []
    if plaintext:
        problems += plaintext
        hints.append("credentials over plain http or SMTP can be read on the way")
    if problems:
        return warn("; ".join([detail, *problems]), "; ".join(hints))
    return ok(detail)
