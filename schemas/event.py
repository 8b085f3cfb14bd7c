"""ErrorEvent v1: the wire contract between applications and mendline."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypeVar, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError, to_json
from typing_extensions import TypedDict

from mendline.schemas.errors import InvalidEvent
from mendline.schemas.limits import (
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENT_COUNT,
    MAX_EXCEPTION_VALUE_BYTES,
    MAX_EXCEPTIONS,
    MAX_FRAMES,
    MAX_MESSAGE_BYTES,
)

__all__ = [
    "JSON_SCHEMA_PATH",
    "LEVELS",
    "LEVEL_RANK",
    "SCHEMA_VERSION",
    "ErrorEvent",
    "ExceptionInfo",
    "ExceptionTree",
    "Frame",
    "Level",
    "chain_link",
    "content_hash",
    "headline",
    "json_schema",
    "json_schema_text",
    "parse_event",
    "parse_event_dict",
    "parse_event_exact",
]

_T = TypeVar("_T")

SCHEMA_VERSION = 1
Level = Literal["debug", "info", "warning", "error", "critical"]
#: Levels from least to most severe; the index is the rank.
LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error", "critical")
#: Level name -> rank (its index in LEVELS).
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS)}
#: The exported JSON Schema, shipped beside this module and kept in sync by a test.
JSON_SCHEMA_PATH = Path(__file__).with_name("error-event.v1.json")


def _max_utf8(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        # Cheap pre-check: a str of n characters has at most 4n UTF-8 bytes.
        if len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise ValueError(f"longer than {limit} bytes in UTF-8")
        return value

    return AfterValidator(check)


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the end of time in UTC
        raise ValueError("timestamp is out of range") from None


def _a_json_integer(value: object) -> object:
    # Literal[1] compares with ==, so `true` and `1.0` would pass as schema version 1.
    if type(value) is not int:
        raise ValueError(f"schema_version must be the integer 1, not {value!r}")
    return value


def _not_a_number(value: object) -> object:
    # A datetime would take a number as Unix time: an emitter's bug, not a timestamp.
    if isinstance(value, int | float):
        raise ValueError("a timestamp is an RFC 3339 string, not a number")
    return value


def _context_within_limit(value: dict[str, Any]) -> dict[str, Any]:
    data = to_json(value)
    if len(data) > MAX_CONTEXT_BYTES:
        raise ValueError(f"context is {len(data)} bytes as JSON, over {MAX_CONTEXT_BYTES}")
    if (b"NaN" in data or b"Infinity" in data) and _has_non_finite(value):
        raise PydanticCustomError(
            "json_non_finite", "context holds NaN or Infinity, which JSON does not allow"
        )
    return value


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


#: An RFC 3339 time with an offset (never a number), held in UTC.
_Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_utc)]


class _Model(BaseModel):
    # Unknown fields are ignored, not rejected: v1 may grow optional fields (additive changes
    # only), and a consumer of an older release must still accept what a newer emitter sends.
    # No coercion: the booleans and integers are strict (no "yes", no 1.0 or "12"), and
    # schema_version and the timestamps refuse what they would coerce (true, a number). Per
    # field, not the model's strict mode: that takes about 1.8 times as long to validate, and
    # a timestamp must stay a string in Python too (mendline.testing validates dicts).
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Frame(_Model):
    """One stack frame, oldest call first within its exception."""

    filename: str = Field(max_length=1024, description="Path of the source file.")
    module: str | None = Field(default=None, max_length=512, description="Module name.")
    function: str = Field(max_length=512, description="Function (qualified) name.")
    lineno: int | None = Field(default=None, ge=0, strict=True)
    context_line: str | None = Field(
        default=None,
        max_length=1024,
        description="The source line with its indentation (a fix can be written against it).",
    )
    in_app: bool = Field(
        strict=True, description="False for the standard library and installed packages."
    )
    # Added in v1 for events converted from Sentry SDKs (other languages); optional.
    abs_path: str | None = Field(
        default=None, max_length=1024, description="Absolute path or URL of the source file."
    )
    colno: int | None = Field(default=None, ge=0, strict=True, description="Column, 1-based.")
    package: str | None = Field(
        default=None,
        max_length=512,
        description="The package, assembly, jar or library holding the frame's code.",
    )


_MAX_ID = 2**31 - 1
_SOURCE = r"^(?:__cause__|__context__|exceptions\[[0-9]{1,6}\])$"


class ExceptionInfo(_Model):
    """One exception of a chain."""

    type: str = Field(min_length=1, max_length=512, description="Exception class name.")
    module: str | None = Field(default=None, max_length=512, description="Its module.")
    value: Annotated[str, _max_utf8(MAX_EXCEPTION_VALUE_BYTES)] = Field(
        max_length=MAX_EXCEPTION_VALUE_BYTES, description="str(exc), at most 8 KiB in UTF-8."
    )
    frames: list[Frame] = Field(default_factory=list, max_length=MAX_FRAMES)
    frames_omitted: int = Field(
        strict=True,
        default=0,
        ge=0,
        description="Frames left out between the 50 outermost and innermost.",
    )
    # Exception groups (optional, sent only by events that hold one): the list is then a tree,
    # as in Sentry's exception groups. Readers that ignore these fields read it as one chain.
    # Strict: "0" is no id and "yes" no boolean (a producer's bug, better told than guessed).
    exception_id: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=_MAX_ID,
        description="This exception's id within the event, unique; the raised one (last) is 0.",
    )
    parent_id: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=_MAX_ID,
        description="The exception_id of the exception this one belongs to: the exception it "
        "caused (source __cause__ or __context__) or its exception group (exceptions[i]).",
    )
    source: str | None = Field(
        default=None,
        pattern=_SOURCE,
        max_length=24,
        description="How the parent holds it: __cause__, __context__ or exceptions[i].",
    )
    is_exception_group: bool = Field(
        default=False,
        strict=True,
        description="True for an exception group (ExceptionGroup, TaskGroup's).",
    )


class ErrorEvent(_Model):
    """An error an application logged, as one JSON object per Kafka message.

    ``exceptions`` is the chain, root cause first and the raised exception last; each
    exception's ``frames`` are oldest call first, as Python prints them. When an exception
    group is in it, the list is a tree in the same order (each exception after everything it
    holds, the raised one last) told by ``exception_id``, ``parent_id`` and ``source``; read it
    with ExceptionTree.
    """

    schema_version: Annotated[Literal[1], BeforeValidator(_a_json_integer)] = Field(
        description="Bumped only for incompatible changes."
    )
    event_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="32 lowercase hex digits (a UUID4), set by the emitter; the dedup key.",
    )
    timestamp: _Timestamp = Field(description="RFC 3339 with an offset; stored in UTC.")
    service: str = Field(min_length=1, max_length=200)
    environment: str = Field(min_length=1, max_length=200)
    release: str | None = Field(default=None, max_length=200)
    host: str | None = Field(default=None, max_length=255)
    level: Level
    logger: str | None = Field(default=None, max_length=512)
    message: Annotated[str, _max_utf8(MAX_MESSAGE_BYTES)] = Field(
        max_length=MAX_MESSAGE_BYTES, description="The log message template, at most 8 KiB."
    )
    exceptions: list[ExceptionInfo] = Field(default_factory=list, max_length=MAX_EXCEPTIONS)
    context: Annotated[dict[str, Any], AfterValidator(_context_within_limit)] = Field(
        default_factory=dict, description="Any JSON object, scrubbed; at most 16 KiB as JSON."
    )
    tags: dict[str, str] = Field(default_factory=dict)
    fingerprint: list[str] | None = Field(
        default=None,
        max_length=32,
        description='Overrides grouping; "{{ default }}" stands for the default grouping.',
    )
    original_timestamp: _Timestamp | None = Field(
        default=None,
        description="Set by the consumer when it replaced a timestamp outside the accepted "
        "window by the time it received the event: the emitter's timestamp.",
    )
    count: int = Field(
        default=1,
        strict=True,
        ge=1,
        le=MAX_EVENT_COUNT,
        description="How many identical occurrences this event stands for: more than 1 when "
        "the emitter rolled up repeats of one error (same key) in a short window; "
        "``timestamp`` is then the last of them and ``first_timestamp`` the first.",
    )
    first_timestamp: _Timestamp | None = Field(
        default=None,
        description="With ``count`` over 1: when the first of the occurrences happened.",
    )
    lost: int = Field(
        default=0,
        strict=True,
        ge=0,
        le=MAX_EVENT_COUNT,
        description="Events the emitting process counted but could not send (a full queue or "
        "spool) since its previous event: not received, reported so they are not unknown.",
    )
    platform: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="The emitting SDK's platform as Sentry names it (python, node, javascript, "
        "java, csharp, go, php, ruby, native...); unset for mendline's own emitters (Python).",
    )


def parse_event(raw: bytes | str) -> ErrorEvent:
    """Parse and validate one wire message, raising InvalidEvent with a reason code.

    Strict: a duplicate key anywhere, ``true`` or ``1.0`` as the schema version, ``"yes"``
    as a boolean or ``1.0`` as an integer are ``invalid``, never coerced.
    Reasons: ``too_large``, ``not_json``, ``unknown_schema_version``, ``invalid``.
    """
    return _parse(raw, _validate_model)


def parse_event_dict(raw: bytes | str) -> dict[str, Any]:
    """Like parse_event, but the event comes back as a plain dict in the wire shape (with
    ``timestamp`` a datetime in UTC, and the top level's defaults filled in; optional keys of
    exceptions and frames are present only if sent): what the consumer works on, without
    building and dumping model instances. The same rules validate it."""
    return _parse(raw, _validate_dict)


def parse_event_exact(raw: bytes | str) -> tuple[dict[str, Any], bytes]:
    """parse_event_dict, and the JSON of the dict: what to store, so that what is stored is
    what was validated. It is ``raw`` itself when the two are the same bytes (a compact event
    in the contract's field order, as mendline's emitters write it). Optional fields that were
    not sent are left out rather than defaulted when ``raw`` has no field the contract does
    not know."""
    if len(raw) <= MAX_EVENT_BYTES:
        try:
            doc = _EXACT_ADAPTER.validate_json(raw)
        except ValidationError:
            pass  # unknown fields, or invalid: the lenient parse decides, and explains
        else:
            data = to_json(doc)
            if data == raw:
                # The JSON of a dict has each key once: so has raw, no need to look.
                return doc, raw if isinstance(raw, bytes) else data
            _reject_duplicate_keys(raw)
            return doc, data
    doc = parse_event_dict(raw)
    return doc, to_json(doc)


def content_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of a validated event dict (parse_event_dict's or parse_event_exact's
    shape) as canonical JSON: keys in a fixed order at every depth and the top level's
    defaults filled in, so the order of keys and leaving out a null optional top-level field
    do not change it. Two events with one event_id and different hashes are different."""
    # The validator gives the contract's objects (the top level, exceptions, frames) their
    # fields in the models' order whatever the sender's; only the free-form ones need sorting.
    full = {name: doc.get(name, default) for name, default in _FIELDS.items()}
    for name, default in _ADDED_FIELDS.items():  # at their defaults, as before they were added
        if full[name] == default:
            del full[name]
    full["context"] = _sorted_keys(full["context"])
    full["tags"] = dict(sorted(full["tags"].items()))
    return hashlib.sha256(to_json(full)).hexdigest()


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _validate_model(raw: bytes | str) -> ErrorEvent:
    event = ErrorEvent.model_validate_json(raw)
    _reject_duplicate_keys(raw)
    return event


def _validate_dict(raw: bytes | str) -> dict[str, Any]:
    doc = _DICT_ADAPTER.validate_json(raw)
    _reject_duplicate_keys(raw)
    return doc


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise _DuplicateKey()
    return doc


def _reject_duplicate_keys(raw: bytes | str) -> None:
    """InvalidEvent ``invalid`` when an object of ``raw`` (at any depth) repeats a key: the
    validator keeps the last of them, another reader may take the first."""
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _DuplicateKey:
        # Rare: parse again, keeping the pairs, to say where.
        where = _first_duplicate(json.loads(raw, object_pairs_hook=_Pairs), "")
        raise InvalidEvent("invalid", f"duplicate key {where}") from None
    except (ValueError, RecursionError) as exc:  # what pydantic read, json may not
        raise InvalidEvent("not_json", f"{type(exc).__name__}: {exc}") from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its list of pairs, duplicates kept."""


def _first_duplicate(value: Any, path: str) -> str | None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, _ in value:
            if key in seen:  # keys are the sender's text: escaped, and cut short
                where = json.dumps(path[:200]) if path else "the event"
                return f"{json.dumps(key[:80])} in {where}"
            seen.add(key)
        for key, item in value:
            found = _first_duplicate(item, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_duplicate(item, f"{path}.{index}")
            if found:
                return found
    return None


def _parse(raw: bytes | str, validate: Callable[[bytes | str], _T]) -> _T:
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("too_large", f"event is {len(raw)} bytes, over {MAX_EVENT_BYTES}")
    try:
        return validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidEvent("not_json", errors[0]["msg"]) from None
        if any(err["type"] == "json_non_finite" for err in errors):
            raise InvalidEvent("not_json", "NaN or Infinity is not JSON") from None
        if any(err["loc"] == ("schema_version",) for err in errors):
            version = _peek_schema_version(raw)
            if version is not None and version != SCHEMA_VERSION:
                raise InvalidEvent(
                    "unknown_schema_version", f"schema_version {version!r} is not supported"
                ) from None
        if errors and errors[0]["type"] in {"model_type", "dict_type"} and not errors[0]["loc"]:
            raise InvalidEvent("not_json", "the message is JSON but not an object") from None
        detail = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(event)'}: {err['msg']}"
            for err in errors[:5]
        )
        raise InvalidEvent("invalid", detail) from None


def _peek_schema_version(raw: bytes | str) -> object:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc.get("schema_version") if isinstance(doc, dict) else None


def _as_typed_dict(model: type[BaseModel], top: bool = True, exact: bool = False) -> Any:
    """A TypedDict with the fields, types and constraints of ``model`` (nested models too).

    The models stay the one definition of the contract; this only gives the consumer's hot
    path a validator that returns plain dicts, which is half the cost of a model and a dump.
    The top level gets its defaults filled in; nested dicts (exceptions, frames) keep only
    the keys that were sent, so readers use ``.get()`` for their optional keys.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _dict_types(info.annotation, exact)
        extras = [*info.metadata, Field(description=info.description)]
        typed = Annotated[(annotation, *extras)]  # type: ignore[valid-type]
        fields[name] = typed if info.is_required() else NotRequired[typed]
    typed_dict = TypedDict(f"{model.__name__}Dict", fields)  # type: ignore[misc]
    if exact:  # a field the contract does not know makes the validation fail
        typed_dict.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    if not top or exact:  # the exact form keeps only what was sent, defaults left out
        return typed_dict
    defaults = {name: info for name, info in model.model_fields.items() if not info.is_required()}

    def with_defaults(value: dict[str, Any]) -> dict[str, Any]:
        for name, info in defaults.items():
            if name not in value:
                value[name] = info.get_default(call_default_factory=True)
        return value

    return Annotated[typed_dict, AfterValidator(with_defaults)]


def _dict_types(annotation: Any, exact: bool) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _as_typed_dict(annotation, top=False, exact=exact)
    args = get_args(annotation)
    if get_origin(annotation) is list and args:
        return list[_dict_types(args[0], exact)]  # type: ignore[misc]
    return annotation


_DICT_ADAPTER: TypeAdapter[dict[str, Any]] = TypeAdapter(_as_typed_dict(ErrorEvent))
_EXACT_ADAPTER: TypeAdapter[dict[str, Any]] = TypeAdapter(_as_typed_dict(ErrorEvent, exact=True))
#: Every field of the top level, in the model's order, with its default (None if required).
_FIELDS: dict[str, Any] = {
    name: None if info.is_required() else info.get_default(call_default_factory=True)
    for name, info in ErrorEvent.model_fields.items()
}


#: Fields v1 gained later, left out of the content hash at their defaults: an event stored
#: before a field existed hashes as it did then, so its replay stays a duplicate.
_ADDED_FIELDS: dict[str, Any] = {"count": 1, "first_timestamp": None, "lost": 0, "platform": None}


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of ErrorEvent v1, as exported to ``error-event.v1.json``."""
    schema = ErrorEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mendline.dev/schemas/error-event.v1.json"
    schema["title"] = "ErrorEvent v1"
    return schema


def json_schema_text() -> str:
    """The exported JSON Schema file's exact text (run ``mendline schema --write`` to update)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


_LINKS = frozenset({"__cause__", "__context__"})
_MEMBER = re.compile(r"exceptions\[([0-9]{1,6})\]")


@dataclass(frozen=True, slots=True)
class ExceptionTree:
    """The ``exceptions`` of an ErrorEvent v1 wire dict read as a tree, by list index.

    Each exception has at most one link (its ``__cause__`` or ``__context__``) and, if it is
    an exception group, its sub-exceptions (``members``) in their order. An event without
    ``exception_id`` fields, or whose ids do not make a tree (an id missing or repeated, a
    parent that is not after its child in the list), is read as one chain, as v1 always was:
    each exception is the link of the one after it.
    """

    #: Per index: the index of its cause or context, or None.
    links: tuple[int | None, ...]
    #: Per index: the indexes of its sub-exceptions (empty unless it is a group).
    members: tuple[tuple[int, ...], ...]
    #: Per index: whether it is an exception group.
    groups: tuple[bool, ...]

    @classmethod
    def of(cls, exceptions: Sequence[Mapping[str, Any]]) -> ExceptionTree:
        """Read ``exceptions`` (validated, or at least a list of dicts) as a tree."""
        groups = tuple(exc.get("is_exception_group") is True for exc in exceptions)
        tree = _tree(exceptions, groups) if exceptions else None
        if tree is not None:
            return tree
        links = tuple(i - 1 if i else None for i in range(len(exceptions)))
        return cls(links, tuple(() for _ in exceptions), groups)

    @property
    def raised(self) -> int:
        """The index of the raised exception: the last one (-1 for no exception)."""
        return len(self.links) - 1

    def chain(self, index: int) -> list[int]:
        """The exception at ``index`` and its causes, root cause first and it last."""
        out = [index]
        link = self.links[index]
        while link is not None:
            out.append(link)
            link = self.links[link]
        out.reverse()
        return out

    def leaves(self, index: int) -> list[int]:
        """The exceptions a group holds, nested groups opened (in their order); a group sent
        without its sub-exceptions counts as one. Just ``index`` for any other exception."""
        if not self.members[index]:
            return [index]
        return [leaf for member in self.members[index] for leaf in self.leaves(member)]


def _tree(
    exceptions: Sequence[Mapping[str, Any]], groups: tuple[bool, ...]
) -> ExceptionTree | None:
    """The tree told by the ids, or None when there are none or they do not make one."""
    ids: dict[int, int] = {}
    for index, exc in enumerate(exceptions):
        known = exc.get("exception_id")
        if type(known) is not int or known in ids:
            return None
        ids[known] = index
    links: list[int | None] = [None] * len(exceptions)
    members: list[list[tuple[int, int]]] = [[] for _ in exceptions]
    last = len(exceptions) - 1
    if exceptions[last].get("parent_id") is not None:
        return None
    for index, exc in enumerate(exceptions[:last]):
        parent_id = exc.get("parent_id")
        parent = ids.get(parent_id) if type(parent_id) is int else None
        if parent is None or parent <= index:  # parents come after: no cycle can form
            return None
        source = exc.get("source")
        if source in _LINKS or (source is None and not groups[parent]):
            if links[parent] is not None:
                return None
            links[parent] = index
        else:
            found = _MEMBER.fullmatch(source) if isinstance(source, str) else None
            order = int(found[1]) if found is not None else index
            members[parent].append((order, index))
    return ExceptionTree(
        tuple(links), tuple(tuple(i for _, i in sorted(m)) for m in members), groups
    )


# How an exception of a chain led to the next (the ``source`` its parent holds it by).
_LINK_WORDS = {
    "__cause__": "the direct cause of (raise ... from it):",
    "__context__": "while handling it, this was raised:",
}


def chain_link(source: str | None) -> str:
    """The words between two exceptions of a stored chain (root cause first), from the
    ``source`` of the first: how it led to the next one."""
    return _LINK_WORDS.get(source or "", "then:")


def headline(event: Mapping[str, Any]) -> str:
    """An event summary's raised exception (``Type: value``, from its ``exception_type``
    and ``exception_value``), or its message when it has none."""
    if event.get("exception_type"):
        return f"{event['exception_type']}: {event.get('exception_value') or ''}"
    return str(event.get("message") or "")
