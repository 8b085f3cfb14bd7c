"""Reading the routes file into a RoutingTable, and matching labels against its routes."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from mendline.analyzers.policy import LABEL_NAMES, TAG_PREFIX, LabelPattern
from mendline.schemas.alert import (
    ALERT_SEVERITIES,
    AlertKind,
    EmailReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
    secret_variables,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.tomlfile import (
    ENV_NAME,
    KeyPath,
    Problems,
    either,
    model_error,
    parse_document,
    parse_duration,
    read_text,
    toml_type,
    unknown_key,
)

__all__ = [
    "ALERT_KINDS",
    "Route",
    "RoutingTable",
    "check_secrets",
    "describe",
    "disabled_receivers",
    "load_routes",
    "parse_duration",
]

ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
_CHECKED_VALUES: dict[str, tuple[str, ...]] = {"severity": ALERT_SEVERITIES, "kind": ALERT_KINDS}

_SHIPPED_NAME = "routes.default.toml"
_SHIPPED_SOURCE = "the shipped default"
_TOP_KEYS = ("defaults", "receivers", "routes")
# Alertmanager's defaults; updates are on, because a finding arriving late is the point.
_DEFAULT_TIMING: dict[str, Any] = {
    "group_wait": 30.0,
    "group_interval": 300.0,
    "repeat_interval": 4 * 3600.0,
    "send_updates": True,
}
_ROUTE_KEYS = (
    "match",
    "match_re",
    "severity_at_least",
    "receivers",
    "continue",
    *_DEFAULT_TIMING,
)

_RECEIVER_ADAPTER: TypeAdapter[Receiver] = TypeAdapter(Receiver)
_RECEIVER_MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["type"].annotation)[0]: model
    for model in get_args(get_args(Receiver)[0])
}
# A value someone may paste in place of the variable that should hold it: url for url_env.
_SECRET_KEYS = frozenset(
    name.removesuffix("_env")
    for model in _RECEIVER_MODELS.values()
    for name in model.model_fields
    if name.endswith("_env")
)

# Settings that some receiver takes as a plain value beside its _env twin (a webhook's url).
_PLAIN_KEYS = (
    frozenset(name for model in _RECEIVER_MODELS.values() for name in model.model_fields)
    & _SECRET_KEYS
)
# Headers that carry credentials: their values go in headers_env, never in the file.
_CREDENTIAL_HEADER = re.compile(r"(?i).*(authorization|token|secret|key|cookie|password).*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


@dataclass(frozen=True)
class Route:
    """One ``[[routes]]`` table: the labels it matches, its receivers and their timing.

    ``index`` is its position among the routes (from 0), ``line`` the line of its header;
    durations are in seconds.
    """

    index: int
    line: int
    match: Mapping[str, frozenset[str]] = field(hash=False)
    match_re: Mapping[str, LabelPattern] = field(hash=False)
    receivers: tuple[str, ...]
    continue_: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_updates: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every ``match`` label has one of its values; every ``match_re`` one matches whole."""
        return all(labels.get(name, "") in values for name, values in self.match.items()) and all(
            pattern.fullmatch(labels.get(name, "")) for name, pattern in self.match_re.items()
        )

    def conditions(self) -> str:
        """What it matches, as people write it: ``severity=critical, service~^api-.*``."""
        parts = [
            f"{name}={next(iter(values))}"
            if len(values) == 1
            else f"{name} in ({', '.join(_ordered(name, values))})"
            for name, values in self.match.items()
        ]
        parts += [f"{name}~{pattern.pattern}" for name, pattern in self.match_re.items()]
        return ", ".join(parts) or "every alert"


@dataclass(frozen=True)
class RoutingTable:
    """The routes and receivers of one file; ``source`` is its path or "the shipped default"."""

    routes: tuple[Route, ...]
    receivers: Mapping[str, Receiver] = field(hash=False)
    source: str

    def matching(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes the walk matches, in order: up to the first without ``continue``."""
        found: list[Route] = []
        for route in self.routes:
            if route.matches(labels):
                found.append(route)
                if not route.continue_:
                    break
        return found

    def route(self, labels: Mapping[str, str]) -> list[tuple[Route, str]]:
        """(route, receiver) pairs to send to, in order, each receiver once (its first route
        wins); empty when no route matches, which the caller counts as unrouted."""
        pairs: list[tuple[Route, str]] = []
        seen: set[str] = set()
        for route in self.matching(labels):
            for name in route.receivers:
                if name not in seen:
                    seen.add(name)
                    pairs.append((route, name))
        return pairs


def load_routes(path: Path | None) -> RoutingTable:
    """Read and validate a routes file; ``None`` reads the shipped default.

    Raises ConfigError naming every problem of the file, one line each with its line number.
    """
    if path is None:
        text = resources.files("mendline.sinks.routing").joinpath(_SHIPPED_NAME).read_text("utf-8")
        return _parse_routes(text, _SHIPPED_NAME, _SHIPPED_SOURCE)
    text = read_text(path, "the routes file")
    return _parse_routes(text, str(path), str(path))


def disabled_receivers(table: RoutingTable, environ: Mapping[str, str]) -> dict[str, str]:
    """The receivers a secret of which is unset or empty, each with why it is disabled
    (``receiver team-slack disabled: MENDLINE_SLACK_WEBHOOK_URL is unset``): in the
    development profile the alert worker records their alerts as suppressed with that."""
    disabled: dict[str, str] = {}
    for name, receiver in table.receivers.items():
        unset = [
            variable for _, variable in secret_variables(receiver) if not environ.get(variable)
        ]
        if unset:
            verb = "is" if len(unset) == 1 else "are"
            disabled[name] = f"receiver {name} disabled: {' and '.join(unset)} {verb} unset"
    return disabled


def check_secrets(table: RoutingTable, environ: Mapping[str, str]) -> list[str]:
    """The environment variables the receivers name that are unset or empty, one message each.

    Routing never needs them; the alert worker checks them when it starts.
    """
    problems: list[str] = []
    for name, receiver in table.receivers.items():
        for setting, variable in secret_variables(receiver):
            if not environ.get(variable):
                state = "is empty" if variable in environ else "is not set"
                problems.append(
                    f'receiver "{name}" ({receiver.type}): {variable} ({setting}) {state}'
                )
    return problems


def describe(table: RoutingTable, labels: Mapping[str, str]) -> str:
    """Where an alert with ``labels`` goes, for people: the routes it matched (with their
    lines), the receivers reached with their channel and the timing in effect."""
    shown = ", ".join(f"{name}={value}" for name, value in labels.items()) or "(none)"
    lines = [f"routes: {table.source}", f"labels: {shown}"]
    matched = table.matching(labels)
    if not matched:
        lines.append("no route matches: this alert would not be sent")
        return "\n".join(lines)
    for route in matched:
        also = "; continue" if route.continue_ else ""
        lines.append(
            f"matched routes[{route.index}] (line {route.line}): {route.conditions()}{also}"
        )
    pairs = table.route(labels)
    if not pairs:
        lines.append("the matched routes name no receivers: this alert would not be sent")
        return "\n".join(lines)
    lines.append("sends to:")
    name_width = max(len(name) for _, name in pairs)
    type_width = max(len(table.receivers[name].type) for _, name in pairs)
    for route, name in pairs:
        updates = "updates" if route.send_updates else "no updates"
        lines.append(
            f"  {name:{name_width}}  {table.receivers[name].type:{type_width}}"
            f"  group_wait {format_duration(route.group_wait)},"
            f" group_interval {format_duration(route.group_interval)},"
            f" repeat_interval {format_duration(route.repeat_interval)}, {updates}"
            f"  (routes[{route.index}], line {route.line})"
        )
    return "\n".join(lines)


# -- reading the file ---------------------------------------------------------------------


def _parse_routes(text: str, name: str, source: str) -> RoutingTable:
    document, problems = parse_document(text, name, _TOP_KEYS)
    timing = _read_defaults(document.get("defaults", {}), problems)
    receivers_table = document.get("receivers", {})
    receivers = _read_receivers(receivers_table, problems)
    # A receiver with bad settings is still defined: its routes are not wrong too.
    defined = tuple(receivers_table) if isinstance(receivers_table, dict) else ()
    routes = _read_routes(document.get("routes"), timing, defined, problems)
    problems.raise_any()
    return RoutingTable(tuple(routes), MappingProxyType(receivers), source)


def _read_defaults(value: object, problems: Problems) -> dict[str, Any]:
    timing = dict(_DEFAULT_TIMING)
    if not isinstance(value, dict):
        problems.add(("defaults",), f"must be a table ([defaults]), not {toml_type(value)}")
        return timing
    for key, setting in value.items():
        if key in _DEFAULT_TIMING:
            timing[key] = _read_timing(("defaults", key), setting, problems, timing[key])
        else:
            problems.add(("defaults", key), unknown_key(key, tuple(_DEFAULT_TIMING)))
    return timing


def _read_timing(path: KeyPath, value: object, problems: Problems, fallback: Any) -> Any:
    key = path[-1]
    if key == "send_updates":
        return _read_bool(path, value, problems, fallback)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return fallback
    if seconds == 0 and key != "group_wait":  # zero would resend on every poll
        problems.add(path, f'must be more than 0s, as in Alertmanager (say {key} = "1m")')
    return seconds


def _read_bool(path: KeyPath, value: object, problems: Problems, fallback: bool) -> bool:
    if isinstance(value, bool):
        return value
    problems.add(path, f"must be true or false, not {toml_type(value)}")
    return fallback


def _read_receivers(value: object, problems: Problems) -> dict[str, Receiver]:
    if not isinstance(value, dict):
        problems.add(("receivers",), "must be tables such as [receivers.team-slack]")
        return {}
    receivers: dict[str, Receiver] = {}
    for name, settings in value.items():
        if not isinstance(settings, dict):
            problems.add(
                ("receivers", name),
                f"must be a table ([receivers.{name}] with type = ...), not {toml_type(settings)}",
            )
            continue
        receiver = _read_receiver(("receivers", name), settings, problems)
        if receiver is not None:
            receivers[name] = receiver
    return receivers


def _read_receiver(path: KeyPath, settings: dict[str, Any], problems: Problems) -> Receiver | None:
    valid = True
    model = _RECEIVER_MODELS.get(str(settings.get("type")))
    # A secret pasted in place of its variable, for a type that reads that variable.
    pasted = sorted(
        key
        for key in _SECRET_KEYS & settings.keys()
        if (
            key not in _PLAIN_KEYS
            if model is None
            else f"{key}_env" in model.model_fields and key not in model.model_fields
        )
    )
    checked = {key: value for key, value in settings.items() if key not in pasted}
    for key in pasted:
        problems.add(
            (*path, key),
            f'secrets come from environment variables: set {key}_env = "NAME", put the value'
            f" in the variable NAME and remove {key} from the file",
        )
        checked.setdefault(f"{key}_env", "REPORTED")  # not "missing" as well
        valid = False
    for key, variable in settings.items():
        # The value itself pasted where its variable's name belongs: do not echo it.
        if key.endswith("_env") and isinstance(variable, str) and not ENV_NAME.fullmatch(variable):
            problems.add(
                (*path, key),
                "is not an environment variable name (letters, digits and _): secrets come"
                " from environment variables, so put the value in one and name it here",
            )
            valid = False
    named = settings.get("headers_env")
    for header, variable in named.items() if isinstance(named, dict) else ():
        if isinstance(variable, str) and not ENV_NAME.fullmatch(variable):
            problems.add(
                (*path, "headers_env", header),
                "is not an environment variable name: put the header's value in one and"
                " name it here",
            )
            valid = False
    try:
        receiver = _RECEIVER_ADAPTER.validate_python(checked)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where, message = model_error(
                error, "receiver", "type", checked.get("type"), _RECEIVER_MODELS
            )
            problems.add((*path, *where), message)
        return None
    for where, message in _receiver_rules(receiver):
        problems.add((*path, *where), message)
        valid = False
    return receiver if valid else None


def _receiver_rules(receiver: Receiver) -> list[tuple[KeyPath, str]]:
    """What the models allow but no channel could use."""
    if isinstance(receiver, SlackReceiver):
        if receiver.bot_token_env is not None and receiver.channel is None:
            return [(("channel",), 'missing: bot_token_env needs a channel = "#name" to post to')]
        if receiver.webhook_url_env is None and receiver.bot_token_env is None:
            return [
                (("type",), "a slack receiver needs webhook_url_env, or bot_token_env and channel")
            ]
    if isinstance(receiver, WebhookReceiver):
        return _webhook_rules(receiver)
    if isinstance(receiver, EmailReceiver) and (receiver.username_env is None) != (
        receiver.password_env is None
    ):
        missing = "password_env" if receiver.password_env is None else "username_env"
        return [((missing,), "missing: SMTP login needs both username_env and password_env")]
    return []


def _webhook_rules(receiver: WebhookReceiver) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    if (receiver.url is None) == (receiver.url_env is None):
        problems.append((("url",), "a webhook needs url or url_env (one of them)"))
    elif receiver.url is not None:
        parts = urlsplit(receiver.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append((("url",), "must be an http:// or https:// URL"))
    for table in ("headers", "headers_env"):
        for header in getattr(receiver, table):
            if not _HEADER_NAME.fullmatch(header):
                problems.append(((table, header), "is not an HTTP header name"))
    for header in receiver.headers:
        if _CREDENTIAL_HEADER.fullmatch(header):
            problems.append(
                (
                    ("headers", header),
                    "looks like a credential: put its value in an environment variable and"
                    f' name it in headers_env ("{header}" = "NAME")',
                )
            )
    return problems


def _read_routes(
    value: object, timing: dict[str, Any], defined: tuple[str, ...], problems: Problems
) -> list[Route]:
    if value is None or value == []:
        problems.add(("routes",), "no routes: add at least one [[routes]] with receivers")
        return []
    if not isinstance(value, list) or not all(isinstance(table, dict) for table in value):
        problems.add(("routes",), "must be [[routes]] tables, each with match and receivers")
        return []
    return [
        _read_route(index, table, timing, defined, problems) for index, table in enumerate(value)
    ]


def _read_route(
    index: int,
    table: dict[str, Any],
    defaults: dict[str, Any],
    defined: tuple[str, ...],
    problems: Problems,
) -> Route:
    path: KeyPath = ("routes", index)
    for key in table:
        if key not in _ROUTE_KEYS:
            problems.add((*path, key), unknown_key(key, _ROUTE_KEYS))
    match = _read_match((*path, "match"), table.get("match", {}), problems)
    if "severity_at_least" in table:
        at_least = _read_severity_at_least((*path, "severity_at_least"), table, problems)
        if at_least is not None:
            match["severity"] = at_least
    timing = {
        key: _read_timing((*path, key), table[key], problems, fallback)
        if key in table
        else fallback
        for key, fallback in defaults.items()
    }
    return Route(
        index=index,
        line=problems.lines.line_of(path),
        match=MappingProxyType(match),
        match_re=MappingProxyType(_read_match_re((*path, "match_re"), table, problems)),
        receivers=_read_route_receivers((*path, "receivers"), table, defined, problems),
        continue_=_read_bool((*path, "continue"), table.get("continue", False), problems, False),
        **timing,
    )


def _read_match(path: KeyPath, value: object, problems: Problems) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict):
        problems.add(
            path, f'must be a table such as {{ severity = "critical" }}, not {toml_type(value)}'
        )
        return {}
    match: dict[str, frozenset[str]] = {}
    for label, wanted in value.items():
        where = (*path, label)
        if not _check_label(where, label, problems):
            continue
        values = [wanted] if isinstance(wanted, str) else wanted
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            problems.add(
                where, f"must be a string or a non-empty list of strings, not {toml_type(wanted)}"
            )
            continue
        allowed = _CHECKED_VALUES.get(label)
        bad = [v for v in values if allowed is not None and v not in allowed]
        for v in bad:
            problems.add(where, f"{json.dumps(v)} is not a {label} (use {either(allowed or ())})")
        if not bad:
            match[label] = frozenset(values)
    return match


def _read_severity_at_least(
    path: KeyPath, table: dict[str, Any], problems: Problems
) -> frozenset[str] | None:
    value = table["severity_at_least"]
    if isinstance(table.get("match"), dict) and "severity" in table["match"]:
        problems.add(path, "give either severity_at_least or match.severity, not both")
        return None
    if value not in ALERT_SEVERITIES:
        shown = json.dumps(value) if isinstance(value, str) else toml_type(value)
        problems.add(path, f"{shown} is not a severity (use {either(ALERT_SEVERITIES)})")
        return None
    return frozenset(ALERT_SEVERITIES[ALERT_SEVERITIES.index(value) :])


def _read_match_re(
    path: KeyPath, table: dict[str, Any], problems: Problems
) -> dict[str, LabelPattern]:
    value = table.get("match_re", {})
    if not isinstance(value, dict):
        problems.add(
            path, f'must be a table such as {{ service = "^api-.*" }}, not {toml_type(value)}'
        )
        return {}
    patterns: dict[str, LabelPattern] = {}
    for label, pattern in value.items():
        where = (*path, label)
        if not _check_label(where, label, problems):
            continue
        if not isinstance(pattern, str):
            problems.add(where, f"must be a regular expression string, not {toml_type(pattern)}")
            continue
        try:
            patterns[label] = LabelPattern(pattern)
        except ValueError as exc:
            problems.add(where, f"{json.dumps(pattern)} is not a regular expression: {exc}")
    return patterns


def _read_route_receivers(
    path: KeyPath, table: dict[str, Any], defined: tuple[str, ...], problems: Problems
) -> tuple[str, ...]:
    if "receivers" not in table:
        problems.add(path[:-1], 'missing receivers: say receivers = ["name", ...]')
        return ()
    value = table["receivers"]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        problems.add(path, f"must be a list of receiver names, not {toml_type(value)}")
        return ()
    for name in value:
        if name not in defined:
            close = difflib.get_close_matches(name, defined, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            known = ", ".join(defined) or "none"
            problems.add(path, f'unknown receiver "{name}"{hint} (the file defines: {known})')
    return tuple(dict.fromkeys(value))


def _check_label(path: KeyPath, label: str, problems: Problems) -> bool:
    if label in LABEL_NAMES or (label.startswith(TAG_PREFIX) and len(label) > len(TAG_PREFIX)):
        return True
    problems.add(
        path,
        f"unknown label (match on {', '.join(LABEL_NAMES)},"
        ' or "tag:<name>" for a tag, quoted: "tag:team" = "payments")',
    )
    return False


def _ordered(label: str, values: frozenset[str]) -> list[str]:
    rank = _CHECKED_VALUES.get(label)
    return sorted(values, key=lambda v: (rank.index(v) if rank and v in rank else 0, v))
