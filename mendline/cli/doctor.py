"""``mendline doctor``: checks the settings, broker, database, LLM endpoint and alert channels.

Every check gives one result, ``ok``, ``warn``, ``fail`` or ``skip``, with a sentence saying
what it found and, when not ok, a hint saying how to fix it. Checks run side by side, each
within a few seconds, and never send anything people would see: no Kafka record, no alert,
no email; a Slack webhook is not posted to. Secrets never reach the output. The checks that
ask a server are in ``_doctor_checks`` and ``_doctor_receivers``; here are the runner, the
results, their output and the settings check.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mendline.cli._doctor_checks import (
    Status,
    Verdict,
    check_database,
    check_kafka,
    check_llm,
    check_routes,
    database_on_this_machine,
    database_role_exposure,
    fail,
    local_role_exposure,
    ok,
    warn,
)
from mendline.cli._doctor_receivers import check_receiver
from mendline.cli._options import AS_JSON, Commands
from mendline.cli.output import colour_for, counted, print_json, print_traceback, styled
from mendline.schemas.alert import secret_variables
from mendline.schemas.errors import ConfigError
from mendline.schemas.redaction import redact_url, url_secrets
from mendline.schemas.settings import Settings
from mendline.sinks.routing import RoutingTable, load_routes

__all__ = [
    "TIMEOUT",
    "Check",
    "database_on_this_machine",
    "database_role_exposure",
    "doctor",
    "doctor_without_settings",
    "local_role_exposure",
    "misspelt_variables",
    "register",
    "run_checks",
]

#: Seconds each check may take; a server that has not answered by then is reported.
TIMEOUT = 5.0

_PREFIX = str(Settings.model_config.get("env_prefix", ""))
_SETTING_VARIABLES = frozenset(f"{_PREFIX}{name.upper()}" for name in Settings.model_fields)
_STYLES: dict[Status, str] = {"ok": "green", "warn": "warning", "fail": "critical", "skip": "dim"}
_SAID: dict[Status, str] = {"ok": "ok", "warn": "warned", "fail": "failed", "skip": "skipped"}


@dataclass(frozen=True)
class Check:
    """The result of one check: what was found and, when not ok, how to fix it."""

    name: str
    status: Status
    detail: str
    hint: str | None = None


def register(commands: Commands) -> None:
    """Add ``doctor`` to the top-level ``commands``: it runs with settings that do not load,
    too, and says so as its first check."""
    command = commands.add_parser(
        "doctor",
        parents=[AS_JSON],
        help="check the settings, broker, database, LLM endpoint and alert channels",
    )
    # Its settings check names misspelt variables: not said again before it runs.
    command.set_defaults(
        run=doctor, run_without_settings=doctor_without_settings, warn_of_variables=False
    )


def doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check, print the results (``args.json``: one JSON object); 1 if any failed."""
    return _report(
        args, asyncio.run(run_checks(settings, config_file=args.config, debug=args.debug))
    )


def doctor_without_settings(args: argparse.Namespace, error: ConfigError) -> int:
    """``mendline doctor`` when the settings do not load: that is the failed first check,
    and the others, which need the settings, are not run. Returns 1."""
    skipped = "not checked: the settings do not load"
    # A validator's message may quote the value it refused, a URL with its password.
    checks = [Check("settings", "fail", redact_url(str(error)), error.hint)]
    checks += [Check(name, "skip", skipped) for name in ("kafka", "database", "llm", "routes")]
    return _report(args, checks)


def _report(args: argparse.Namespace, checks: list[Check]) -> int:
    failed = any(check.status == "fail" for check in checks)
    if args.json:
        print_json({"ok": not failed, "checks": [asdict(check) for check in checks]})
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
    planned: list[tuple[str, Callable[[], Awaitable[Verdict]]]] = [
        ("settings", functools.partial(_settings, settings, config_file, environ, routes)),
        ("kafka", functools.partial(check_kafka, settings, timeout)),
        ("database", functools.partial(check_database, settings, timeout)),
        ("llm", functools.partial(check_llm, settings, timeout)),
        (
            "routes",
            functools.partial(
                check_routes, routes, environ, settings.llm_base_url, settings.profile
            ),
        ),
    ]
    if isinstance(routes, RoutingTable):
        planned += [
            (
                f"receiver:{name}",
                functools.partial(check_receiver, name, receiver, environ, timeout),
            )
            for name, receiver in routes.receivers.items()
        ]
    checks = await asyncio.gather(
        *(_guarded(name, check, timeout, debug) for name, check in planned)
    )
    secrets = list(_secrets(settings, routes, environ))
    return [
        Check(
            c.name,
            c.status,
            redact_url(c.detail, secrets),
            redact_url(c.hint, secrets) if c.hint else None,
        )
        for c in checks
    ]


async def _guarded(
    name: str, check: Callable[[], Awaitable[Verdict]], timeout: float, debug: bool
) -> Check:
    """One check; an exception it did not foresee, or a hang, is its failure, not doctor's."""
    try:
        # Each check has its own deadlines inside (a second look may follow a first that
        # timed out); this one is the backstop.
        async with asyncio.timeout(2 * timeout):
            verdict = await check()
    except TimeoutError:
        verdict = fail(
            f"no result within {2 * timeout:g} s",
            "a server accepted the connection but never answered; check it is the right one",
        )
    except Exception as exc:
        if debug:
            print_traceback(exc)
        verdict = fail(
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
        status = styled(check.status, _STYLES[check.status], colour)
        pad = " " * (6 - len(check.status))
        first, *more = check.detail.splitlines() or [""]
        lines.append(f"  {status}{pad}{check.name:{width}}{first}")
        lines += [f"  {'':6}{'':{width}}{line}" for line in more]
        if check.hint and check.status != "ok":
            lines.append(f"        hint: {check.hint}")
    lines.append(_summary(checks))
    return "\n".join(lines)


def _summary(checks: list[Check]) -> str:
    counts = {status: sum(c.status == status for c in checks) for status in _SAID}
    shown = ", ".join(f"{counts[s]} {_SAID[s]}" for s in _SAID if counts[s])
    if counts["fail"]:
        verdict = "fix what failed (each has a hint) and run `mendline doctor` again"
    elif counts["warn"]:
        verdict = "nothing failed; the warnings may still matter"
    else:
        verdict = "all good"
    return f"{len(checks)} checks: {shown}; {verdict}"


def _secrets(
    settings: Settings, routes: RoutingTable | ConfigError, environ: Mapping[str, str]
) -> Iterator[str]:
    """The values a check may repeat that are secret, so that they are filtered wherever
    they show (a driver's message may quote the password without its URL)."""
    yield from url_secrets(settings.database_url.get_secret_value())
    yield from url_secrets(settings.kafka_bootstrap)
    yield from url_secrets(settings.llm_base_url or "")
    for secret in (settings.llm_api_key, settings.kafka_sasl_password, settings.token):
        if secret is not None:
            yield secret.get_secret_value()
    if isinstance(routes, RoutingTable):
        for receiver in routes.receivers.values():
            for setting, variable in secret_variables(receiver):
                # A user name is no secret, and filtering a short one would garble words.
                if setting != "username_env":
                    yield environ.get(variable, "")


# -- settings ----------------------------------------------------------------------------


def _settings_source(config_file: Path | None, environ: Mapping[str, str]) -> str:
    read = counted(sum(name in environ for name in _SETTING_VARIABLES), f"{_PREFIX}* variable")
    if config_file is not None:
        return f"loaded from {config_file} and {read} (the environment wins)"
    return f"loaded from {read}, no --config file; the rest are defaults"


async def _settings(
    settings: Settings,
    config_file: Path | None,
    environ: Mapping[str, str],
    routes: RoutingTable | ConfigError,
) -> Verdict:
    # Imported here: the Kafka client is not loaded for every command's help.
    from mendline.ingest import app_setting_problems
    from mendline.ingest.consumer import producer_check

    detail = _settings_source(config_file, environ)
    try:
        producer_check(settings)  # the producer keys file, read when the checks are on
    except ConfigError as exc:
        return fail(f"{detail}; but {exc}", exc.hint or "fix MENDLINE_PRODUCER_KEYS_FILE")
    unusable = app_setting_problems(settings)  # what the app's processor would refuse
    if unusable:
        return fail(
            f"{detail}; but {'; '.join(str(problem) for problem in unusable)}",
            "fix these: an app with them ships no error events (or uses the default)",
        )
    odd = [*_odd_settings(settings), *misspelt_variables(environ, routes)]
    if not odd:
        return ok(detail)
    return warn(
        f"{detail}; but {'; '.join(problem for problem, _ in odd)}",
        "; ".join(hint for _, hint in odd),
    )


def _odd_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """Combinations that load but cannot be what was meant: (what is odd, what to do)."""
    exposure = local_role_exposure(s.local_role, s.database_url.get_secret_value())
    if exposure is not None:
        yield exposure
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


def misspelt_variables(
    environ: Mapping[str, str], routes: RoutingTable | ConfigError
) -> Iterator[tuple[str, str]]:
    """MENDLINE_* variables that are no setting but look like one (a typo is silently
    ignored otherwise), each as what is wrong and the closest setting. Variables the routes
    file names for its secrets are not typos."""
    known = set(_SETTING_VARIABLES)
    if isinstance(routes, RoutingTable):
        known |= {v for r in routes.receivers.values() for _, v in secret_variables(r)}
    for variable in sorted(environ):
        if not variable.startswith(_PREFIX) or variable in known:
            continue
        close = difflib.get_close_matches(variable, _SETTING_VARIABLES, n=1, cutoff=0.85)
        if close:
            yield f"{variable} is not a setting", f"did you mean {close[0]}?"
