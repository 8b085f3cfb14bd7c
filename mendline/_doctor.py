"""``mendline doctor``: checks the settings, broker, database, LLM endpoint and alert channels.

Every check gives one result, ``ok``, ``warn``, ``fail`` or ``skip``, with a sentence saying
what it found and, when not ok, a hint saying how to fix it. Checks run side by side, each
within a few seconds, and never send anything people would see: no Kafka record, no alert,
no email; a Slack webhook is not posted to. Secrets never reach the output.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import functools
import json
import math
import os
import re
import socket
import ssl
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from mendline._console import colour_for
from mendline.analyzers.scrubbing import FILTERED, Scrubber
from mendline.schemas.alert import EmailReceiver, PagerDutyReceiver, Receiver, SlackReceiver
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings
from mendline.sinks._routing import RoutingTable, check_secrets, load_routes

__all__ = ["TIMEOUT", "Check", "doctor", "run_checks"]

Status = Literal["ok", "warn", "fail", "skip"]

#: Seconds each check may take; a server that has not answered by then is reported.
TIMEOUT = 5.0

_PREFIX = str(Settings.model_config.get("env_prefix", ""))
_SETTING_VARIABLES = frozenset(f"{_PREFIX}{name.upper()}" for name in Settings.model_fields)
_MIGRATE_HINT = "run `mendline migrate` (`mendline consume` also applies them when it starts)"
_COLOURS: dict[Status, str] = {"ok": "32", "warn": "33", "fail": "31;1", "skip": "2"}


@dataclass(frozen=True)
class Check:
    """The result of one check: what was found and, when not ok, how to fix it."""

    name: str
    status: Status
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class _Verdict:
    status: Status
    detail: str
    hint: str | None = None


def _ok(detail: str) -> _Verdict:
    return _Verdict("ok", detail)


def _warn(detail: str, hint: str) -> _Verdict:
    return _Verdict("warn", detail, hint)


def _fail(detail: str, hint: str) -> _Verdict:
    return _Verdict("fail", detail, hint)


def doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check, print the results (``args.json``: one JSON object); 1 if any failed."""
    checks = asyncio.run(run_checks(settings, config_file=args.config, debug=args.debug))
    failed = any(check.status == "fail" for check in checks)
    if args.json:
        document = {"ok": not failed, "checks": [asdict(check) for check in checks]}
        print(json.dumps(document))
    else:
        colour = colour_for(sys.stdout)
        print(render(checks, colour=colour))
    return 1 if failed else 0


async def run_checks(
    settings: Settings,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    timeout: float = TIMEOUT,
    debug: bool = False,
) -> list[Check]:
    """Every check, run side by side, in a fixed order: settings, kafka, database, llm,
    routes, then one per receiver. Secrets are filtered out of what they say."""
    try:
        routes: RoutingTable | ConfigError = load_routes(settings.routes_file)
    except ConfigError as exc:
        routes = exc
    planned: list[tuple[str, Callable[[], Awaitable[_Verdict]]]] = [
        ("settings", functools.partial(_settings, settings, config_file, environ, routes)),
        ("kafka", functools.partial(_kafka, settings, timeout)),
        ("database", functools.partial(_database, settings, timeout)),
        ("llm", functools.partial(_llm, settings, timeout)),
        ("routes", functools.partial(_routes, routes, environ)),
    ]
    if isinstance(routes, RoutingTable):
        planned += [
            (f"receiver:{name}", functools.partial(_receiver, name, receiver, environ, timeout))
            for name, receiver in routes.receivers.items()
        ]
    checks = await asyncio.gather(
        *(_guarded(name, check, timeout, debug) for name, check in planned)
    )
    redact = _Redactor(_secrets(settings, routes, environ))
    return [
        Check(c.name, c.status, redact(c.detail), redact(c.hint) if c.hint else None)
        for c in checks
    ]


async def _guarded(
    name: str, check: Callable[[], Awaitable[_Verdict]], timeout: float, debug: bool
) -> Check:
    """One check; an exception it did not foresee, or a hang, is its failure, not doctor's."""
    try:
        # Each check has its own deadlines inside (a second look may follow a first that
        # timed out); this one is the backstop.
        async with asyncio.timeout(2 * timeout):
            verdict = await check()
    except TimeoutError:
        verdict = _fail(
            f"no result within {2 * timeout:g} s",
            "a server accepted the connection but never answered; check it is the right one",
        )
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        verdict = _fail(
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run `mendline --debug doctor` for the traceback, and report it",
        )
    return Check(name, verdict.status, verdict.detail, verdict.hint)


def render(checks: Iterable[Check], *, colour: bool = False) -> str:
    """The results for people: one line a check, a hint line under each that is not ok,
    and a last line summing up."""
    checks = list(checks)
    width = max((len(c.name) for c in checks), default=0) + 2
    lines = []
    for check in checks:
        status: str = check.status
        if colour:
            status = f"\x1b[{_COLOURS[check.status]}m{status}\x1b[0m"
        pad = " " * (6 - len(check.status))
        first, *more = check.detail.splitlines() or [""]
        lines.append(f"  {status}{pad}{check.name:{width}}{first}")
        lines += [f"  {'':6}{'':{width}}{line}" for line in more]
        if check.hint and check.status != "ok":
            lines.append(f"        hint: {check.hint}")
    lines.append(_summary(checks))
    return "\n".join(lines)


def _summary(checks: list[Check]) -> str:
    counts = {status: sum(c.status == status for c in checks) for status in _COLOURS}
    words = {"ok": "ok", "warn": "warned", "fail": "failed", "skip": "skipped"}
    shown = ", ".join(f"{counts[s]} {words[s]}" for s in _COLOURS if counts[s])
    if counts["fail"]:
        verdict = "fix what failed (each has a hint) and run `mendline doctor` again"
    elif counts["warn"]:
        verdict = "nothing failed; the warnings may still matter"
    else:
        verdict = "all good"
    return f"{len(checks)} checks: {shown}; {verdict}"


class _Redactor:
    """Replaces the secret values in a text: the exact values we know are secret."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is filtered whole. Values under
        # 4 characters would filter ordinary words; they are not worth guessing at anyway.
        found = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, found))) if found else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(FILTERED, text) if self._pattern else text


def _secrets(
    settings: Settings, routes: RoutingTable | ConfigError, environ: Mapping[str, str]
) -> Iterator[str]:
    url = settings.database_url.get_secret_value()
    try:
        parts = urlsplit(url)
        yield parts.password or ""
        yield from (value for key, value in parse_qsl(parts.query) if "password" in key.lower())
    except ValueError:  # not a URL: the database check says so, showing it scrubbed
        pass
    for secret in (settings.llm_api_key, settings.kafka_sasl_password):
        if secret is not None:
            yield secret.get_secret_value()
    if isinstance(routes, RoutingTable):
        for receiver in routes.receivers.values():
            for setting, variable in receiver:
                # A user name is no secret, and filtering a short one would garble words.
                if setting.endswith("_env") and setting != "username_env" and variable:
                    yield environ.get(variable, "")


# -- settings ----------------------------------------------------------------------------


def _settings_source(config_file: Path | None, environ: Mapping[str, str]) -> str:
    variables = sum(name in environ for name in _SETTING_VARIABLES)
    read = f"{variables} {_PREFIX}* variable{'' if variables == 1 else 's'}"
    if config_file is not None:
        return f"loaded from {config_file} and {read} (the environment wins)"
    return f"loaded from {read}, no --config file; the rest are defaults"


async def _settings(
    settings: Settings,
    config_file: Path | None,
    environ: Mapping[str, str],
    routes: RoutingTable | ConfigError,
) -> _Verdict:
    detail = _settings_source(config_file, environ)
    odd = [*_odd_settings(settings), *_misspelt_variables(environ, routes)]
    if not odd:
        return _ok(detail)
    return _warn(
        f"{detail}; but {'; '.join(problem for problem, _ in odd)}",
        "; ".join(hint for _, hint in odd),
    )


def _odd_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """Combinations that load but cannot be what was meant: (what is odd, what to do)."""
    if s.llm_base_url is None:
        unused = [
            name
            for name, used in (
                ("MENDLINE_LLM_API_KEY", s.llm_api_key is not None),
                ("MENDLINE_LLM_API_VERSION", s.llm_api_version is not None),
                ("MENDLINE_LLM_API_KEY_HEADER", s.llm_api_key_header != "Authorization"),
            )
            if used
        ]
        if unused:
            yield (
                f"{' and '.join(unused)} set without MENDLINE_LLM_BASE_URL, so unused"
                " (the heuristic analyser answers)",
                "set MENDLINE_LLM_BASE_URL to the endpoint's API root (…/v1) to use the LLM",
            )
    elif urlsplit(s.llm_base_url).scheme not in ("http", "https"):
        yield (
            "MENDLINE_LLM_BASE_URL is not an http(s) URL",
            "write it whole, e.g. https://api.openai.com/v1",
        )
    if s.llm_api_key_header == "api-key" and s.llm_api_key is None:
        yield (
            "MENDLINE_LLM_API_KEY_HEADER is api-key but no MENDLINE_LLM_API_KEY is set",
            "set MENDLINE_LLM_API_KEY (Azure OpenAI's key)",
        )
    if s.llm_daily_cost_budget and not (s.llm_input_price or s.llm_output_price):
        yield (
            "MENDLINE_LLM_DAILY_COST_BUDGET is set but both LLM prices are 0, so it never runs out",
            "set MENDLINE_LLM_INPUT_PRICE and MENDLINE_LLM_OUTPUT_PRICE (dollars per million"
            " tokens)",
        )
    protocol = s.kafka_security_protocol
    if s.kafka_sasl_mechanism and not protocol.startswith("SASL_"):
        yield (
            f"MENDLINE_KAFKA_SASL_MECHANISM is set but the security protocol is {protocol},"
            " so it is unused",
            "set MENDLINE_KAFKA_SECURITY_PROTOCOL to SASL_SSL (or SASL_PLAINTEXT)",
        )
    if protocol.startswith("SASL_") and not (
        s.kafka_sasl_mechanism and s.kafka_sasl_username and s.kafka_sasl_password
    ):
        yield (
            f"the Kafka security protocol is {protocol} without a SASL mechanism, user name"
            " and password",
            "set MENDLINE_KAFKA_SASL_MECHANISM, MENDLINE_KAFKA_SASL_USERNAME and"
            " MENDLINE_KAFKA_SASL_PASSWORD",
        )
    if s.kafka_ssl_cafile is not None:
        if "SSL" not in protocol:
            yield (
                f"MENDLINE_KAFKA_SSL_CAFILE is set but the security protocol is {protocol},"
                " so it is unused",
                "set MENDLINE_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL",
            )
        elif not s.kafka_ssl_cafile.is_file():
            yield (
                f"MENDLINE_KAFKA_SSL_CAFILE {s.kafka_ssl_cafile} is not a file",
                "point it at the CA bundle (PEM) that signed the brokers' certificates",
            )


def _misspelt_variables(
    environ: Mapping[str, str], routes: RoutingTable | ConfigError
) -> Iterator[tuple[str, str]]:
    """MENDLINE_* variables that are no setting but look like one: a typo is silently
    ignored otherwise. Variables the routes file names for its secrets are not typos."""
    known = set(_SETTING_VARIABLES)
    if isinstance(routes, RoutingTable):
        known |= {v for r in routes.receivers.values() for s, v in r if s.endswith("_env") and v}
    for variable in sorted(environ):
        if not variable.startswith(_PREFIX) or variable in known:
            continue
        close = difflib.get_close_matches(variable, _SETTING_VARIABLES, n=1, cutoff=0.85)
        if close:
            yield f"{variable} is not a setting", f"did you mean {close[0]}?"


# -- kafka -------------------------------------------------------------------------------


_KAFKA_HINT = (
    "is the broker running? check MENDLINE_KAFKA_BOOTSTRAP (host:port of the brokers,"
    " comma-separated) and, with TLS or SASL, MENDLINE_KAFKA_SECURITY_PROTOCOL and its"
    " credentials"
)


async def _kafka(settings: Settings, timeout: float) -> _Verdict:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.conn import collect_hosts
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from mendline.ingest import kafka_client_options

    where = settings.kafka_bootstrap
    try:
        hosts = [(host, port) for host, port, _ in collect_hosts(where)]
    except ValueError as exc:
        return _fail(
            f"MENDLINE_KAFKA_BOOTSTRAP is not a list of host:port ({exc})",
            "write it as host:port, comma-separated, e.g. kafka-1:9092,kafka-2:9092",
        )
    try:
        options = kafka_client_options(settings)
    except (OSError, ssl.SSLError) as exc:
        return _fail(
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
                return _fail(
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
            return _fail(f"cannot reach Kafka at {where}: {'; '.join(refused)}", _KAFKA_HINT)
        failed = (
            f"no Kafka answer within {timeout:g} s"
            if isinstance(exc, TimeoutError)
            else "the Kafka handshake failed"
        )
        return _fail(
            f"{where} accepts connections, but {failed}",
            "check MENDLINE_KAFKA_SECURITY_PROTOCOL, MENDLINE_KAFKA_SSL_CAFILE and the SASL"
            " settings against the broker's listener (`mendline --debug doctor` shows more)",
        )
    except (KafkaError, ValueError) as exc:  # ValueError: TLS to a broker named by address
        return _fail(f"Kafka at {where} failed: {exc}", _KAFKA_HINT)
    finally:
        await client.close()
    brokers = len(cluster.brokers())
    topics = cluster.topics()
    wanted = (settings.errors_topic, settings.dlq_topic)
    found = [
        f"{topic} {_count(len(cluster.partitions_for_topic(topic) or ()), 'partition')}"
        for topic in wanted
        if topic in topics
    ]
    missing = [topic for topic in wanted if topic not in topics]
    detail = ", ".join([f"{where}: {_count(brokers, 'broker')}", *found])
    if missing:
        return _fail(
            f"{detail}; topic{'s' if len(missing) > 1 else ''} {' and '.join(missing)}"
            f" {'is' if len(missing) == 1 else 'are'} missing",
            "`mendline topics ensure` creates them (or set MENDLINE_ERRORS_TOPIC and"
            " MENDLINE_DLQ_TOPIC to the topics you use)",
        )
    return _ok(detail)


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


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


# -- database ----------------------------------------------------------------------------


async def _database(settings: Settings, timeout: float) -> _Verdict:
    import asyncpg

    from mendline.sinks import available_migrations

    url = settings.database_url.get_secret_value()
    shown = Scrubber().scrub_text(url)
    try:
        conn = await asyncpg.connect(url, timeout=timeout, command_timeout=timeout)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        return _fail(
            f"PostgreSQL at {shown} refused the login: {exc}",
            "check the user and password in MENDLINE_DATABASE_URL",
        )
    except asyncpg.InvalidCatalogNameError as exc:
        return _fail(
            f"PostgreSQL at {shown}: {exc}",
            "create the database (createdb NAME), or fix its name in MENDLINE_DATABASE_URL",
        )
    except TimeoutError:
        return _fail(
            f"PostgreSQL at {shown} did not answer within {timeout:g} s",
            "something accepted the connection but did not answer as PostgreSQL: check the"
            " host and port in MENDLINE_DATABASE_URL",
        )
    except OSError as exc:
        return _fail(
            f"cannot reach PostgreSQL at {shown}: {exc}",
            "is PostgreSQL running? check the host and port in MENDLINE_DATABASE_URL",
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        return _fail(
            f"cannot connect to PostgreSQL at {shown}: {type(exc).__name__}: {exc}",
            "check MENDLINE_DATABASE_URL (postgresql://user:password@host:5432/database)",
        )
    try:
        version = conn.get_server_version()
        applied: list[str] = []
        if await conn.fetchval("SELECT to_regclass('mendline.schema_migrations') IS NOT NULL"):
            rows = await conn.fetch("SELECT version FROM mendline.schema_migrations")
            applied = sorted(row["version"] for row in rows)
    finally:
        await conn.close(timeout=timeout)
    shipped = [name for name, _ in available_migrations()]
    server = f"{shown}: PostgreSQL {version.major}.{version.minor}"
    pending = [name for name in shipped if name not in applied]
    unknown = [name for name in applied if name not in shipped]
    if not applied:
        return _fail(f"{server}, but mendline's tables are not there yet", _MIGRATE_HINT)
    if pending:
        return _fail(
            f"{server}, {len(pending)} of {len(shipped)} migrations not applied:"
            f" {', '.join(pending)}",
            _MIGRATE_HINT,
        )
    if unknown:
        return _warn(
            f"{server}, migrated by a newer mendline ({', '.join(unknown)} unknown here)",
            "upgrade this mendline to the version the other processes run",
        )
    return _ok(f"{server}, all {len(shipped)} migrations applied (newest {shipped[-1]})")


# -- llm ---------------------------------------------------------------------------------


async def _llm(settings: Settings, timeout: float) -> _Verdict:
    import httpx

    from mendline.analyzers.llm import endpoint_auth

    base = settings.llm_base_url
    if base is None:
        return _Verdict("skip", "MENDLINE_LLM_BASE_URL is unset: the heuristic analyser, offline")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    headers, params = endpoint_auth(key, settings.llm_api_key_header, settings.llm_api_version)
    shown = Scrubber().scrub_text(base.rstrip("/"))
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
        return _fail(f"{shown}: no answer within {timeout:g} s", reach)
    except httpx.TransportError as exc:
        return _fail(f"cannot reach {shown}: {type(exc).__name__}: {exc}", reach)
    status = response.status_code
    if status in (401, 403):
        return _fail(
            f"{shown}/models answered HTTP {status}: the key is refused", _key_hint(key, settings)
        )
    if status == 404:
        return _warn(
            f"{shown}/models is not there (HTTP 404), so the model could not be looked up",
            "check that MENDLINE_LLM_BASE_URL is the API root (…/v1); Azure OpenAI deployments"
            " list no models there",
        )
    if status >= 400:
        verdict = _warn if status == 429 else _fail
        return verdict(
            f"{shown}/models answered HTTP {status}: {response.text[:200].strip()}",
            "check MENDLINE_LLM_BASE_URL; the endpoint's own logs say more",
        )
    models = _model_ids(response)
    model = settings.llm_model
    if models is None:
        return _warn(
            f"{shown}/models answered without a list of models, so {model} could not be looked up",
            "check that MENDLINE_LLM_BASE_URL is an OpenAI-compatible API root (…/v1)",
        )
    if model not in models:
        listed = ", ".join(models[:5]) + (", …" if len(models) > 5 else "")
        return _warn(
            f"{shown}: model {model} is not among the {len(models)} listed ({listed or 'none'})",
            "set MENDLINE_LLM_MODEL to a model the endpoint serves (with Azure, the deployment)",
        )
    return _ok(f"{shown}: model {model} is listed ({_count(len(models), 'model')})")


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


# -- routes and receivers ----------------------------------------------------------------


async def _routes(routes: RoutingTable | ConfigError, environ: Mapping[str, str]) -> _Verdict:
    if isinstance(routes, ConfigError):
        return _fail(
            str(routes),
            "fix the routing file (MENDLINE_ROUTES_FILE); `mendline routes check` validates it",
        )
    detail = (
        f"{routes.source}: {_count(len(routes.routes), 'route')},"
        f" {_count(len(routes.receivers), 'receiver')}"
    )
    missing = check_secrets(routes, environ)
    if missing:
        return _fail(
            f"{detail}; {'; '.join(missing)}",
            "set these variables where `mendline alert` runs: it does not start without them",
        )
    used = {name for route in routes.routes for name in route.receivers}
    unused = [name for name in routes.receivers if name not in used]
    if unused:
        return _warn(
            f"{detail}; no route sends to {', '.join(unused)}",
            "name them in a route's receivers, or remove them",
        )
    return _ok(detail)


async def _receiver(
    name: str, receiver: Receiver, environ: Mapping[str, str], timeout: float
) -> _Verdict:
    missing = [
        variable
        for setting, variable in receiver
        if setting.endswith("_env") and isinstance(variable, str) and not environ.get(variable)
    ]
    if missing:
        return _Verdict("skip", f"{receiver.type}: not checked, {', '.join(missing)} unset")
    if isinstance(receiver, SlackReceiver):
        if receiver.bot_token_env is not None:
            return await _slack_bot(receiver, environ[receiver.bot_token_env], timeout)
        if receiver.webhook_url_env is not None:
            return _slack_webhook(receiver.webhook_url_env, environ[receiver.webhook_url_env])
        return _fail(
            "slack: neither webhook_url_env nor bot_token_env is set",
            f"name the variable that holds the webhook URL: webhook_url_env in [receivers.{name}]",
        )
    if isinstance(receiver, EmailReceiver):
        return await _email(receiver, environ, timeout)
    return await _pagerduty(receiver, environ[receiver.routing_key_env], timeout)


async def _slack_bot(receiver: SlackReceiver, token: str, timeout: float) -> _Verdict:
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    variable = receiver.bot_token_env
    if not receiver.channel:
        return _fail(
            "slack bot: no channel to post to",
            'add channel = "#alerts" (a name or an id) to the receiver',
        )
    host = urlsplit(receiver.api_url).netloc or receiver.api_url
    client = AsyncWebClient(
        token=token, base_url=receiver.api_url, timeout=math.ceil(timeout), retry_handlers=[]
    )
    try:
        async with asyncio.timeout(timeout):
            answer = await client.auth_test()
    except SlackApiError as exc:
        data = getattr(exc.response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        status = getattr(exc.response, "status_code", None) or getattr(exc.response, "status", "")
        if error in (
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "token_expired",
        ):
            return _fail(
                f"slack bot: auth.test at {host} refused the token in {variable} ({error})",
                f"set {variable} to the bot token (xoxb-...) of the Slack app in the workspace",
            )
        return _fail(
            f"slack bot: auth.test at {host} answered HTTP {status}: {error or 'not Slack JSON'}",
            "check the receiver's api_url (default https://slack.com/api/)",
        )
    except TimeoutError:
        return _fail(
            f"slack bot: {host} did not answer within {timeout:g} s",
            "check the receiver's api_url and the network to Slack (a proxy?)",
        )
    except aiohttp.ClientError as exc:
        return _fail(
            f"slack bot: cannot reach {host} ({type(exc).__name__})",
            "check the receiver's api_url and the network to Slack (a proxy?)",
        )
    who = answer.get("user") or answer.get("user_id") or "?"
    team = answer.get("team") or answer.get("team_id") or "?"
    return _ok(
        f"slack bot: auth.test ok at {host}, bot {who} in {team}, posts to {receiver.channel}"
    )


def _slack_webhook(variable: str, url: str) -> _Verdict:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail(
            f"slack webhook: {variable} does not hold a URL",
            f"set {variable} to the incoming-webhook URL Slack gave"
            " (https://hooks.slack.com/services/...)",
        )
    return _ok(
        f"slack webhook: {variable} holds a URL to {parts.hostname};"
        " not sent to; a webhook cannot be checked without posting"
    )


async def _email(receiver: EmailReceiver, environ: Mapping[str, str], timeout: float) -> _Verdict:
    import aiosmtplib

    user_var, password_var = receiver.username_env, receiver.password_env
    if (user_var is None) != (password_var is None):
        return _fail(
            "email: a login needs both username_env and password_env",
            "name both variables in the receiver, or neither",
        )
    where = f"{receiver.smtp_host}:{receiver.smtp_port}"
    smtp = aiosmtplib.SMTP(
        hostname=receiver.smtp_host,
        port=receiver.smtp_port,
        use_tls=receiver.security == "tls",
        start_tls=receiver.security == "starttls",
        timeout=timeout,
    )
    reach = f"check smtp_host and smtp_port ({where}) and that the SMTP server is up"
    try:
        async with asyncio.timeout(timeout):
            await smtp.connect()
            await smtp.ehlo()
            if user_var is not None and password_var is not None:
                await smtp.login(environ[user_var], environ[password_var])
            await smtp.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return _fail(
            f"email: {where} refused the login ({exc.code} {exc.message})",
            f"check {user_var} and {password_var}",
        )
    except (aiosmtplib.SMTPTimeoutError, TimeoutError):
        return _fail(
            f"email: {where} did not answer within {timeout:g} s",
            f'{reach}; a port that speaks TLS from the first byte (465) needs security = "tls"',
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        return _smtp_failure(exc, where, reach)
    finally:
        if smtp.is_connected:
            smtp.close()
    steps = {"starttls": ["EHLO", "STARTTLS"], "tls": ["TLS", "EHLO"], "none": ["EHLO"]}
    done = steps[receiver.security] + (["login"] if user_var else [])
    said = ", ".join(done[:-1]) + f" and {done[-1]}" if len(done) > 1 else done[0]
    return _ok(f"email: {where}: {said} ok; no mail sent")


def _smtp_failure(exc: Exception, where: str, reach: str) -> _Verdict:
    import aiosmtplib

    tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        return _fail(
            f"email: the certificate of {where} is not trusted: {tls_error.verify_message}",
            "add the CA that signed it to this system's trust store, or fix smtp_host to the"
            " name the certificate is for",
        )
    if isinstance(tls_error, ssl.SSLError):
        return _fail(
            f"email: TLS with {where} failed: {tls_error}",
            'security = "tls" is for a port that speaks TLS from the first byte (465); use'
            ' "starttls" (587) or "none" for the others',
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _fail(f"email: {where} answered {exc.code} {exc.message}", reach)
    if isinstance(exc, OSError):  # SMTPConnectError too: the OSError under it says why
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        return _fail(f"email: cannot reach the SMTP server at {where}: {cause}", reach)
    return _fail(  # the server lacks what the receiver asks for: STARTTLS, AUTH
        f"email: {where}: {exc}",
        "set the receiver's security to what the server offers: starttls (usually port 587),"
        " tls (465) or none; a login usually needs one of the first two",
    )


async def _pagerduty(receiver: PagerDutyReceiver, key: str, timeout: float) -> _Verdict:
    variable = receiver.routing_key_env
    if len(key.strip()) != 32:
        return _fail(
            f"pagerduty: the routing key in {variable} is {len(key.strip())} characters, not 32",
            f"set {variable} to the Integration Key of an Events API v2 integration",
        )
    parts = urlsplit(receiver.events_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail(
            f"pagerduty: events_url {receiver.events_url} is not an http(s) URL",
            "leave events_url out for https://events.pagerduty.com/v2/enqueue",
        )
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    reach = "check the receiver's events_url and the network to PagerDuty (a proxy, a firewall?)"
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return _fail(f"pagerduty: {host} does not resolve: {exc.strerror}", reach)
    except TimeoutError:
        return _fail(f"pagerduty: {host} did not resolve within {timeout:g} s", reach)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
    except TimeoutError:
        return _fail(f"pagerduty: {host}:{port} did not accept within {timeout:g} s", reach)
    except OSError as exc:
        return _fail(f"pagerduty: {host}:{port} refuses connections: {exc.strerror or exc}", reach)
    return _ok(
        f"pagerduty: routing key set (32 characters), {host}:{port} accepts connections;"
        " no event sent"
    )
