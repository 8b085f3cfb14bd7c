"""The offline root-cause analyser: known failure patterns matched against the event, no I/O."""

from __future__ import annotations

import ast
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Any, get_args

from mendline.analyzers.rootcause._knowledge import (
    BASE_FIELDS,
    DETAILS,
    GUESSES,
    HEALTH_FIELDS,
    HEALTH_RULES,
    OTHER_DETAILS,
    RULES,
    HealthRule,
    Matcher,
    Rule,
)
from mendline.analyzers.rootcause._patches import PATCHES, Patch, diff, indentation, relative_path
from mendline.analyzers.rootcause.risks import fix_risks
from mendline.schemas.duration import format_duration
from mendline.schemas.event import ExceptionTree
from mendline.schemas.finding import (
    CATEGORIES,
    SEVERITIES,
    Category,
    Evidence,
    Finding,
    FixKind,
    HealthCondition,
    HealthEvidence,
    IssueContext,
    Severity,
)

__all__ = ["HEALTH_RULES", "RULES", "HealthRule", "HeuristicAnalyser", "Matcher", "Rule"]

# Confidence: the rule's type and source line matched and the cause names what the line
# shows; the cause names facts read from the message; only the shape of the error matched.
_HIGH, _SPECIFIC, _SHAPE = 0.85, 0.7, 0.5
# No rule matched: a category guessed from the type name, or none.
_GUESSED, _UNKNOWN = 0.25, 0.15
# Taken off when a finding of the same rule was marked wrong on a similar issue.
_WRONG_PENALTY, _FLOOR = 0.25, 0.05
# An issue seen this often is one severity step worse.
_FREQUENT = 1000
# An exception of these categories anywhere in a chain is what the rest of it follows from:
# code that fails while handling a timeout fails because of the timeout.
_TRIGGERS = frozenset({"dependency_outage_or_timeout", "resource_exhaustion"})
# Template fields that come from the exception and its frame rather than from a regex.
_COMPUTED = frozenset({"value", "function", "line", "repeated"})
_FIX_KINDS = frozenset(get_args(FixKind))
# What the regexes read at most: enough for any real message or source line.
_MAX_VALUE, _MAX_LINE = 2000, 400
_MAX_FIELD, _MAX_NOTE, _MAX_SIMILAR = 200, 300, 3
_MAX_CHAIN, _MAX_FRAMES, _MAX_EVIDENCE = 20, 100, 20
# Sub-exceptions of a group tried, and named beside the one diagnosed.
_MAX_GROUPED, _MAX_OTHERS = 25, 3
_CACHE_SIZE = 4096
_REFERENCE = re.compile(r"\(\?&(\w+)\)")
_TITLE = re.compile(r"([A-Za-z_][\w.]*)(?:: (.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Frame:
    filename: str
    module: str | None
    function: str
    lineno: int | None
    line: str | None
    indent: str  # the line's own indentation, when the event kept it
    in_app: bool


@dataclass(frozen=True, slots=True)
class _Exception:
    type: str  # "" for a log message without an exception
    module: str | None
    value: str
    frames: tuple[_Frame, ...]


@dataclass(frozen=True, slots=True)
class _Template:
    text: str
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class _LinePattern:
    source: str
    compiled: re.Pattern[str] | None  # None when it refers to message fields: built per call
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Way:
    """One way a rule matches: the exception types it is looked up by, the regex searched in
    the message, and the fix told when it matched."""

    types: tuple[str, ...]
    message: re.Pattern[str] | None
    fixes: tuple[_Template, ...]


_Details = tuple[tuple[str, tuple[tuple[re.Pattern[str], str], ...]], ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A rule made ready to match: regexes compiled, template fields worked out."""

    rule: Rule
    #: The rule's own way first, then those of its other platforms' matchers.
    ways: tuple[_Way, ...]
    lines: tuple[_LinePattern, ...]
    details: _Details
    other_details: _Details  # tried first for other platforms' events
    causes: tuple[_Template, ...]
    repeated: bool
    patch: Patch | None


@dataclass(frozen=True, slots=True)
class _HealthEntry:
    """A health rule made ready to match: regexes compiled, templates read."""

    rule: HealthRule
    error: re.Pattern[str] | None
    observed: re.Pattern[str] | None
    causes: tuple[_Template, ...]
    fixes: tuple[_Template, ...]


@dataclass(frozen=True, slots=True)
class _Match:
    entry: _Entry
    way: _Way
    index: int  # in the chain
    frame: _Frame | None
    fields: dict[str, str]
    line_matched: bool


class HeuristicAnalyser:
    """Diagnoses an issue from its newest event with a knowledge base of failure patterns.

    Pure and offline: no network, no file reads; it never raises for a well-formed
    IssueContext. Which exception of the chain is diagnosed: one whose rule is a dependency
    outage, timeout or exhausted resource, wherever it is (what follows it in the chain
    follows from it); else the raised exception when a rule knows it, else its nearest
    known cause (a wrapper such as ``RuntimeError("request failed") from ConnectTimeout`` is
    diagnosed by its cause). An exception group (``asyncio.TaskGroup``'s) is diagnosed by
    what it holds: a sub-exception whose chain has a timeout, outage or exhausted resource,
    else one a rule knows, the most specific match first, then by type and value (never by
    the order its tasks failed in), else the first; the finding names the others.

    Confidence: 0.85 when the rule matched the type and the source line of the innermost
    in-app frame and the cause names what that line shows; 0.7 when it names facts read from
    the message; 0.5 when only the error's shape matched; 0.25 or less for the fallback.
    A finding of the same rule marked wrong on a similar past issue takes 0.25 off.

    Severity: the rule's, one step up for an issue seen 1000 times or more or one that
    regressed, and at least "high" for an issue logged at level "critical".

    A health check's issue (``context.health``, no events) is explained from the evidence
    its down trigger recorded: the probe's error kind and error, else its first failing
    condition and the value observed, matched against ``HEALTH_RULES`` (0.7 confidence for a
    rule, 0.25 or less without one); the severity is the rule's, at least "high" for a
    check whose severity is critical.

    An event of another platform (its ``platform`` set and not python: Node, Java, Go, .NET,
    Ruby, PHP...) is also matched by the rules' ``other_platforms`` matchers, with its type
    read in dotted form (``Net::ReadTimeout`` as ``Net.ReadTimeout``); Python events never are.

    ``rules`` and ``health_rules`` replace the knowledge bases (``RULES``, ``HEALTH_RULES``);
    an invalid rule raises ValueError.
    """

    def __init__(
        self, rules: Iterable[Rule] = RULES, health_rules: Iterable[HealthRule] = HEALTH_RULES
    ) -> None:
        self._health = tuple(_compile_health(rule) for rule in health_rules)
        self._entries = tuple(_compile(rule) for rule in rules)
        ids = [entry.rule.id for entry in self._entries]
        if len(set(ids)) != len(ids) or "fallback" in ids:
            raise ValueError("rule ids must be unique, and 'fallback' is taken")
        # (entry index, way index): way 0 is the rule's own, the others' only other platforms'.
        self._any: list[tuple[int, int]] = []
        self._names: dict[str, list[tuple[int, int, str]]] = {}
        self._globs: list[tuple[int, int, str, re.Pattern[str]]] = []
        for index, entry in enumerate(self._entries):
            for way, matcher in enumerate(entry.ways):
                if not matcher.types:
                    self._any.append((index, way))
                for pattern in matcher.types:
                    prefix, _, name = pattern.rpartition(".")
                    if any(char in name for char in "*?["):
                        self._globs.append((index, way, prefix, re.compile(translate(name))))
                    else:
                        self._names.setdefault(name, []).append((index, way, prefix))
        self._candidates: dict[tuple[str, str | None, bool], tuple[tuple[_Entry, _Way], ...]] = {}
        self._guesses = tuple((re.compile(pattern), category) for pattern, category in GUESSES)

    async def analyse(self, context: IssueContext) -> Finding:
        """The Analyser interface: ``diagnose(context)``."""
        return self.diagnose(context)

    def diagnose(self, context: IssueContext) -> Finding:
        """A Finding for ``context``, made from its newest event with an exception (or its
        title when it has no event), or for a health check's issue from its evidence;
        ``rule`` names the rule that matched, or "fallback"."""
        if context.health is not None:
            return self._diagnose_health(context, context.health)
        event, chains, shared = _newest(context)
        if shared:  # a group's: by title, so the order its tasks failed in does not matter
            chains = tuple(sorted(chains, key=lambda chain: _title_of(chain[_held(chain, shared)])))
        chain, match = self._pick_chain(chains, _other_platform(event))
        if match is None:
            # Of a group, what no rule knows is the sub-exception, not the group.
            finding = self._fallback(context, event, chain[: _held(chain, shared) + 1])
        else:
            finding = self._explain(context, event, chain, match)
        others = [_title_of(other[_held(other, shared)]) for other in chains if other is not chain]
        if others:  # the group's other sub-exceptions
            held = "; ".join(_field(text) for text in others[:_MAX_OTHERS])
            more = f" and {len(others) - _MAX_OTHERS} more" if len(others) > _MAX_OTHERS else ""
            cause = f"{finding.root_cause} The same group also held: {held}{more}."
            finding = finding.model_copy(update={"root_cause": _clip(cause, 2000)})
        return finding

    # -- matching -------------------------------------------------------------------------

    def _pick_chain(
        self, chains: Sequence[tuple[_Exception, ...]], other: bool
    ) -> tuple[tuple[_Exception, ...], _Match | None]:
        """The chain to diagnose and its match: the only one; of a group's sub-exceptions,
        the first whose rule is a trigger, else the first of any rule, matched most
        specifically (the source line, else facts of the message); else the first."""
        if len(chains) == 1:
            return chains[0], self._pick(chains[0], other)
        best: tuple[tuple[bool, bool, bool], tuple[_Exception, ...], _Match] | None = None
        for chain in chains:  # of equals, the first wins
            match = self._pick(chain, other)
            if match is None:
                continue
            category = match.entry.rule.category
            rank = (category in _TRIGGERS, match.line_matched, bool(match.fields))
            if best is None or rank > best[0]:
                best = rank, chain, match
        return (best[1], best[2]) if best is not None else (chains[0], None)

    def _pick(self, chain: Sequence[_Exception], other: bool) -> _Match | None:
        """The match to explain ``chain`` by (``other``: the event is another platform's)."""
        matches = [m for i in range(len(chain)) if (m := self._match(chain, i, other)) is not None]
        for match in reversed(matches):
            if match.entry.rule.category in _TRIGGERS:
                return match
        for match in reversed(matches):
            if not match.entry.rule.wrapper or match is matches[0]:
                return match
        return None

    def _match(self, chain: Sequence[_Exception], index: int, other: bool) -> _Match | None:
        exc = chain[index]
        value = exc.value[:_MAX_VALUE]
        frame = _frame_of(chain, index)
        line = frame.line[:_MAX_LINE] if frame is not None and frame.line else None
        for entry, way in self._candidates_of(exc.type, exc.module, other):
            fields: dict[str, str] = {}
            if way.message is not None:
                found = way.message.search(value)
                if found is None:
                    continue
                fields = {name: text for name, text in found.groupdict().items() if text}
            groups = _read_line(entry, line, fields) if line and entry.lines else None
            if groups is None and entry.rule.needs_line:
                continue
            if groups:
                fields = groups | fields
            return _Match(entry, way, index, frame, fields, groups is not None)
        return None

    def _candidates_of(
        self, type_name: str, module: str | None, other: bool
    ) -> tuple[tuple[_Entry, _Way], ...]:
        """The rules that may match this exception type, each with the way it may, in the
        knowledge base's order (``other``: also the other platforms' ways)."""
        key = (type_name, module, other)
        known = self._candidates.get(key)
        if known is None:
            if other:
                type_name, module = _dotted(type_name, module)
            prefix, _, name = type_name.rpartition(".")
            hits = self._ways_of(name, module or prefix or None, other)
            known = tuple(
                (self._entries[index], self._entries[index].ways[way])
                for index, way in sorted(hits)
            )
            if len(self._candidates) >= _CACHE_SIZE:
                self._candidates.clear()
            self._candidates[key] = known
        return known

    def _ways_of(self, name: str, module: str | None, other: bool) -> set[tuple[int, int]]:
        """The (entry, way) pairs whose types take ``name`` from ``module``: the rules' own
        ways, and with ``other`` the other platforms' too, whose qualified names need the
        module known ("Timeout.Error" is not any "Error")."""
        hits = {(index, way) for index, way in self._any if other or not way}
        if not name:
            return hits
        for index, way, wanted in self._names.get(name, ()):
            if (other or not way) and _within(module, wanted, known=way > 0):
                hits.add((index, way))
        for index, way, wanted, glob in self._globs:
            if (
                (other or not way)
                and glob.fullmatch(name)
                and _within(module, wanted, known=way > 0)
            ):
                hits.add((index, way))
        return hits

    def _rule_of_title(self, title: str, other: bool) -> str:
        match = self._pick(_chain_of_title(title), other)
        return match.entry.rule.id if match is not None else "fallback"

    # -- health checks --------------------------------------------------------------------

    def _diagnose_health(self, context: IssueContext, evidence: HealthEvidence) -> Finding:
        fields = _health_fields(evidence, None)
        for entry in self._health:
            matched, condition = _health_match(entry, evidence)
            if not matched:
                continue
            fields = _health_fields(evidence, condition)
            rule, confidence = entry.rule, _SPECIFIC
            cause, _ = _render(entry.causes, fields)
            fix, _ = _render(entry.fixes, fields)
            break
        else:
            rule = _HEALTH_FALLBACK
            known = evidence.error_kind is not None or bool(evidence.failing)
            confidence = _GUESSED if known else _UNKNOWN
            cause = f"{fields['check']} is down ({fields['failures']} failures in a row)"
            cause += f": {fields['error']}." if "error" in fields else "."
            cause += " No rule of the heuristic knowledge base explains this evidence."
            fix = (
                "Read the check's latest results (their conditions, error and timings) and "
                "the service's own logs from when it started failing."
            )
        rank = SEVERITIES.index(rule.severity)
        if context.issue.level == "critical":  # the check's own severity
            rank = max(rank, SEVERITIES.index("high"))
        return Finding(
            analyser="heuristic",
            rule=rule.id,
            root_cause=_clip(cause, 2000),
            confidence=confidence,
            category=rule.category,
            severity=SEVERITIES[rank],
            suggested_fix=_clip(fix, 4000),
            fix_kind=rule.fix_kind,
            evidence=_health_evidence(evidence),
            risks=fix_risks(fix, None),
        )

    # -- the finding ----------------------------------------------------------------------

    def _explain(
        self,
        context: IssueContext,
        event: Mapping[str, Any],
        chain: Sequence[_Exception],
        match: _Match,
    ) -> Finding:
        entry, exc, frame = match.entry, chain[match.index], match.frame
        facts = dict(match.fields)
        _read_details(entry, exc.value[:_MAX_VALUE], facts, _other_platform(event))
        if entry.repeated:
            repeated = _repeated(exc)
            if repeated:
                facts["repeated"] = repeated
        fields = {name: _field(text) for name, text in facts.items()}
        fields.update(_base_fields(context, event, exc, frame))
        cause, used = _render(entry.causes, fields)
        fix, _ = _render(match.way.fixes, fields)
        if not used & facts.keys():
            confidence = _SHAPE
        else:
            confidence = _HIGH if match.line_matched else _SPECIFIC
        if match.index != len(chain) - 1:
            cause += f" It surfaced as {_field(_title_of(chain[-1]))}."
        patch = _patch(entry.patch, frame, facts)
        if patch is not None and frame is not None:
            fix += (
                f" (The patch indents the line as a statement directly in {frame.function}: "
                "events carry source lines without their indentation.)"
            )
        evidence = _evidence(chain, match.index, frame)
        return self._finish(
            context,
            event,
            rule=entry.rule.id,
            category=entry.rule.category,
            severity=entry.rule.severity,
            confidence=confidence,
            cause=cause,
            fix=fix,
            fix_kind=entry.rule.fix_kind,
            patch=patch,
            evidence=evidence,
        )

    def _fallback(
        self, context: IssueContext, event: Mapping[str, Any], chain: Sequence[_Exception]
    ) -> Finding:
        exc = chain[-1] if chain else None
        frame = _frame_of(chain, len(chain) - 1) if chain else None
        where = _base_fields(context, event, exc, frame)["where"]
        category: Category = "unknown"
        for pattern, guess in self._guesses:
            if exc is not None and exc.type and pattern.search(exc.type.rpartition(".")[2]):
                category = guess
                break
        if exc is None:
            cause = f"Issue #{context.issue.id} has no event to read: nothing to diagnose from."
        elif exc.type:
            cause = (
                f"{where} raised {_field(_title_of(exc))}. No rule of the heuristic knowledge "
                "base knows this error: this says where it happened, not why."
            )
        else:
            cause = (
                f"{where} logged {_field(exc.value)!r} without an exception. No rule of the "
                "heuristic knowledge base knows this message."
            )
        if category != "unknown":
            cause += f" Its type's name suggests {category.replace('_', ' ')}."
        place = _location(frame) if frame is not None else where
        # Nothing says where (no frame, culprit or logger): _base_fields says "the code".
        at = "that raised or logged it" if place == _field("the code") else f"at {place}"
        fix = (
            f"Read the code {at} with the error's message and context in mind; the "
            "cause needs an LLM analysis or a person."
        )
        return self._finish(
            context,
            event,
            rule="fallback",
            category=category,
            severity="medium",
            confidence=_GUESSED if category != "unknown" else _UNKNOWN,
            cause=cause,
            fix=fix,
            fix_kind=None,
            patch=None,
            evidence=_evidence(chain, len(chain) - 1, frame) if chain else [],
        )

    def _finish(
        self,
        context: IssueContext,
        event: Mapping[str, Any],
        *,
        rule: str,
        category: Category,
        severity: Severity,
        confidence: float,
        cause: str,
        fix: str,
        fix_kind: FixKind | None,
        patch: str | None,
        evidence: list[Evidence],
    ) -> Finding:
        """The learning loop and the severity policy, then the Finding itself."""
        notes: list[str] = []
        doubted = False
        for past in context.similar:
            if len(notes) < _MAX_SIMILAR and past.resolution_note:
                notes.append(
                    f"A similar issue #{past.id} was resolved with: "
                    f"{_clip(past.resolution_note, _MAX_NOTE)}"
                )
            elif len(notes) < _MAX_SIMILAR and past.verdict == "right" and past.suggested_fix:
                notes.append(
                    f"The finding on a similar issue #{past.id} was confirmed right; it said: "
                    f"{_clip(past.suggested_fix, _MAX_NOTE)}"
                )
            if doubted or past.verdict != "wrong":
                continue
            if self._rule_of_title(past.title, _other_platform(event)) == rule:
                doubted = True
                said = f" ({_clip(past.verdict_note, _MAX_NOTE)})" if past.verdict_note else ""
                notes.append(
                    f"Caution: a finding of this kind on a similar issue #{past.id} was marked "
                    f"wrong{said}, so this one is less certain."
                )
                confidence = max(_FLOOR, confidence - _WRONG_PENALTY)
                evidence.append(
                    Evidence(
                        location=f"issue #{past.id}",
                        line=_clip(past.title, 1000),
                        note="a similar issue where this rule's finding was marked wrong",
                    )
                )
        for note in notes:
            fix = f"{fix} {note}"
        fix = _clip(fix, 4000)
        return Finding(
            analyser="heuristic",
            rule=rule,
            root_cause=_clip(cause, 2000),
            confidence=round(confidence, 2),
            category=category,
            severity=_severity(severity, context, event),
            suggested_fix=fix,
            fix_patch=patch,
            fix_kind=fix_kind,
            evidence=evidence[:_MAX_EVIDENCE],
            # The patch keeps the event's own line (and the fix may quote it): text from events.
            risks=fix_risks(fix, patch),
        )


# -- compiling the knowledge base ------------------------------------------------------------


def _compile(rule: Rule) -> _Entry:
    def fail(problem: str) -> ValueError:
        return ValueError(f"rule {rule.id!r}: {problem}")

    if rule.category not in CATEGORIES or rule.severity not in SEVERITIES:
        raise fail("unknown category or severity")
    if rule.fix_kind is not None and rule.fix_kind not in _FIX_KINDS:
        raise fail(f"unknown fix kind {rule.fix_kind!r}")
    if rule.patch is not None and rule.patch not in PATCHES:
        raise fail(f"unknown patch {rule.patch!r}")
    if not rule.cause or not rule.fix:
        raise fail("a rule needs a cause and a fix")
    try:
        message = re.compile(rule.message) if rule.message is not None else None
        # A line that refers to message fields is compiled per call, once they are known.
        tried = [re.compile(_REFERENCE.sub("x", source)) for source in rule.lines]
    except re.error as exc:
        raise fail(f"bad regex: {exc}") from exc
    message_fields = frozenset(message.groupindex if message is not None else ())
    line_fields = frozenset(name for pattern in tried for name in pattern.groupindex)
    lines = []
    for source, pattern in zip(rule.lines, tried, strict=True):
        references = tuple(_REFERENCE.findall(source))
        if not set(references) <= message_fields:
            raise fail(f"{source!r} refers to a field the message does not have")
        lines.append(_LinePattern(source, None if references else pattern, references))
    causes = tuple(_template(text, fail) for text in rule.cause)
    fixes = tuple(_template(text, fail) for text in rule.fix)
    other_fixes = tuple(_template(text, fail) for text in rule.other_fix) or fixes
    known = BASE_FIELDS | _COMPUTED | message_fields | line_fields | DETAILS.keys()
    templates = causes + fixes + other_fixes
    used = frozenset(name for template in templates for name in template.fields)
    if not used <= known:
        raise fail(f"unknown template fields {sorted(used - known)}")
    sure = BASE_FIELDS | message_fields | ({"line"} if rule.needs_line else set())
    if not (causes[-1].fields | fixes[-1].fields | other_fixes[-1].fields) <= sure:
        raise fail("the last cause and fix may use only base fields and the message's")
    detailed = used - message_fields - line_fields
    return _Entry(
        rule=rule,
        ways=(_Way(rule.types, message, fixes), *_other_ways(rule, message_fields, other_fixes)),
        lines=tuple(lines),
        details=_compile_details(DETAILS, detailed),
        other_details=_compile_details(OTHER_DETAILS, detailed),
        causes=causes,
        repeated="repeated" in used,
        patch=PATCHES[rule.patch] if rule.patch is not None else None,
    )


def _other_ways(
    rule: Rule, message_fields: frozenset[str], fixes: tuple[_Template, ...]
) -> list[_Way]:
    """The ways ``rule`` matches other platforms' events, from its matchers."""
    ways = []
    for matcher in rule.other_platforms:
        if not matcher.types and matcher.message is None:
            raise ValueError(f"rule {rule.id!r}: a matcher needs types or a message")
        try:
            message = re.compile(matcher.message) if matcher.message is not None else None
        except re.error as exc:
            raise ValueError(f"rule {rule.id!r}: bad regex: {exc}") from exc
        extra = set(message.groupindex if message is not None else ()) - message_fields
        if extra:
            raise ValueError(
                f"rule {rule.id!r}: a matcher's groups {sorted(extra)} are not the rule's"
            )
        ways.append(_Way(matcher.types, message, fixes))
    return ways


def _compile_details(
    patterns: Mapping[str, tuple[tuple[str, str], ...]], names: Iterable[str]
) -> _Details:
    return tuple(
        (name, tuple((re.compile(pattern), template) for pattern, template in patterns[name]))
        for name in sorted(set(names) & patterns.keys())
    )


def _compile_health(rule: HealthRule) -> _HealthEntry:
    def fail(problem: str) -> ValueError:
        return ValueError(f"health rule {rule.id!r}: {problem}")

    if rule.category not in CATEGORIES or rule.severity not in SEVERITIES:
        raise fail("unknown category or severity")
    if rule.fix_kind is not None and rule.fix_kind not in _FIX_KINDS:
        raise fail(f"unknown fix kind {rule.fix_kind!r}")
    if not rule.cause or not rule.fix:
        raise fail("a rule needs a cause and a fix")
    if rule.id == _HEALTH_FALLBACK.id:
        raise fail("the id 'health-fallback' is taken")
    try:
        error = re.compile(rule.error, re.IGNORECASE) if rule.error is not None else None
        observed = re.compile(rule.observed) if rule.observed is not None else None
    except re.error as exc:
        raise fail(f"bad regex: {exc}") from exc
    causes = tuple(_template(text, fail) for text in rule.cause)
    fixes = tuple(_template(text, fail) for text in rule.fix)
    used = frozenset(name for template in causes + fixes for name in template.fields)
    if not used <= HEALTH_FIELDS:
        raise fail(f"unknown template fields {sorted(used - HEALTH_FIELDS)}")
    sure = _HEALTH_SURE | (_CONDITION_SURE if rule.placeholders else frozenset())
    if not (causes[-1].fields | fixes[-1].fields) <= sure:
        raise fail(f"the last cause and fix may use only {sorted(sure)}")
    return _HealthEntry(rule, error, observed, causes, fixes)


# Fields every health finding has (a missing target is named after the check), and those a
# rule on a condition has once it matched.
_HEALTH_SURE = frozenset({"check", "target", "failures"})
_CONDITION_SURE = frozenset({"condition", "observed"})
_HEALTH_FALLBACK = HealthRule(
    "health-fallback", "unknown", "medium", cause=("{check} is down.",), fix=("Look.",)
)


def _health_match(
    entry: _HealthEntry, evidence: HealthEvidence
) -> tuple[bool, HealthCondition | None]:
    """Whether ``entry`` explains ``evidence``, and the failing condition it matched."""
    rule = entry.rule
    if rule.error_kinds and evidence.error_kind not in rule.error_kinds:
        return False, None
    if entry.error is not None and not entry.error.search((evidence.error or "")[:_MAX_VALUE]):
        return False, None
    if not rule.placeholders:
        return True, None
    for condition in evidence.failing:
        text = condition.condition[:_MAX_LINE].upper()
        if not any(f"[{name}]" in text for name in rule.placeholders):
            continue
        if entry.observed is None or entry.observed.match(condition.observed.strip()[:_MAX_LINE]):
            return True, condition
    return False, None


def _health_fields(evidence: HealthEvidence, condition: HealthCondition | None) -> dict[str, str]:
    check = _field(evidence.check) or "the check"
    fields = {
        "check": check,
        "target": _field(evidence.target or "") or f"what {check} checks",
        "failures": str(evidence.failures),
    }
    for name in ("check_kind", "error", "error_kind"):
        if value := _field(getattr(evidence, name) or ""):
            fields[name] = value
    if condition is not None:
        fields["condition"] = _field(condition.condition)
        fields["observed"] = _field(condition.observed) or "?"
        if (left := _time_left(condition.observed)) is not None:
            fields["left"] = left
    return fields  # the evidence's text has no control characters (HealthEvidence)


def _time_left(observed: str) -> str | None:
    """A certificate's seconds left, as the probe observed them, in words: "9d12h"."""
    try:
        seconds = float(observed.strip())
    except ValueError:
        return None
    if not 0 <= seconds < 1e9:
        return "no time" if seconds < 0 else None
    unit = 3600 if seconds >= 86400 else 60  # days and hours, or hours and minutes
    return format_duration(round(seconds / unit) * unit) if seconds >= 60 else "under a minute"


def _health_evidence(evidence: HealthEvidence) -> list[Evidence]:
    check = evidence.check or "?"
    where = f"check {check} ({evidence.check_kind})" if evidence.check_kind else f"check {check}"
    if evidence.target:
        where += f" on {evidence.target}"
    where = _clip(where, 600)
    items: list[tuple[str | None, str]] = []  # (line, note)
    if evidence.error:
        why = f": {evidence.error_kind}" if evidence.error_kind else ""
        items.append((evidence.error, f"the probe failed{why}"))
    for condition in evidence.failing[: _MAX_EVIDENCE - 2]:
        line = f"{condition.condition} (observed: {condition.observed})"
        items.append((line, "a condition that did not hold"))
    if evidence.timings:
        line = ", ".join(f"{phase} {value:g}" for phase, value in evidence.timings.items())
        items.append((line, "the probe's timings, in seconds"))
    if evidence.failures:
        items.append((None, f"{evidence.failures} failed results in a row made the check down"))
    return [
        Evidence(
            location=where,
            line=_clip(line, 1000) if line else None,
            note=_clip(note, 1000),
        )
        for line, note in items
    ]


def _template(text: str, fail: Callable[[str], ValueError]) -> _Template:
    fields = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise fail(f"template field {name!r} in {text!r}: plain names only")
        fields.add(name)
    return _Template(text, frozenset(fields))


def _other_platform(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` comes from another language than Python (its ``platform`` says)."""
    platform = event.get("platform")
    return isinstance(platform, str) and platform not in ("", "python")


def _dotted(type_name: str, module: str | None) -> tuple[str, str | None]:
    """Another language's exception type and module as the rules name them: namespaces with
    dots (Ruby's ``Net::ReadTimeout``, PHP's ``GuzzleHttp\\Exception\\ConnectException``),
    Go's pointer types without their star (``*net.OpError``); a .NET assembly's display name
    (``System.Net.Http, Version=8.0.0.0, ...``) is no module."""
    name = type_name.lstrip("*").replace("::", ".").replace("\\", ".")
    if module is not None and ("," in module or " " in module):
        module = None
    elif module:
        module = module.replace("::", ".").replace("\\", ".")
    return name, module


def _within(module: str | None, prefix: str, *, known: bool = False) -> bool:
    """Whether ``module`` is ``prefix`` or below it; an unknown module may be anything,
    unless it must be ``known``."""
    if not prefix:
        return True
    if module is None:
        return not known
    return module == prefix or module.startswith(prefix + ".")


# -- reading the event -----------------------------------------------------------------------


def _newest(
    context: IssueContext,
) -> tuple[Mapping[str, Any], tuple[tuple[_Exception, ...], ...], int]:
    """The newest event with an exception, else the newest with a message, else the title;
    with its chains and how many exceptions they share at their end (see _chains_of)."""
    logged: tuple[Mapping[str, Any], tuple[tuple[_Exception, ...], ...], int] | None = None
    for event in context.events:
        chains, shared = _chains_of(event)
        if chains[0] and chains[0][-1].type:
            return event, chains, shared
        if chains[0] and logged is None:
            logged = event, chains, shared
    return logged or ({}, (_chain_of_title(context.issue.title),), 0)


def _chains_of(event: Mapping[str, Any]) -> tuple[tuple[tuple[_Exception, ...], ...], int]:
    """The event's chain, and 0. For a chain with an exception group: the chain of each
    exception the group holds (nested groups opened, repeats left out), each followed by the
    group and what it caused, and the number of those that follow."""
    raw = event.get("exceptions")
    items = raw if isinstance(raw, list) else []
    if not all(isinstance(item, Mapping) for item in items):
        items = [item for item in items if isinstance(item, Mapping)]
    if not items:
        message = _text(event.get("message"))
        return ((_Exception("", None, message, ()),) if message.strip() else (),), 0
    tree = ExceptionTree.of(items)
    plain = tree.chain(tree.raised)
    paths, shared = [plain], 0
    for position in range(len(plain) - 1, -1, -1):  # the group nearest the raised exception
        if tree.members[plain[position]]:
            rest = plain[position:]
            paths = [tree.chain(leaf) + rest for leaf in tree.leaves(plain[position])]
            shared = len(rest)
            break
    chains: dict[tuple[_Exception, ...], None] = {}
    for path in paths[:_MAX_GROUPED]:
        chain = tuple(exc for i in path[-_MAX_CHAIN:] if (exc := _exception(items[i])) is not None)
        chains.setdefault(chain, None)
    return tuple(chains), shared


def _held(chain: Sequence[_Exception], shared: int) -> int:
    """The index in ``chain`` of the group's sub-exception it was made for (its last when
    ``shared`` is 0: not a group's)."""
    return max(len(chain) - shared - 1, 0) if shared else len(chain) - 1


def _chain_of_title(title: str) -> tuple[_Exception, ...]:
    """An issue title, ``"Type: value"`` or a message, as a chain of one without frames."""
    found = _TITLE.fullmatch(title)
    if found is not None and (found[2] is not None or title.endswith(("Error", "Exception"))):
        return (_Exception(found[1], None, found[2] or "", ()),)
    return (_Exception("", None, title, ()),) if title.strip() else ()


def _exception(item: object) -> _Exception | None:
    if not isinstance(item, Mapping):
        return None
    raw = item.get("frames")
    frames = raw[-_MAX_FRAMES:] if isinstance(raw, list) else []
    type_name = _text(item.get("type")).strip()
    return _Exception(
        type_name or "Exception",
        _text(item.get("module")) or None,
        _text(item.get("value")),
        tuple(frame for frame in map(_frame, frames) if frame is not None),
    )


def _frame(item: object) -> _Frame | None:
    if not isinstance(item, Mapping):
        return None
    lineno = item.get("lineno")
    source = _text(item.get("context_line"))
    line = source.strip()
    return _Frame(
        filename=_text(item.get("filename")),
        module=_text(item.get("module")) or None,
        function=_text(item.get("function")) or "?",
        lineno=lineno if type(lineno) is int and lineno > 0 else None,
        line=line or None,
        indent=source[: len(source) - len(source.lstrip())] if line else "",
        in_app=item.get("in_app") is True,
    )


def _text(value: object) -> str:
    """A string of the event as text a Finding may hold: lone surrogates replaced."""
    if not isinstance(value, str):
        return ""
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _frame_of(chain: Sequence[_Exception], index: int) -> _Frame | None:
    """The innermost in-app frame of the exception, else of the nearest one raised after it
    (a cause that was never raised has no frames); else its innermost frame of any kind."""
    for exc in chain[index:]:
        for frame in reversed(exc.frames):
            if frame.in_app:
                return frame
    for exc in chain[index:]:
        if exc.frames:
            return exc.frames[-1]
    return None


def _read_line(entry: _Entry, line: str, fields: Mapping[str, str]) -> dict[str, str] | None:
    for pattern in entry.lines:
        compiled = pattern.compiled
        if compiled is None:
            if not all(name in fields for name in pattern.references):
                continue
            compiled = re.compile(
                _REFERENCE.sub(lambda ref: _as_code(fields[ref[1]]), pattern.source)
            )
        found = compiled.search(line)
        if found is not None:
            return {name: text for name, text in found.groupdict().items() if text}
    return None


def _as_code(text: str) -> str:
    """A regex for ``text`` as source code writes it: the repr ``'k'`` also as ``"k"``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return re.escape(text)
    if not isinstance(value, str):
        return re.escape(text)
    forms = {text, repr(value)}
    if not any(char in value for char in "'\"\\"):
        forms |= {f"'{value}'", f'"{value}"'}
    return "(?:" + "|".join(re.escape(form) for form in sorted(forms)) + ")"


def _read_details(entry: _Entry, value: str, facts: dict[str, str], other: bool) -> None:
    """The facts the templates ask for, read from an exception's value (``other``: the
    other platforms' patterns first)."""
    for name, patterns in (*entry.other_details, *entry.details) if other else entry.details:
        if name in facts:
            continue
        for pattern, template in patterns:
            found = pattern.search(value)
            if found is not None:
                facts[name] = template.format(*found.groups(default=""))
                break


def _repeated(exc: _Exception) -> str | None:
    """The function that recursion repeats: the most frequent in-app frame, 3 times or more."""
    frames = [frame for frame in exc.frames if frame.in_app] or list(exc.frames)
    counts = Counter((frame.module, frame.function) for frame in frames)
    if not counts:
        return None
    (module, function), times = counts.most_common(1)[0]
    if times < 3:
        return None
    return f"{module}.{function}" if module else function


# -- writing the finding ---------------------------------------------------------------------


def _base_fields(
    context: IssueContext,
    event: Mapping[str, Any],
    exc: _Exception | None,
    frame: _Frame | None,
) -> dict[str, str]:
    where = _where(frame) if frame is not None else ""
    where = where or context.issue.culprit or _text(event.get("logger")) or "the code"
    fields = {
        "where": _field(where),
        "type": _field(exc.type if exc is not None and exc.type else "the error"),
        "service": _field(context.issue.service),
    }
    if exc is not None and exc.value.strip():
        fields["value"] = _field(exc.value)
    if frame is not None:
        fields["function"] = _field(frame.function)
        if frame.line:
            fields["line"] = _field(frame.line)
    return fields


def _render(
    templates: Sequence[_Template], fields: Mapping[str, str]
) -> tuple[str, frozenset[str]]:
    """The first template whose fields are all known, filled in, and the fields it used.

    The last one is used in any case, with "?" for a message field that matched nothing.
    """
    for template in templates:
        if template.fields <= fields.keys():
            return template.text.format_map(fields), template.fields
    last = templates[-1]
    return last.text.format_map(_Unknown(fields)), last.fields & fields.keys()


class _Unknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _patch(patch: Patch | None, frame: _Frame | None, facts: Mapping[str, str]) -> str | None:
    if patch is None or frame is None or not frame.in_app or frame.lineno is None:
        return None
    line = frame.line
    if not line or not frame.filename or len(line) >= _MAX_LINE:
        return None
    new = patch(line, facts)
    if new is None or new == line:
        return None
    # A line sent without its indentation is taken to be directly in its function's body.
    indent = frame.indent or indentation(frame.function)
    path = relative_path(frame.filename, frame.module)
    return diff(path, frame.lineno, indent + line, indent + new)


def _evidence(chain: Sequence[_Exception], index: int, frame: _Frame | None) -> list[Evidence]:
    exc = chain[index]
    evidence = []
    if frame is not None:
        note = f"where {exc.type} was raised" if exc.type else "where the error was logged"
        if frame not in exc.frames:
            note = f"the application's code nearest to where {exc.type} was raised"
        evidence.append(Evidence(location=_location(frame), line=_line(frame), note=note))
        caller = _caller(exc, frame)
        if caller is not None:
            evidence.append(
                Evidence(location=_location(caller), line=_line(caller), note="called from here")
            )
    if exc.value.strip():
        evidence.append(
            Evidence(
                location="message",
                line=_clip(_title_of(exc), 1000),
                note="the exception diagnosed" if exc.type else "the log message",
            )
        )
    if index != len(chain) - 1:
        raised = chain[-1]
        place = _frame_of(chain, len(chain) - 1)
        evidence.append(
            Evidence(
                location=_location(place) if place is not None else "message",
                line=_clip(_title_of(raised), 1000),
                note=f"raised after {exc.type} in the same chain: what was logged",
            )
        )
    return evidence


def _caller(exc: _Exception, frame: _Frame) -> _Frame | None:
    """The in-app frame that called ``frame``, when it is one of the exception's."""
    frames = exc.frames
    if frame not in frames:
        return None
    position = len(frames) - 1 - frames[::-1].index(frame)
    return next((f for f in reversed(frames[:position]) if f.in_app), None)


def _severity(base: Severity, context: IssueContext, event: Mapping[str, Any]) -> Severity:
    rank = SEVERITIES.index(base)
    issue = context.issue
    if issue.times_seen >= _FREQUENT or issue.regressions > 0 or context.trigger == "regression":
        rank += 1
    if issue.level == "critical" or event.get("level") == "critical":
        rank = max(rank, SEVERITIES.index("high"))
    return SEVERITIES[min(rank, len(SEVERITIES) - 1)]


def _where(frame: _Frame) -> str:
    return f"{frame.module}.{frame.function}" if frame.module else frame.function


def _location(frame: _Frame) -> str:
    name = frame.filename.replace("\\", "/").rpartition("/")[2]
    place = f"{name}:{frame.lineno}" if frame.lineno else name
    return _clip(f"{_where(frame)} ({place})" if place else _where(frame), 600)


def _line(frame: _Frame) -> str | None:
    return _clip(frame.line, 1000) if frame.line else None


def _title_of(exc: _Exception) -> str:
    value = " ".join(exc.value.split())
    if not exc.type:
        return value
    return f"{exc.type}: {value}" if value else exc.type


def _field(text: str) -> str:
    """A value as it may stand in a sentence: one line, at most 200 characters."""
    return _clip(" ".join(text.split()), _MAX_FIELD)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
