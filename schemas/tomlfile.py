"""Reading the TOML files people write (routes, checks): every problem tied to its line as
``FILE:LINE: field: message``, unknown keys with a "did you mean", and durations as people
write them ("30s", "5m", "1h30m")."""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mendline.schemas.duration import UNIT_SECONDS
from mendline.schemas.errors import ConfigError

__all__ = [
    "ENV_NAME",
    "KeyPath",
    "Problems",
    "TomlLines",
    "dotted",
    "either",
    "model_error",
    "parse_document",
    "parse_duration",
    "read_text",
    "toml_error",
    "toml_type",
    "unknown_key",
]

#: Where a value is in the document: ("routes", 2, "group_wait").
KeyPath = tuple[str | int, ...]
#: What an environment variable's name may be, where a file names one (``url_env``).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- durations ----------------------------------------------------------------------------

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?"
    rf"(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
_DURATION_HINT = "use 30s, 5m, 4h, 1h30m or seconds"


def parse_duration(value: object) -> float:
    """Seconds from "30s", "5m", "4h", "1h30m", "500ms", "1d" or a number of seconds.

    Raises ValueError with a message for people (the value, and what to write instead).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f'must be a duration such as "30s", not {toml_type(value)}')
    if isinstance(value, str):
        text = value.strip()
        found = _DURATION.fullmatch(text)
        if text.startswith("-"):
            raise ValueError(f"{json.dumps(value)} is negative; use 0s or more")
        if found is not None and text:
            return sum(float(n) * UNIT_SECONDS[u] for u, n in found.groupdict().items() if n)
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{json.dumps(value)} is not a duration ({_DURATION_HINT})") from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{json.dumps(value)} is not a duration ({_DURATION_HINT})")
    if seconds < 0:
        raise ValueError(f"{json.dumps(value)} is negative; use 0s or more")
    return seconds


def toml_type(value: object) -> str:
    """A value's TOML type as a message names it: "a string", "a table"."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def dotted(path: KeyPath) -> str:
    """A key path as people write it: ``routes[2].group_wait``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


def unknown_key(key: str, allowed: tuple[str, ...], where: str = "") -> str:
    """The message for an unknown key: the closest allowed one, and all of them."""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown key{' ' + where if where else ''}{hint} (allowed: {', '.join(allowed)})"


def either(values: Iterable[str]) -> str:
    """``a, b or c``."""
    items = list(values)
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else "".join(items)


def toml_error(name: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """A TOML syntax error as ``FILE:LINE: invalid TOML: message (column N)``."""
    message = str(exc)
    where = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if where is not None:
        line = int(where[1])
        message = f"{message[: where.start()]} (column {where[2]})"
    else:  # "(at end of document)": the last line
        line = max(1, len(text.splitlines()))
        message = message.replace(" (at end of document)", " at the end of the file")
    return f"{name}:{line}: invalid TOML: {message}"


def parse_document(
    text: str, name: str, top_keys: tuple[str, ...]
) -> tuple[dict[str, Any], Problems]:
    """The TOML document of ``text`` (a file called ``name``) and the Problems to collect
    for it, an unknown top-level key (one not in ``top_keys``) already among them.

    Raises ConfigError for a syntax error, with its line.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_error(name, text, exc)) from exc
    problems = Problems(name, TomlLines(text))
    for key in document:
        if key not in top_keys:
            problems.add((key,), unknown_key(key, top_keys))
    return document, problems


def read_text(path: Path, what: str) -> str:
    """The text of ``path``, ``what`` (e.g. "the routes file"); a file that cannot be read or
    is not UTF-8 is a ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text: {exc.reason}") from exc


def model_error(
    error: Mapping[str, Any],
    what: str,
    tag: str,
    value: object,
    models: Mapping[str, type[BaseModel]],
) -> tuple[KeyPath, str]:
    """A pydantic error about a ``what`` (a receiver, a check): a union of ``models`` told
    apart by the key ``tag`` (``type``, ``kind``), whose value in the table is ``value``.
    Returns the key path in the table the error is about, and a message for people."""
    tags = either(f'"{name}"' for name in models)
    if error["type"] == "union_tag_not_found":
        return (tag,), f"missing: say {tag} = {tags}"
    if error["type"] == "union_tag_invalid":
        close = difflib.get_close_matches(str(value), tuple(models), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return (tag,), f"{json.dumps(value)} is not a {what} {tag}{hint} (use {tags})"
    where = tuple(error["loc"][1:])  # the first is the union's tag
    if error["type"] == "missing":
        return where, f'missing: a {what} of {tag} = "{value}" needs it'
    if error["type"] == "extra_forbidden":
        allowed = tuple(models[str(value)].model_fields)
        return where, unknown_key(str(where[-1]), allowed, f'for {tag} = "{value}"')
    return where, str(error["msg"]).removeprefix("Value error, ")


class Problems:
    """The problems of one file, each tied to the line of the key it is about."""

    def __init__(self, name: str, lines: TomlLines) -> None:
        self.name = name
        self.lines = lines
        self._found: list[tuple[int, str]] = []

    def add(self, path: KeyPath, message: str, line: int | None = None) -> None:
        """Record ``message`` about the value at ``path``, on its line (or on ``line``: an
        item of a list that spans lines)."""
        line = line or self.lines.line_of(path)
        self._found.append((line, f"{self.name}:{line}: {dotted(path)}: {message}"))

    def raise_any(self) -> None:
        """Raise ConfigError with every problem, one a line, in line order; none: return."""
        if self._found:
            ordered = sorted(self._found, key=lambda found: found[0])
            raise ConfigError("\n".join(message for _, message in ordered))


# -- lines --------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_PATH = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEY_PATH})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEY_PATH})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_KEY_PATH})\s*=")
_TRIPLE_STRINGS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'')
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


class TomlLines:
    """The line where each table and key of a TOML text starts, by its path in the
    document: tomllib gives values but not their lines. Enough of TOML for the files mendline reads:
    headers, dotted keys, arrays of tables, and values that span lines."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}  # an array of tables -> its current index
        table: KeyPath = ()
        depth = 0  # brackets and braces still open: a value spanning lines
        open_string: str | None = None  # the quotes of a multi-line string still open
        for number, line in enumerate(text.splitlines(), start=1):
            if open_string is not None:
                if open_string not in line:
                    continue
                line = line.split(open_string, 1)[1]
                open_string = None
            elif depth == 0:
                if header := _ARRAY_HEADER.match(line):
                    table = self._open_array(_key_parts(header[1]))
                    self._lines.setdefault(table, number)
                    continue
                if header := _TABLE_HEADER.match(line):
                    table = self._resolve(_key_parts(header[1]))
                    self._lines.setdefault(table, number)
                    continue
                if key := _KEY_LINE.match(line):
                    self._lines.setdefault((*table, *_key_parts(key[1])), number)
            code = _TRIPLE_STRINGS.sub('""', line)
            for quotes in ('"""', "'''"):
                if quotes in code:
                    open_string = quotes
                    code = code.split(quotes, 1)[0]
            code = _STRINGS.sub('""', code).split("#", 1)[0]
            depth = max(
                0, depth + sum(code.count(c) for c in "[{") - sum(code.count(c) for c in "]}")
            )

    def line_of(self, path: KeyPath) -> int:
        """The line of ``path``, or of the nearest table or key around it; 1 if none."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return 1

    def _resolve(self, parts: list[str]) -> KeyPath:
        # [routes.match] after [[routes]] is a table of the last route.
        resolved: list[str | int] = []
        for part in parts:
            resolved.append(part)
            index = self._arrays.get(tuple(resolved))
            if index is not None:
                resolved.append(index)
        return tuple(resolved)

    def _open_array(self, parts: list[str]) -> KeyPath:
        array = (*self._resolve(parts[:-1]), parts[-1])
        index = self._arrays.get(array, -1) + 1
        self._arrays[array] = index
        return (*array, index)


def _key_parts(key_path: str) -> list[str]:
    return [part.strip("\"'") for part in re.findall(_KEY, key_path)]
