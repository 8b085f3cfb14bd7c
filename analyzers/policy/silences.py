"""Silences: which alerts a silence holds back, decided over the alert's labels (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mendline.analyzers.policy._label_patterns import LabelPattern
from mendline.analyzers.policy.alerts import LABEL_NAMES, TAG_PREFIX
from mendline.schemas.alert import ENDS_INCIDENT

__all__ = [
    "MATCHER_OPS",
    "Matcher",
    "Silence",
    "SilenceVerdict",
    "describe_matchers",
    "matcher_from_json",
    "parse_matcher",
    "silence_for",
]

MatcherOp = Literal["=", "!=", "=~", "!~"]
#: Alertmanager's four: equal, not equal, matches whole, does not match whole.
MATCHER_OPS: tuple[MatcherOp, ...] = ("=~", "!~", "!=", "=")
_SPLIT = re.compile(r"^\s*([A-Za-z_][\w:.-]*)\s*(=~|!~|!=|=)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    """One condition on a label: ``service=api``, ``severity=~error|critical``. A regular
    expression (RE2's syntax) matches the whole value; a missing label is "" (as in
    Alertmanager, so ``team!=pay`` matches an alert without the label)."""

    label: str
    op: MatcherOp
    value: str
    #: ``value`` compiled, for ``=~`` and ``!~`` (made by ``parse_matcher``).
    pattern: LabelPattern | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this condition."""
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        pattern = self.pattern if self.pattern is not None else LabelPattern(self.value)
        found = pattern.fullmatch(have)
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"

    def to_json(self) -> dict[str, str]:
        """As stored in ``silences.matchers``."""
        return {"label": self.label, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """``label=value``, ``label!=value``, ``label=~regex`` or ``label!~regex``; ValueError
    saying what is wrong otherwise (an unknown label, a bad regular expression)."""
    found = _SPLIT.match(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not a matcher: say label=value, label!=value, label=~regex or"
            " label!~regex"
        )
    label, op, value = found.group(1), found.group(2), found.group(3).strip()
    return _checked(label, op, value)


def matcher_from_json(data: Mapping[str, Any]) -> Matcher:
    """A matcher as stored (``Matcher.to_json``); ValueError if it is not one."""
    return _checked(str(data.get("label")), str(data.get("op")), str(data.get("value")))


def _checked(label: str, op: str, value: str) -> Matcher:
    if label not in LABEL_NAMES and not label.startswith(TAG_PREFIX):
        known = ", ".join(LABEL_NAMES)
        raise ValueError(f"unknown label {label!r}: use {known} or {TAG_PREFIX}NAME")
    if op not in MATCHER_OPS:
        raise ValueError(f"unknown operator {op!r}: use =, !=, =~ or !~")
    if op not in ("=~", "!~"):
        return Matcher(label, op, value)
    try:
        pattern = LabelPattern(value)
    except ValueError as exc:
        raise ValueError(f"{label}{op}{value}: not a regular expression: {exc}") from None
    return Matcher(label, op, value, pattern)


@dataclass(frozen=True)
class Silence:
    """A silence as stored: all its matchers must match, between ``starts_at`` and
    ``ends_at``, unless it was expired early (``expired_at``)."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime | None = None
    expired_at: datetime | None = None
    expired_by: str | None = None

    def active(self, now: datetime) -> bool:
        """In effect at ``now``."""
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every matcher matches ``labels``."""
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class SilenceVerdict:
    """The silence that holds an alert back (None: none does), and why."""

    silence: Silence | None
    reason: str


def silence_for(
    silences: Iterable[Silence], labels: Mapping[str, str], kind: str, now: datetime
) -> SilenceVerdict:
    """The first active silence (lowest id) whose matchers all match ``labels``.

    An alert that ends an incident (``ENDS_INCIDENT``: resolved, a check up again) is never
    silenced: it goes only to receivers that were told the incident began, and they (and
    PagerDuty's open incident) should hear it is over.
    """
    if kind in ENDS_INCIDENT:
        return SilenceVerdict(None, f"{kind} ends an incident: not silenced")
    for silence in sorted(silences, key=lambda s: s.id):
        if silence.active(now) and silence.matches(labels):
            shown = ", ".join(str(m) for m in silence.matchers)
            return SilenceVerdict(silence, f"silenced by silence {silence.id} ({shown})")
    return SilenceVerdict(None, "no active silence matches")


def describe_matchers(matchers: Sequence[Matcher]) -> str:
    """``service=api, severity=~error|critical``."""
    return ", ".join(str(m) for m in matchers)
