"""Reading the checks file: ``[defaults]`` and ``[[checks]]`` tables into validated checks,
every problem tied to its line, the secrets it names checked apart.

```toml
[defaults]
interval = "5m"

[[checks]]
name = "payments-api"
kind = "http"
url = "https://payments.internal/health"
conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 500", "[BODY].status == UP"]
headers_env = { Authorization = "PAYMENTS_HEALTH_TOKEN" }
```
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from mendline.analyzers.health.conditions import default_conditions, parse_condition
from mendline.analyzers.health.heartbeat import validate_cron
from mendline.analyzers.health.self_checks import SELF_CHECK_PREFIX
from mendline.schemas.checks import Check, HeartbeatCheck, HttpCheck, PostgresCheck
from mendline.schemas.tomlfile import (
    ENV_NAME,
    KeyPath,
    Problems,
    model_error,
    parse_document,
    read_text,
    toml_type,
    unknown_key,
)

__all__ = ["DEFAULT_KEYS", "CheckSet", "check_env", "load_checks", "parse_checks"]

#: The keys ``[defaults]`` may set, for every check that does not set them itself.
DEFAULT_KEYS: tuple[str, ...] = (
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "severity",
    "environment",
    "tags",
    "flap_threshold",
    "flap_window",
)
# A heartbeat's thresholds are 1 on purpose: one missed nightly run is news.
_NOT_FOR_HEARTBEATS = frozenset({"failure_threshold", "success_threshold"})
_TOP_KEYS = ("defaults", "checks")
_CHECK_ADAPTER: TypeAdapter[Check] = TypeAdapter(Check)
_CHECK_MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in get_args(get_args(Check)[0])
}
# Header names whose value is a credential: they belong in headers_env.
_SECRET_HEADER = re.compile(
    r"(?i)^(?:authorization|proxy-authorization|cookie|x-api-key|api-key|apikey)$"
    r"|token|secret|passw|api[-_]?key|session|signature|credential"
)


@dataclass(frozen=True)
class CheckSet:
    """The checks of one file, in its order; ``source`` names the file, ``lines`` gives the
    line of each check's ``[[checks]]`` header by its name."""

    checks: tuple[Check, ...]
    source: str
    lines: Mapping[str, int] = field(hash=False)


def load_checks(path: Path) -> CheckSet:
    """Read and validate a checks file.

    Raises ConfigError naming every problem of the file, one a line as
    ``FILE:LINE: field: message``, or that it cannot be read.
    """
    return parse_checks(read_text(path, "the checks file"), str(path))


def parse_checks(text: str, name: str) -> CheckSet:
    """Validate the text of a checks file called ``name`` (in messages and ``source``).

    Raises ConfigError naming every problem, one a line, in line order.
    """
    document, problems = parse_document(text, name, _TOP_KEYS)
    defaults = _read_defaults(document.get("defaults", {}), problems)
    tables = document.get("checks")
    if not tables:
        problems.add(("checks",), 'no checks: add [[checks]] tables with a name and a kind = "..."')
        tables = []
    elif not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.add(("checks",), "must be [[checks]] tables, each with a name and a kind")
        tables = []
    reader = _Reader(text, defaults, problems)
    for index, table in enumerate(tables):
        reader.read(index, table)
    problems.raise_any()
    return CheckSet(tuple(reader.checks), name, MappingProxyType(reader.lines))


def check_env(checks: CheckSet, environ: Mapping[str, str]) -> list[str]:
    """The environment variables the checks name (``headers_env``, ``dsn_env``) that are
    unset or empty, one message each naming the check and the variable (never a value)."""
    problems = []
    for check in checks.checks:
        named: list[tuple[str, str]] = []
        if isinstance(check, HttpCheck):
            named = [(f"headers_env.{h}", variable) for h, variable in check.headers_env.items()]
        elif isinstance(check, PostgresCheck):
            named = [("dsn_env", check.dsn_env)]
        for setting, variable in named:
            if not environ.get(variable):
                state = "is empty" if variable in environ else "is not set"
                problems.append(
                    f'check "{check.name}" ({check.kind}): {variable} ({setting}) {state}'
                )
    return problems


# -- reading ------------------------------------------------------------------------------


def _read_defaults(value: object, problems: Problems) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.add(("defaults",), f"must be a table ([defaults]), not {toml_type(value)}")
        return {}
    for key in value:
        if key not in DEFAULT_KEYS:
            problems.add(("defaults", key), unknown_key(key, DEFAULT_KEYS))
    return {key: setting for key, setting in value.items() if key in DEFAULT_KEYS}


class _Reader:
    """Reads the [[checks]] tables one by one, remembering the names seen and their lines."""

    def __init__(self, text: str, defaults: dict[str, Any], problems: Problems) -> None:
        self._text_lines = text.splitlines()
        self._defaults = defaults
        self._problems = problems
        self._reported: set[str] = set()  # a bad default is told once, not once a check
        self.checks: list[Check] = []
        self.lines: dict[str, int] = {}

    def read(self, index: int, table: dict[str, Any]) -> None:
        path: KeyPath = ("checks", index)
        checked = self._without_secrets(path, table)
        merged, from_defaults = self._with_defaults(checked)
        try:
            check = _CHECK_ADAPTER.validate_python(merged)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self._add_model_error(path, error, merged.get("kind"), from_defaults)
            check = None
        self._read_conditions(path, table)
        self._read_name(path, table)
        if check is not None:
            self._check_shortcuts(path, check)
            self._check_cron(path, check)
            self.checks.append(check)

    def _without_secrets(self, path: KeyPath, table: dict[str, Any]) -> dict[str, Any]:
        """``table``, or a copy without what was reported here (the same table: nothing)."""
        checked = table
        headers = table.get("headers")
        if isinstance(headers, dict):
            pasted = [header for header in headers if _SECRET_HEADER.search(header)]
            for header in pasted:
                self._problems.add(
                    (*path, "headers", header),
                    "looks like a secret: put the value in an environment variable and name"
                    f' it in headers_env ({json.dumps(header)} = "VARIABLE")',
                )
            if pasted:
                kept = {h: v for h, v in headers.items() if h not in pasted}
                checked = {**table, "headers": kept}
        named: list[tuple[KeyPath, object]] = [(("dsn_env",), table.get("dsn_env"))]
        if isinstance(table.get("headers_env"), dict):
            named += [(("headers_env", h), v) for h, v in table["headers_env"].items()]
        for where, variable in named:
            # The value itself pasted where its variable's name belongs: do not echo it.
            if isinstance(variable, str) and not ENV_NAME.fullmatch(variable):
                self._problems.add(
                    (*path, *where),
                    "is not an environment variable name (letters, digits and _): secrets come"
                    " from environment variables, so put the value in one and name it here",
                )
                checked = {**checked, str(where[0]): "REPORTED" if len(where) == 1 else {}}
        return checked

    def _with_defaults(self, table: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """The table with the defaults it does not set, and the keys taken from them."""
        taken = {
            key: value
            for key, value in self._defaults.items()
            if key not in table
            and not (table.get("kind") == "heartbeat" and key in _NOT_FOR_HEARTBEATS)
        }
        merged = {**taken, **table}
        tags, default_tags = table.get("tags"), self._defaults.get("tags")
        if isinstance(tags, dict) and isinstance(default_tags, dict):
            merged["tags"] = {**default_tags, **tags}
        return merged, set(taken)

    def _add_model_error(
        self, path: KeyPath, error: Mapping[str, Any], kind: object, from_defaults: set[str]
    ) -> None:
        where, message = model_error(error, "check", "kind", kind, _CHECK_MODELS)
        if where and where[0] in from_defaults:
            text = f"{where}: {message}"
            if text not in self._reported:
                self._reported.add(text)
                self._problems.add(("defaults", *where), message)
            return
        self._problems.add((*path, *where), message)

    def _read_conditions(self, path: KeyPath, table: dict[str, Any]) -> None:
        conditions = table.get("conditions")
        if not isinstance(conditions, list):
            return  # missing, or the model said what is wrong
        key_line = self._problems.lines.line_of((*path, "conditions"))
        for number, condition in enumerate(conditions):
            if not isinstance(condition, str):
                continue
            try:
                parse_condition(condition)
            except ValueError as exc:
                self._problems.add(
                    (*path, "conditions", number), str(exc), self._line_of(condition, key_line)
                )

    def _read_name(self, path: KeyPath, table: dict[str, Any]) -> None:
        name = table.get("name")
        if not isinstance(name, str):
            return
        if name.startswith(SELF_CHECK_PREFIX):
            self._problems.add(
                (*path, "name"),
                f"{json.dumps(name)}: names starting with {SELF_CHECK_PREFIX!r} are mendline's"
                " own checks (MENDLINE_SELF_CHECKS)",
            )
        if name in self.lines:
            self._problems.add(
                (*path, "name"),
                f"{json.dumps(name)} is already the name of the check on line"
                f" {self.lines[name]}: names are unique in the file",
            )
            return
        self.lines[name] = self._problems.lines.line_of(path)

    def _check_shortcuts(self, path: KeyPath, check: Check) -> None:
        """What ``expected`` and the other shortcuts stand for must parse too."""
        for condition in default_conditions(check)[len(check.conditions) :]:
            try:
                parse_condition(condition)
            except ValueError as exc:
                self._problems.add(path, f"{condition}: {exc}")

    def _check_cron(self, path: KeyPath, check: Check) -> None:
        if isinstance(check, HeartbeatCheck) and check.cron is not None:
            try:
                validate_cron(check.cron)
            except ValueError as exc:
                self._problems.add((*path, "cron"), str(exc))

    def _line_of(self, condition: str, start: int) -> int:
        """The line of a condition in a list that may span lines: the first from the key's
        line on that holds it."""
        for number in range(start, len(self._text_lines) + 1):
            if condition in self._text_lines[number - 1] or (
                json.dumps(condition)[1:-1] in self._text_lines[number - 1]
            ):
                return number
        return start
