"""Reading the fix policy file into a FixPolicy, every problem tied to its line, and what a
valid file may still have wrong (unset variables, dropped deny defaults)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from mendline.analyzers.policy.alerts import LABEL_NAMES, TAG_PREFIX
from mendline.schemas.finding import RISKS
from mendline.schemas.fixpolicy import (
    DEFAULT_DENY_PATHS,
    DEFAULT_DENY_PATTERNS,
    FixPolicy,
)
from mendline.schemas.tomlfile import (
    KeyPath,
    Problems,
    either,
    parse_document,
    read_text,
    toml_type,
    unknown_key,
)

__all__ = [
    "SHIPPED_POLICY",
    "load_policy",
    "parse_policy",
    "policy_warnings",
    "shipped_policy_text",
]

#: How the shipped default policy is named in messages.
SHIPPED_POLICY = "the shipped default"
_SHIPPED_FILE = "fixes.default.toml"
_TOP_KEYS = tuple(FixPolicy.model_fields)
# What a value of each pydantic type error must be, as people say it.
_MUST_BE = {
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "path_type": "a path (a string)",
}
# Bounds, as people say them.
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}
_TOO_SHORT = {"mappings": "needs at least one [[repositories.mappings]] (stack_root, source_root)"}


def shipped_policy_text() -> str:
    """The shipped default policy file, with its comments (``mendline fix policy example``)."""
    return resources.files("mendline.analyzers.policy").joinpath(_SHIPPED_FILE).read_text("utf-8")


def load_policy(path: Path | None) -> FixPolicy:
    """Read and validate a fix policy file; ``None`` reads the shipped default.

    Raises ConfigError naming every problem of the file, one a line as
    ``FILE:LINE: field: message``, or that it cannot be read.
    """
    if path is None:
        return parse_policy(shipped_policy_text(), SHIPPED_POLICY)
    return parse_policy(read_text(path, "the fix policy file"), str(path))


def parse_policy(text: str, name: str) -> FixPolicy:
    """Validate the text of a fix policy file called ``name`` (in messages).

    Raises ConfigError naming every problem, one a line, in line order.
    """
    document, problems = parse_document(text, name, _TOP_KEYS)
    known = {key: value for key, value in document.items() if key in _TOP_KEYS}
    policy: FixPolicy | None = None
    try:
        policy = FixPolicy.model_validate(known)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path, message = _problem(error)
            problems.add(path, message)
    _check_unique(known, "repositories", "repository", problems)
    _check_unique(known, "remediations", "remediation", problems)
    _check_stack_roots(known.get("repositories"), problems)
    _check_labels(known.get("remediations"), problems)
    problems.raise_any()
    assert policy is not None  # a validation error is a problem: raised above
    return policy


def policy_warnings(policy: FixPolicy, environ: Mapping[str, str]) -> list[str]:
    """What a valid policy may still have wrong: the environment variables it names that are
    unset or empty (never a value), and the shipped deny rules a ``[deny]`` list left out."""
    warnings: list[str] = []
    for what, given, defaults in (
        ("paths", policy.deny.paths, DEFAULT_DENY_PATHS),
        ("patterns", policy.deny.patterns, DEFAULT_DENY_PATTERNS),
        ("risks", policy.deny.risks, RISKS),
    ):
        dropped = [item for item in defaults if item not in given]
        if dropped:
            shown = ", ".join(json.dumps(item) for item in dropped[:3])
            more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
            warnings.append(
                f"[deny] {what} leaves out {len(dropped)} of the shipped default's: {shown}{more}"
                " (a list given replaces the default: copy the ones to keep)"
            )
    named: list[tuple[str, str, str]] = [
        (f'repository "{repo.name}"', "token_env", repo.token_env)
        for repo in policy.repositories
        if repo.token_env is not None
    ]
    named += [
        (f'remediation "{remedy.name}"', f"http.headers_env.{header}", variable)
        for remedy in policy.remediations
        if remedy.http is not None
        for header, variable in remedy.http.headers_env.items()
    ]
    for owner, setting, variable in named:
        if not environ.get(variable):
            state = "is empty" if variable in environ else "is not set"
            warnings.append(f"{owner}: {variable} ({setting}) {state}")
    return warnings


# -- problems ------------------------------------------------------------------------------


def _problem(error: Mapping[str, Any]) -> tuple[KeyPath, str]:
    """Where a pydantic error is in the file, and what it says for people."""
    path: KeyPath = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return path, "missing"
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = tuple(model.model_fields) if model is not None else ()
        return path, unknown_key(str(path[-1]), allowed)
    if kind == "literal_error":
        allowed = tuple(re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        shown = json.dumps(value) if isinstance(value, str) else toml_type(value)
        return path, f"{shown} is not allowed{hint} (use {either(allowed)})"
    if kind == "too_short" and path and path[-1] in _TOO_SHORT:
        return path, _TOO_SHORT[str(path[-1])]
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = error.get("ctx", {}).get(key)
        return path, f"must be {words} {_number(bound)}, not {_number(value)}"
    if kind in _MUST_BE:
        return path, f"must be {_MUST_BE[kind]}, not {toml_type(value)}"
    return path, str(error["msg"]).removeprefix("Value error, ")


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The model of the table at ``path`` in the file (None: a plain table)."""
    model: type[BaseModel] | None = FixPolicy
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, UnionType):
        for arg in get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None


# -- what one table cannot tell ------------------------------------------------------------


def _tables(value: object) -> list[tuple[int, dict[str, Any]]]:
    """The tables of an array of tables, with their index; what is not one is skipped (the
    model says what is wrong with it)."""
    if not isinstance(value, list):
        return []
    return [(index, table) for index, table in enumerate(value) if isinstance(table, dict)]


def _check_unique(document: Mapping[str, Any], key: str, what: str, problems: Problems) -> None:
    seen: dict[str, int] = {}
    for index, table in _tables(document.get(key)):
        name = table.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.add(
                (key, index, "name"),
                f"{json.dumps(name)} is already the name of the {what} on line {seen[name]}:"
                " names are unique in the file",
            )
        else:
            seen[name] = problems.lines.line_of((key, index))


def _check_stack_roots(repositories: object, problems: Problems) -> None:
    """No two mappings have the same stack_root: a frame path would have two places."""
    seen: dict[str, tuple[int, str]] = {}
    for index, repository in _tables(repositories):
        for number, mapping in _tables(repository.get("mappings")):
            root = mapping.get("stack_root")
            if not isinstance(root, str):
                continue
            prefix = root.replace(".", "/") if root.endswith(".") else root
            path: KeyPath = ("repositories", index, "mappings", number, "stack_root")
            if prefix in seen:
                line, owner = seen[prefix]
                problems.add(
                    path,
                    f"{json.dumps(root)} is mapped already on line {line} (repository {owner}):"
                    " a frame path would have two places",
                )
            else:
                seen[prefix] = (problems.lines.line_of(path), str(repository.get("name")))


def _check_labels(remediations: object, problems: Problems) -> None:
    for index, remediation in _tables(remediations):
        when = remediation.get("when")
        labels = when.get("labels") if isinstance(when, dict) else None
        if not isinstance(labels, dict):
            continue
        for label in labels:
            if label in LABEL_NAMES or (label.startswith(TAG_PREFIX) and label != TAG_PREFIX):
                continue
            problems.add(
                ("remediations", index, "when", "labels", label),
                f"unknown label (use {', '.join(LABEL_NAMES)}, or"
                ' "tag:<name>" for a tag, quoted: "tag:team" = "payments")',
            )
