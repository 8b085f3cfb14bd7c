"""Gatus-style conditions over what a probe saw: ``[STATUS] == 200``, ``[BODY].status == UP``,
``[RESPONSE_TIME] < 500``, ``[CERTIFICATE_EXPIRATION] > 14d``. Pure: parse once, evaluate on
each observation, never raise on what was observed."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from mendline.schemas.checks import (
    Check,
    ConditionResult,
    DnsCheck,
    HttpCheck,
    KafkaCheck,
    Observation,
)
from mendline.schemas.duration import format_duration
from mendline.schemas.printable import printable
from mendline.schemas.tomlfile import parse_duration

__all__ = [
    "NOT_OBSERVED",
    "OBSERVED_WIDTH",
    "OPERATORS",
    "PLACEHOLDERS",
    "RECENT_LIMIT",
    "ROWS_LIMIT",
    "Condition",
    "default_conditions",
    "evaluate",
    "parse_condition",
]

Operator = Literal["==", "!=", "<", "<=", ">", ">="]
#: The operators, longest first (``<=`` before ``<``).
OPERATORS: tuple[Operator, ...] = ("==", "!=", "<=", ">=", "<", ">")
#: The placeholders a condition may read: the keys of ``Observation.values``.
PLACEHOLDERS: tuple[str, ...] = (
    "STATUS",
    "RESPONSE_TIME",
    "BODY",
    "HEADERS",
    "CONNECTED",
    "IP",
    "DNS_RCODE",
    "DNS_ANSWER",
    "CERTIFICATE_EXPIRATION",
    "QUERY_DURATION",
    "ROWS",
    "RESULT",
    "LAG",
    "RECENT",
)
#: The rows the postgres probe counts: a query returning more is observed as ROWS_LIMIT + 1
#: (only its first row is fetched), so [ROWS] is compared with numbers up to ROWS_LIMIT.
ROWS_LIMIT = 1000
#: The newest records the kafka probe reads of each partition for [RECENT]: the count is
#: exact up to RECENT_LIMIT per partition, and "at least" beyond (a partition that had more
#: within the window counts RECENT_LIMIT).
RECENT_LIMIT = 100
#: What a condition's ``observed`` says when the observation has no value for it.
NOT_OBSERVED = "(not observed)"
#: The longest ``observed`` text: a longer value is cut, with an ellipsis.
OBSERVED_WIDTH = 200

# Placeholders in milliseconds and in seconds: a duration on the right ("500ms", "14d") is
# converted to their unit.
_MILLISECONDS = frozenset({"RESPONSE_TIME", "QUERY_DURATION"})
_SECONDS = frozenset({"CERTIFICATE_EXPIRATION"})
_PATHS = frozenset({"BODY", "HEADERS"})

_PLACEHOLDER = re.compile(r"\[([A-Za-z_]*)\]")
# After [BODY]: .field, .field[0], [0]; after [HEADERS]: .Header-Name.
_STEP = re.compile(r"\.([^\s.\[\]()=<>!]+)|\[(\d+)\]")
_FUNCTION = re.compile(r"(len|has)\(")
_RIGHT_FUNCTION = re.compile(r"(pat|any)\((.*)\)", re.S)
_OPERATOR = re.compile(r"\s*(==|!=|<=|>=|<|>)\s*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_LETTERS = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Condition:
    """A parsed condition: ``function(placeholder path) operator right``.

    ``path`` is the JSON path into the body (keys and list indexes) or the header's name;
    ``right_kind`` says how ``right`` is read: one value, ``pat`` (a glob, ``*`` any text)
    or ``any`` (one of several values).
    """

    text: str
    placeholder: str
    path: tuple[str | int, ...]
    function: Literal["len", "has"] | None
    operator: Operator
    right_kind: Literal["value", "pat", "any"]
    right: tuple[str, ...]

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str) -> Condition:
    """A condition from its text, as in Gatus: ``[STATUS] == 200``, ``len([BODY].items) > 0``,
    ``[BODY] == pat(*UP*)``, ``[STATUS] == any(200, 204)``.

    Raises ValueError with a message for people: what is wrong, and what to write.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError('a condition is "<placeholder> <operator> <value>", e.g. [STATUS] == 200')
    source = text.strip()
    function, placeholder, path, rest = _parse_left(source)
    operator_found = _OPERATOR.match(rest)
    if operator_found is None:
        raise ValueError(
            f"no operator after the placeholder in {json.dumps(source)}: write"
            f" <placeholder> <operator> <value> with one of {' '.join(OPERATORS)}"
        )
    operator = cast(Operator, operator_found[1])
    right_text = rest[operator_found.end() :].strip()
    if not right_text:
        raise ValueError(f"nothing to compare with after {operator} in {json.dumps(source)}")
    right_kind, right = _parse_right(right_text)
    condition = Condition(source, placeholder, path, function, operator, right_kind, right)
    _check_meaning(condition)
    return condition


def evaluate(
    conditions: Sequence[str | Condition], observation: Observation
) -> list[ConditionResult]:
    """Each condition judged on ``observation``, with the value it read as people read it.

    A placeholder the observation lacks fails its condition, observed ``(not observed)``;
    conditions are judged on what was observed even when the probe reported an error. A
    condition text that does not parse fails, its observed value saying why. Never raises.
    """
    body = _Body(observation.values.get("BODY"))
    results = []
    for item in conditions:
        try:
            condition = item if isinstance(item, Condition) else parse_condition(item)
        except ValueError as exc:
            results.append(
                ConditionResult(condition=str(item), success=False, observed=_shown(exc))
            )
            continue
        success, observed = _judge(condition, observation, body)
        results.append(
            ConditionResult(condition=condition.text, success=success, observed=observed)
        )
    return results


def default_conditions(check: Check) -> list[str]:
    """The conditions ``check`` runs: its own, then those its shortcuts stand for
    (``expected_status``, ``expected``, ``max_lag``); with none at all, its kind's default.
    A heartbeat has none: check-ins are judged on their schedule."""
    conditions = list(check.conditions)
    if isinstance(check, HttpCheck) and check.expected_status:
        codes = [str(code) for code in check.expected_status]
        conditions.append(
            f"[STATUS] == {codes[0]}" if len(codes) == 1 else f"[STATUS] == any({', '.join(codes)})"
        )
    if isinstance(check, DnsCheck):
        conditions += [f"[DNS_ANSWER] == {answer}" for answer in check.expected]
    if isinstance(check, KafkaCheck) and check.max_lag is not None:
        conditions.append(f"[LAG] <= {check.max_lag}")
    if conditions:
        return conditions
    return list(_KIND_DEFAULTS[check.kind])


_KIND_DEFAULTS: dict[str, tuple[str, ...]] = {
    "http": ("[STATUS] < 400",),
    "tcp": ("[CONNECTED] == true",),
    "dns": ("[DNS_RCODE] == NOERROR", "len([DNS_ANSWER]) > 0"),
    "tls": ("[CERTIFICATE_EXPIRATION] > 14d",),
    "postgres": ("[CONNECTED] == true",),
    "kafka": ("[CONNECTED] == true",),
    "heartbeat": (),
}


# -- parsing ------------------------------------------------------------------------------


def _parse_left(
    source: str,
) -> tuple[Literal["len", "has"] | None, str, tuple[str | int, ...], str]:
    """The function, placeholder and path at the start of ``source``, and what follows."""
    function: Literal["len", "has"] | None = None
    rest = source
    if called := _FUNCTION.match(rest):
        function = cast(Literal["len", "has"], called[1])
        rest = rest[called.end() :].lstrip()
    found = _PLACEHOLDER.match(rest)
    if found is None:
        raise ValueError(
            f"{json.dumps(source)} does not start with a placeholder such as [STATUS] or"
            " [BODY].field, or with len(...) or has(...)"
        )
    placeholder = found[1]
    if placeholder not in PLACEHOLDERS:
        close = difflib.get_close_matches(placeholder.upper(), PLACEHOLDERS, n=1)
        hint = f"; did you mean [{close[0]}]?" if close else f" (use {_listed(PLACEHOLDERS)})"
        raise ValueError(f"unknown placeholder [{placeholder}]{hint}")
    rest = rest[found.end() :]
    path: list[str | int] = []
    while step := _STEP.match(rest):
        path.append(step[1] if step[1] is not None else int(step[2]))
        rest = rest[step.end() :]
    if function is not None:
        rest = rest.lstrip()
        if not rest.startswith(")"):
            raise ValueError(f"{function}( is not closed in {json.dumps(source)}")
        rest = rest[1:]
    return function, placeholder, tuple(path), rest


def _parse_right(text: str) -> tuple[Literal["value", "pat", "any"], tuple[str, ...]]:
    called = _RIGHT_FUNCTION.fullmatch(text)
    if called is None:
        if re.match(r"(pat|any)\(", text):
            raise ValueError(f"{text[:4]} is not closed in {json.dumps(text)}")
        return "value", (_unquoted(text),)
    if called[1] == "pat":
        return "pat", (called[2],)
    values = tuple(_unquoted(value.strip()) for value in called[2].split(","))
    if not all(values):
        raise ValueError(
            f"any() needs values separated by commas: any(200, 204), not {json.dumps(text)}"
        )
    return "any", values


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _check_meaning(condition: Condition) -> None:
    """What parses but cannot mean anything: fields of a placeholder that has none, has()
    compared with anything but true or false, pat() or any() ordered, an ordering with text."""
    name, op, path = condition.placeholder, condition.operator, condition.path
    if path and name not in _PATHS:
        raise ValueError(
            f"[{name}] has no fields: only [BODY] (a JSON path) and [HEADERS] (a header name) do"
        )
    if name == "HEADERS" and condition.function != "len" and len(path) != 1:
        raise ValueError("name one header: [HEADERS].Content-Type")
    if condition.function == "has" and (
        op not in ("==", "!=")
        or condition.right_kind != "value"
        or _boolean(condition.right[0]) is None
    ):
        raise ValueError("has(...) is compared with true or false: has([BODY].errors) == false")
    if condition.right_kind != "value" and op not in ("==", "!="):
        raise ValueError(f"{condition.right_kind}() goes with == or !=, not {op}")
    booleans = all(_boolean(value) is not None for value in condition.right)
    if name == "CONNECTED" and condition.function is None and not booleans:
        raise ValueError("[CONNECTED] is true or false: [CONNECTED] == true")
    if name == "ROWS" and condition.function is None:
        _within_rows_limit(condition.right)
    if op in ("==", "!="):
        return
    right = condition.right[0]
    number = _number(right, name if condition.function is None else "")
    if number is None:
        unit = " or a duration (500ms, 2s, 14d)" if name in _MILLISECONDS | _SECONDS else ""
        raise ValueError(f"{op} compares numbers: {json.dumps(right)} is not a number{unit}")


def _within_rows_limit(values: Sequence[str]) -> None:
    for value in values:
        number = _number(value, "ROWS")
        if number is not None and number > ROWS_LIMIT:
            raise ValueError(
                f"[ROWS] counts up to {ROWS_LIMIT} rows (a query returning more is"
                f" {ROWS_LIMIT + 1}), so it cannot be compared with {value}: count in the"
                " query (SELECT count(*) ...) and compare [RESULT]"
            )


def _number(text: str, placeholder: str) -> float | None:
    """``text`` as a number in ``placeholder``'s unit: a plain number, or a duration for the
    placeholders that are durations; None if it is neither."""
    if _NUMBER.fullmatch(text.strip()):
        number = float(text)
        return number if math.isfinite(number) else None
    if placeholder not in _MILLISECONDS | _SECONDS or not _LETTERS.search(text):
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        return None
    return seconds * 1000 if placeholder in _MILLISECONDS else seconds


def _boolean(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


def _listed(names: Sequence[str]) -> str:
    return ", ".join(f"[{name}]" for name in names)


# -- evaluation ---------------------------------------------------------------------------

_MISSING = object()


class _Body:
    """The body parsed as JSON once, for every condition on a path into it."""

    def __init__(self, body: object) -> None:
        self._body = body
        self._parsed: object = _MISSING
        self._tried = False

    def parsed(self) -> object:
        if not self._tried:
            self._tried = True
            if isinstance(self._body, str):
                try:
                    self._parsed = json.loads(self._body)
                # JSONDecodeError, a number too long for int(), nesting too deep
                except (ValueError, RecursionError):
                    self._parsed = _MISSING
        return self._parsed


@dataclass(frozen=True)
class _Read:
    """What a condition's left side read: the value, or why there is none."""

    value: Any = _MISSING
    absent: str = NOT_OBSERVED

    @property
    def found(self) -> bool:
        return self.value is not _MISSING


def _judge(condition: Condition, observation: Observation, body: _Body) -> tuple[bool, str]:
    read = _read(condition, observation, body)
    if condition.function == "has":
        present = read.found and read.value is not None
        wanted = _boolean(condition.right[0])
        held = (present == wanted) == (condition.operator == "==")
        return held, "true" if present else "false"
    if not read.found:
        return False, read.absent
    value = read.value
    if condition.function == "len":
        value = _length(value)
    held = _compare(condition, value)
    return held, _observed(condition, value)


def _read(condition: Condition, observation: Observation, body: _Body) -> _Read:
    value = observation.values.get(condition.placeholder)
    if value is None:
        return _Read()
    if condition.placeholder == "HEADERS" and condition.path:
        name = str(condition.path[0]).lower()
        headers = value if isinstance(value, dict) else {}
        for key, header in headers.items():
            if key.lower() == name:
                return _Read(header)
        return _Read(absent=f"(no header {condition.path[0]})")
    if condition.placeholder != "BODY" or not condition.path:
        return _Read(value)
    current = body.parsed()
    if current is _MISSING:
        return _Read(absent="(the body is not JSON)")
    walked = ""
    for step in condition.path:
        walked += f"[{step}]" if isinstance(step, int) else f".{step}"
        indexed = isinstance(current, list) and isinstance(step, int) and step < len(current)
        if not (indexed or (isinstance(current, dict) and step in current)):
            return _Read(absent=f"(no {walked} in the body)")
        current = current[step]  # type: ignore[index]
    return _Read(current)


def _length(value: object) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    if value is None:
        return 0
    return len(_text(value))


def _compare(condition: Condition, value: object) -> bool:
    op = condition.operator
    if op in ("==", "!="):
        if condition.right_kind == "pat":
            matched = _pattern_matches(condition.right[0], value)
        else:
            unit = condition.placeholder if condition.function is None else ""
            matched = any(_equal(value, right, unit) for right in condition.right)
        return matched == (op == "==")
    left = _as_number(value)
    right = _number(condition.right[0], condition.placeholder if not condition.function else "")
    if left is None or right is None:
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _equal(value: object, right: str, unit: str) -> bool:
    if isinstance(value, list):  # [DNS_ANSWER] == x: x is among the answers
        return any(_equal(item, right, unit) for item in value)
    if isinstance(value, bool):
        return value == _boolean(right)
    wanted = _number(right, unit)
    number = _as_number(value)
    if wanted is not None and number is not None:
        return number == wanted
    if unit == "DNS_ANSWER":
        return _text(value).rstrip(".").lower() == right.rstrip(".").lower()
    return _text(value) == right


def _pattern_matches(pattern: str, value: object) -> bool:
    if isinstance(value, list):
        return any(_pattern_matches(pattern, item) for item in value)
    return _glob(pattern, _text(value))


def _glob(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``, ``*`` standing for any text: the pieces found
    leftmost in order: no regular expression to backtrack over a hostile body."""
    if "*" not in pattern:
        return text == pattern
    first, *middle, last = pattern.split("*")
    if len(first) + len(last) > len(text):
        return False
    if not (text.startswith(first) and text.endswith(last)):
        return False
    position, end = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _text(value: object) -> str:
    """A value as a condition compares it: JSON's true/false/null, numbers without ``.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _observed(condition: Condition, value: object) -> str:
    if condition.function is None and _as_number(value) is not None and not isinstance(value, str):
        number = float(value)  # type: ignore[arg-type]
        if condition.placeholder in _MILLISECONDS:
            return _shown(f"{_text(value)} ms")
        if condition.placeholder in _SECONDS:
            return _shown(f"{_text(value)} s ({format_duration(max(0.0, number))})")
    return _shown(_text(value))


def _shown(value: object) -> str:
    """Text as people may read it anywhere: control characters escaped, cut short."""
    text = printable(value)
    if len(text) <= OBSERVED_WIDTH:
        return text
    return text[: OBSERVED_WIDTH - 1] + "…"
