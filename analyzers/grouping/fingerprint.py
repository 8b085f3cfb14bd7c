"""Grouping: the fingerprint that puts an ErrorEvent into an issue, and the issue's title.

Pure functions over ErrorEvent v1 wire dicts, no I/O. Sentry's default grouping is the
reference. An event groups by, in order of preference:

- ``custom``: the event's own ``fingerprint`` list, where ``"{{ default }}"`` stands for the
  components of the default grouping below;
- ``stacktrace``: over the whole exception chain, each exception's type (with its module) and
  its in-app frames' module, function and source line; library frames only when no exception of
  the chain has an in-app frame. Never line numbers, paths or exception values, so a deploy, a
  release or other data does not split an issue. Recursion is collapsed, generated names are
  normalised;
- ``message``: when no exception has a frame, the logger and the message with its variable
  parts parameterised, and each exception's type and parameterised value.

An exception group that was raised (``ExceptionGroup``, ``asyncio.TaskGroup``'s) groups by what
it holds, as Sentry does: its sub-exceptions, nested groups opened, are compared by their own
components; when they are all one kind, the event groups (and is titled) as that sub-exception
and its causes alone; otherwise by one of each kind, sorted, and the group itself. So the same
failure groups the same whatever the order its tasks failed in, and two unrelated failures of
one TaskGroup make two issues.

Frames of other languages (an event's ``platform``: node, javascript, java, csharp, go, php,
ruby...) count as Sentry's default grouping reads that language's frames (_platforms.py): by
module or file name, function and, where the language's source lines are trustworthy, the line,
with that language's generated names normalised; Python events, with platform "python" or none,
group as they always have.

The hash covers the service and the components, so grouping is per service. It does not cover
the algorithm version: a later version that yields the same components keeps the same hash, and
one that does not records its own version beside every hash it makes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from mendline.analyzers.grouping._platforms import (
    FrameRules,
    default_in_app,
    frame_culprit,
    rules_for,
)
from mendline.schemas.event import ExceptionTree

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_PLACEHOLDER",
    "Grouping",
    "culprit",
    "default_in_app",
    "fingerprint",
    "parameterize",
    "title",
]

#: Bumped whenever a change of this module changes any hash; recorded in every Grouping.
ALGORITHM_VERSION: int = 1
#: In a custom fingerprint, stands for the default grouping's components.
DEFAULT_PLACEHOLDER = "{{ default }}"


@dataclass(frozen=True, slots=True)
class Grouping:
    """Which issue an event belongs to, and why."""

    #: 32 lowercase hex digits: blake2b (16 bytes) over the service and the components.
    hash: str
    #: The ALGORITHM_VERSION that made this grouping.
    version: int
    #: "stacktrace", "message" or "custom".
    basis: str
    #: The human-readable parts that were hashed, in order (for explaining a grouping).
    components: tuple[str, ...]


_TITLE_LENGTH = 200
# Sentry's rule: longer source lines are minified or generated code that changes with every
# build, so such a frame groups by module and function alone.
_MAX_CONTEXT_LINE = 120
# Recursion through a cycle of up to this many frames (a->b->a->b, parsers' a->b->c->a) collapses.
_MAX_CYCLE = 8
_CACHE_SIZE = 8192
# Messages and values longer than this are parameterised on every event, not remembered.
_CACHE_TEXT_LENGTH = 512

_HEX = "[0-9a-fA-F]"
_START = "(?<![A-Za-z0-9])"
_END = "(?![A-Za-z0-9])"
_IPV6_GROUP = rf"{_HEX}{{1,4}}"
_NUMBER_REST = r"\d*+(?:(?:\.\d++)++(?:[eE][-+]?\d++)?|[eE][-+]?\d++)"
# What an email's first character may be, after the character before it was checked.
_EMAIL_REST = r"(?<![_.+-].)[\w.+-]*+@[\w-]++(?:\.[\w-]++)+"

# The variable parts of a message, in order of precedence where two start at the same place (a
# quoted IP is a string, a date is not three numbers). A variable part starts after a character
# that is neither a letter nor a digit ("order_123" and "job-123" hold a number, "sha256" does
# not, nor "v1.2.3"). Each is written as its first character's class and the rest, so that the
# regex engine rejects most alternatives on that one character: this runs on every new message.
# (placeholder, first character, rest); rests look behind at the character before the first.
_PARTS: tuple[tuple[str, str, str], ...] = (
    ("<str>", "'", r"""(?<![_'"]')[^'\n]*+'(?!\w)"""),
    ("<str>", '"', r"""(?<![_'"]")[^"\n]*+"(?!\w)"""),
    (
        "<datetime>",
        r"\d",
        r"\d{3}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d++)?)?(?:Z|[+-]\d\d:?\d\d(?!\d))?",
    ),
    ("<date>", r"\d", r"\d{3}-\d\d-\d\d(?!\d)"),
    ("<time>", r"\d", r"\d:\d\d:\d\d(?:[.,]\d++)?(?!\d)"),
    ("<uuid>", _HEX, rf"{_HEX}{{7}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}{_END}"),
    ("<ip>", r"\d", r"\d{0,2}+(?:\.\d{1,3}+){3}(?![A-Za-z0-9]|\.\d)"),
    ("<hex>", "0", rf"[xX]{_HEX}++{_END}"),
    # Hex ids hold a digit and a letter: neither words ("deadbeef") nor plain numbers.
    ("<hex>", r"\d", rf"(?=\d*+[a-fA-F]){_HEX}{{7,}}+{_END}"),
    ("<hex>", "[a-fA-F]", rf"(?=[a-fA-F]*+\d){_HEX}{{7,}}+{_END}"),
    ("<email>", r"[\w.+-]", _EMAIL_REST),
    ("<float>", "[-+]", rf"(?<!\.[-+])\d{_NUMBER_REST}"),
    ("<float>", r"\d", rf"(?<!\.\d){_NUMBER_REST}"),
    ("<int>", "[-+]", r"(?<!\.[-+])\d++"),
    ("<int>", r"\d", r"(?<!\.\d)\d*+"),
)
# IPv6 is tried first where it may occur at all: no other part holds "::" or seven colons.
_IPV6 = rf"""(?<![_:.])(?=[0-9a-fA-F:]*\d)(?:
    (?:{_IPV6_GROUP}:){{7}}{_IPV6_GROUP}
  | (?:{_IPV6_GROUP}:){{1,7}}:(?:{_IPV6_GROUP}(?::{_IPV6_GROUP}){{0,5}})?
  | ::{_IPV6_GROUP}(?::{_IPV6_GROUP}){{0,6}}
)(?![\w:])"""
# The first-character classes the regex branches on, each with a character standing for it:
# every part's first character class either holds the whole class or none of it.
_FIRSTS = (
    ("'", "'"),
    ('"', '"'),
    ("0", "0"),
    ("[1-9]", "1"),
    ("[a-fA-F]", "a"),
    ("[g-zG-Z_]", "g"),
    ("[-+]", "-"),
    (r"\.", "."),
)


def _variable_parts(email: bool, ipv6: bool) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The regex of the variable parts, and the placeholder of each of its marker groups.

    Group 1 is the character before the part, kept by the replacement; every alternative ends
    in an empty group whose number says which part matched. Leaving out the alternatives that
    cannot match (no "@", no IPv6) saves trying them at every word.
    """
    placeholders = ["", ""]
    branches = []
    if ipv6:
        branches.append(_IPV6 + "()")
        placeholders.append("<ip>")
    for first, example in _FIRSTS:
        rests = []
        for placeholder, part_first, rest in _PARTS:
            if placeholder == "<email>" and not email:
                continue
            if re.fullmatch(part_first, example):
                rests.append(rest + "()")
                placeholders.append(placeholder)
        if rests:
            branches.append(f"{first}(?:{'|'.join(rests)})")
    pattern = re.compile(rf"([^A-Za-z0-9])(?:{'|'.join(branches)})", re.VERBOSE)
    return pattern, tuple(placeholders)


_VARIABLES = {(e, i): _variable_parts(e, i) for e in (False, True) for i in (False, True)}
# A message without any of these has no variable part.
_MAYBE_VARIABLE = re.compile(r"""[\d'"@]""")

# Parts of module, function, file and logger names that code generation and temp files vary:
# jinja's "_jinja2_module_templates_7f3a1b2c4d50", tempfile's "tmpab12cd34", addresses, ids.
# A hex run needs no letter here: an id printed in hex may happen to be all digits.
_GENERATED = re.compile(
    rf"""
    (?P<uuid>{_START}{_HEX}{{8}}[-_]?{_HEX}{{4}}[-_]?{_HEX}{{4}}[-_]?{_HEX}{{4}}[-_]?{_HEX}{{12}}
        {_END})
  | (?P<hex>{_START}(?:0[xX]{_HEX}++|(?=[a-fA-F]*+\d){_HEX}{{8,}}+){_END})
  | (?P<tmp>(?<![A-Za-z0-9_])tmp[a-z0-9_]{{6,10}}+(?![A-Za-z0-9_]))
  | (?P<int>\d{{4,}}+)
    """,
    re.VERBOSE,
)
_GENERATED_PLACEHOLDERS = {"uuid": "<uuid>", "hex": "<hex>", "tmp": "<tmp>", "int": "<int>"}

# Caches of component strings, cleared when full: the recurring frames, types and message
# templates that make them worthwhile are back after a few events.
_frames: dict[tuple[str | None, ...], str] = {}
_types: dict[tuple[str, str | None], str] = {}
_texts: dict[str, str] = {}
_cycles: dict[tuple[str, ...], tuple[str, ...]] = {}


def fingerprint(event: Mapping[str, Any]) -> Grouping:
    """Group an ErrorEvent v1 wire dict (already validated): which issue it belongs to."""
    custom = event.get("fingerprint")
    if custom:
        basis, components = _custom(event, custom)
    else:
        basis, components = _default(event)
    return Grouping(_digest(event["service"], components), ALGORITHM_VERSION, basis, components)


def parameterize(message: str) -> str:
    """Replace the variable parts of a message with placeholders such as ``<int>``.

    Numbers, UUIDs, hex ids and addresses, IPv4 and IPv6 addresses, emails, ISO timestamps,
    dates and times, and quoted values: ``"user 42 at 10.0.0.1"`` gives ``"user <int> at <ip>"``.
    """
    if _MAYBE_VARIABLE.search(message) is None:
        return message
    pattern, placeholders = _VARIABLES["@" in message, "::" in message or message.count(":") >= 7]

    def placeholder(match: re.Match[str]) -> str:
        return match[1] + placeholders[match.lastindex or 0]

    # The leading space stands for the start: the regex consumes the character before a part.
    return pattern.sub(placeholder, " " + message)[1:]


def title(event: Mapping[str, Any]) -> str:
    """The issue title: ``"Type: value"`` of the raised exception, else the message.

    The value is put on one line and cut to about 200 characters; the message is parameterised.
    A raised exception group is titled by what it holds: ``"ValueError: bad amount (in
    ExceptionGroup)"`` for one kind of sub-exception, ``"ExceptionGroup of KeyError,
    ValueError: ..."`` (with the group's value) for several.
    """
    exceptions = event.get("exceptions")
    if exceptions:
        chosen, group = _grouped_by(exceptions, rules_for(event.get("platform")))
        if group is None:
            raised = exceptions[-1]
            value = _cut(" ".join(str(raised.get("value") or "").split()))
            return f"{raised['type']}: {value}" if value else str(raised["type"])
        if chosen[-1] is not group:
            one = chosen[-1]
            return _titled(str(one["type"]), one.get("value"), f" (in {group['type']})")
        kinds = ", ".join(sorted({str(exc["type"]) for exc in chosen[:-1]}))
        return _titled(f"{group['type']} of {kinds}", group.get("value"))
    message = _cut(" ".join(parameterize(event.get("message") or "").split()))
    return message or "<no message>"


def _titled(name: str, value: object, suffix: str = "") -> str:
    text = " ".join(str(value or "").split())
    if not text:
        return _cut(name + suffix)
    room = max(_TITLE_LENGTH - len(name) - len(suffix) - 2, 20)
    return _cut(f"{name}: {_cut(text, room)}{suffix}")


def culprit(event: Mapping[str, Any]) -> str | None:
    """Where the error happened: the innermost in-app frame of the raised exception.

    Falls back to the innermost in-app frame of the nearest cause, then to the innermost frame
    of any exception. ``"module.function"``, or ``"filename in function"`` for a frame without
    a module; None when no exception has a frame. A browser script's frame is named by the
    module made from its URL (``"main.onClick"``), a .NET function without its parameters.
    A raised exception group is read as it is grouped: where its one kind of sub-exception was
    raised, else where the group was.
    """
    platform = event.get("platform")
    rules = rules_for(platform)
    chain: Sequence[Mapping[str, Any]] = _grouped_by(event.get("exceptions") or (), rules)[0]
    frame: Mapping[str, Any] | None = None
    for exc in reversed(chain):
        frame = next((f for f in reversed(exc.get("frames") or ()) if f["in_app"]), None)
        if frame is not None:
            break
    else:
        for exc in reversed(chain):
            frames = exc.get("frames")
            if frames:
                frame = frames[-1]
                break
    if frame is None:
        return None
    if rules is not None:
        return frame_culprit(rules.platform, frame)
    module = frame.get("module")
    if module:
        return f"{module}.{frame['function']}"
    return f"{frame['filename']} in {frame['function']}"


def _grouped_by(
    exceptions: Sequence[Mapping[str, Any]], rules: FrameRules | None
) -> tuple[Sequence[Mapping[str, Any]], Mapping[str, Any] | None]:
    """The exceptions an event groups by, as a chain, and the raised group they were read
    from (None when the raised exception is not a group, or holds no sub-exception)."""
    if not exceptions or exceptions[-1].get("is_exception_group") is not True:
        return exceptions, None
    tree = ExceptionTree.of(exceptions)
    raised = tree.raised
    kinds: dict[tuple[str, ...], int] = {}
    for leaf in tree.leaves(raised):
        if leaf != raised:
            kinds.setdefault(_alone(exceptions[leaf], rules), leaf)
    if not kinds:
        return exceptions, None
    group = exceptions[raised]
    if len(kinds) == 1:
        (leaf,) = kinds.values()
        return [exceptions[index] for index in tree.chain(leaf)], group
    return [*(exceptions[kinds[key]] for key in sorted(kinds)), group], group


def _alone(exc: Mapping[str, Any], rules: FrameRules | None) -> tuple[str, ...]:
    """The components of one exception alone (what tells two sub-exceptions apart)."""
    parts = _stacktrace((exc,), rules, in_app_only=True)
    if parts is None:
        parts = _stacktrace((exc,), rules, in_app_only=False)
    if not parts:
        parts = (_type(exc), _text("value ", exc.get("value") or "", parameterise=True))
    return parts


def _default(event: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    rules = rules_for(event.get("platform"))
    exceptions = _grouped_by(event.get("exceptions") or (), rules)[0]
    if exceptions:
        components = _stacktrace(exceptions, rules, in_app_only=True)
        if components is None:
            components = _stacktrace(exceptions, rules, in_app_only=False)
        if components:
            return "stacktrace", components
    return "message", _message(event, exceptions)


def _custom(event: Mapping[str, Any], custom: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    placeholders = [_is_placeholder(value) for value in custom]
    if all(placeholders):
        return _default(event)
    default: tuple[str, ...] = _default(event)[1] if any(placeholders) else ()
    components: list[str] = []
    for value, is_placeholder in zip(custom, placeholders, strict=True):
        if is_placeholder:
            components.extend(default)
        else:
            components.append("custom " + str(value).replace("\0", "\ufffd"))
    return "custom", tuple(components)


def _is_placeholder(value: str) -> bool:
    return value == DEFAULT_PLACEHOLDER or "".join(str(value).split()) == "{{default}}"


def _stacktrace(
    exceptions: Sequence[Mapping[str, Any]], rules: FrameRules | None, *, in_app_only: bool
) -> tuple[str, ...] | None:
    """Type and frame components of the chain; None if no frame was taken, () if none exists.

    Frames are read by their platform's ``rules``, or as Python's when there are none.
    Consecutive exceptions with the same components (a retry loop re-raising as it handles
    the last failure) count once, as recursion does.
    """
    components: list[str] = []
    previous: list[str] = []
    taken = seen = False
    cache = _frames
    for exc in exceptions:
        block = [_type(exc)]
        frames = exc.get("frames") or ()
        seen = seen or bool(frames)
        keys: Sequence[tuple[str | None, ...]] = (
            _python_keys(frames, in_app_only)
            if rules is None
            else rules.keys(frames, in_app_only=in_app_only)
        )
        for key in keys:
            part = cache.get(key)
            if part is None:
                part = _frame_component(key)
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[key] = part
            block.append(part)
        if len(block) > 2 and len(set(block)) < len(block):
            block = _collapse(block)
        taken = taken or len(block) > 1
        if block != previous:
            components.extend(block)
            previous = block
    if not seen:
        return ()
    return tuple(components) if taken else None


def _python_keys(
    frames: Sequence[Mapping[str, Any]], in_app_only: bool
) -> list[tuple[str | None, ...]]:
    """What each frame of a Python event groups by: (module, function, source line), or
    (None, function, source line, file name) for a frame without a module."""
    keys: list[tuple[str | None, ...]] = []
    for frame in frames:
        if in_app_only and not frame["in_app"]:
            continue
        module = frame.get("module")
        if module:
            keys.append((module, frame["function"], frame.get("context_line")))
        else:
            keys.append((None, frame["function"], frame.get("context_line"), frame["filename"]))
    return keys


def _frame_component(key: tuple[str | None, ...]) -> str:
    module, function, line = key[0], key[1] or "", key[2]
    if module is None:
        module = (key[3] or "").replace("\\", "/").rpartition("/")[2]
    text = f"frame {_normalise_name(module)}:{_normalise_name(function)}"
    if line:
        line = " ".join(line.split())
        if 0 < len(line) <= _MAX_CONTEXT_LINE:
            text = f"{text} | {line}"
    return text.replace("\0", "\ufffd")


def _type(exc: Mapping[str, Any]) -> str:
    key = (exc["type"], exc.get("module"))
    part = _types.get(key)
    if part is None:
        name, module = key
        part = "type " + _normalise_name(f"{module}.{name}" if module else name)
        part = part.replace("\0", "\ufffd")
        if len(_types) >= _CACHE_SIZE:
            _types.clear()
        _types[key] = part
    return part


def _collapse(parts: list[str]) -> list[str]:
    """Drop repeats of the last 1 to _MAX_CYCLE parts, so recursion depth does not matter."""
    key = tuple(parts)
    known = _cycles.get(key)
    if known is not None:
        return list(known)
    out: list[str] = []
    for part in parts:
        out.append(part)
        n = len(out)
        for period in range(1, min(_MAX_CYCLE, n // 2) + 1):
            # Only the newest part can complete a repeat: everything before it is collapsed.
            if out[n - 1 - period] != part:
                continue
            if out[n - period :] == out[n - 2 * period : n - period]:
                del out[n - period :]
                break
    if len(_cycles) >= _CACHE_SIZE // 8:
        _cycles.clear()
    _cycles[key] = tuple(out)
    return out


def _message(event: Mapping[str, Any], exceptions: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    components: list[str] = []
    logger = event.get("logger")
    if logger:
        components.append(_text("logger ", logger, parameterise=False))
    components.append(_text("message ", event.get("message") or "", parameterise=True))
    for exc in exceptions:
        components.append(_type(exc))
        components.append(_text("value ", exc.get("value") or "", parameterise=True))
    return tuple(components)


def _text(prefix: str, text: str, *, parameterise: bool) -> str:
    key = prefix + text
    part = _texts.get(key)
    if part is None:
        body = parameterize(text) if parameterise else _normalise_name(text)
        part = prefix + " ".join(body.split()).replace("\0", "\ufffd")
        if len(key) <= _CACHE_TEXT_LENGTH:
            if len(_texts) >= _CACHE_SIZE:
                _texts.clear()
            _texts[key] = part
    return part


def _digest(service: str, components: tuple[str, ...]) -> str:
    # No component holds a NUL (replaced above), so joining with NULs is unambiguous.
    text = "\0".join((service.replace("\0", "\ufffd"), *components))
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _generated_placeholder(match: re.Match[str]) -> str:
    return _GENERATED_PLACEHOLDERS[match.lastgroup or "int"]


def _normalise_name(name: str) -> str:
    return _GENERATED.sub(_generated_placeholder, name)


def _cut(text: str, limit: int = _TITLE_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
