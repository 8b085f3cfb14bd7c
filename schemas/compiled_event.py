"""ErrorEvent v1 checked by msgspec types compiled from its pydantic models: the consumer's
per-record parse, with parse_event_exact's contract at a fraction of its cost."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import msgspec
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Strict,
    TypeAdapter,
)
from pydantic.fields import FieldInfo

from mendline.schemas.errors import InvalidEvent
from mendline.schemas.event import ErrorEvent, _reject_duplicate_keys, parse_event_exact
from mendline.schemas.limits import MAX_EVENT_BYTES

__all__ = ["CompiledModel", "compile_model", "decode_event", "parse_event_compiled"]

#: Nesting (objects and arrays in one another) the compiled path reads itself; deeper events
#: go to parse_event_exact, whose JSON reader refuses about 200 levels (as not JSON).
_MAX_NESTING = 100


def parse_event_compiled(raw: bytes | str) -> tuple[dict[str, Any], bytes]:
    """parse_event_exact, compiled: the same events accepted, as the same dict and the same
    JSON to store (its bytes too, but that msgspec writes a float's exponent without its +),
    and the same InvalidEvent (reason and detail) for the others.

    msgspec decodes and checks what its types can say (types, lengths, patterns, bounds); the
    models' own validators run in Python on what it decoded. Anything it does not accept, or
    cannot read as pydantic would, is handed to parse_event_exact, which decides and explains:
    bad input and rare forms cost both parses, a valid event one msgspec pass.
    """
    found = decode_event(raw)
    return parse_event_exact(raw) if found is None else found


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A pydantic model as msgspec Structs (one that ignores unknown fields and one that
    refuses them), with the checks msgspec cannot make, run on the decoded builtins."""

    #: The model it was compiled from.
    model: type[BaseModel]
    lenient: type[msgspec.Struct]
    strict: type[msgspec.Struct]
    #: (field, check) for the fields with validators: check takes the decoded value and
    #: returns the field's value, or raises ValueError as the validator does.
    checks: tuple[tuple[str, Callable[[Any], Any]], ...]
    #: (field, its model's compiled form, whether it holds a list of them) for the fields
    #: whose models have checks of their own.
    nested: tuple[tuple[str, CompiledModel, bool], ...]
    #: The compiled form of every model a field holds, by field.
    held: dict[str, CompiledModel]

    def check(self, doc: dict[str, Any]) -> bool:
        """Run the checks over a decoded dict (and the models it holds), in place; whether
        each value they gave is written in JSON as the one decoded was (so it is when a
        check only checks, or reads a timestamp that was sent in UTC as JSON writes it)."""
        same = True
        for name, check in self.checks:
            if name in doc:
                value = doc[name]
                checked = check(value)
                if checked is not value:
                    doc[name] = checked
                    same = same and _ENCODER.encode(checked) == _ENCODER.encode(value)
        for name, inner, many in self.nested:
            value = doc.get(name)
            if many:
                for item in value or ():
                    same = inner.check(item) and same
            elif value is not None:
                same = inner.check(value) and same
        return same


def compile_model(model: type[BaseModel]) -> CompiledModel:
    """Compile ``model`` (and the models its fields hold) to msgspec Structs, field for field
    in the model's order. Optional fields default to UNSET, so that builtins made of a Struct
    hold only the fields sent. TypeError for a type, constraint or validator this cannot
    mirror: the compiled path must never accept what the model refuses."""
    config = {key: value for key, value in model.model_config.items() if key != "frozen"}
    if config.items() - _CONFIG.items():
        raise TypeError(f"{model.__name__}: no compiled form for {config}")
    lenient: list[tuple[str, Any, Any]] = []
    strict: list[tuple[str, Any, Any]] = []
    checks: list[tuple[str, Callable[[Any], Any]]] = []
    nested: list[tuple[str, CompiledModel, bool]] = []
    held: dict[str, CompiledModel] = {}
    for name, info in model.model_fields.items():
        try:
            compiled = _Field.of(info)
        except TypeError as exc:
            raise TypeError(f"{model.__name__}.{name}: {exc}") from None
        default = msgspec.NODEFAULT if info.is_required() else msgspec.UNSET
        unset = () if info.is_required() else (msgspec.UnsetType,)
        lenient.append((name, Union[(compiled.lenient, *unset)], default))
        strict.append((name, Union[(compiled.strict, *unset)], default))
        if compiled.check is not None:
            checks.append((name, compiled.check))
        if compiled.model is not None:
            held[name] = compiled.model
            if compiled.model.checks or compiled.model.nested:
                nested.append((name, compiled.model, compiled.many))
    return CompiledModel(
        model,
        _struct(f"{model.__name__}Struct", lenient, forbid_unknown_fields=False),
        _struct(f"{model.__name__}StrictStruct", strict, forbid_unknown_fields=True),
        tuple(checks),
        tuple(nested),
        held,
    )


def _struct(
    name: str, fields: list[tuple[str, Any, Any]], *, forbid_unknown_fields: bool
) -> type[msgspec.Struct]:
    # kw_only: the fields keep the model's order, required or not. No GC tracking: a Struct
    # decoded from JSON holds only JSON values, which cannot make a reference cycle.
    return msgspec.defstruct(
        name, fields, kw_only=True, gc=False, forbid_unknown_fields=forbid_unknown_fields
    )


@dataclass
class _Field:
    """One field of a model as msgspec reads it, and what is left to check in Python."""

    lenient: Any = None
    strict: Any = None
    #: The compiled form of the model the field holds, and whether in a list.
    model: CompiledModel | None = None
    many: bool = False
    check: Callable[[Any], Any] | None = None
    #: Constraints for msgspec.Meta, and the validators' functions, in pydantic's order.
    meta: dict[str, Any] = field(default_factory=dict)
    validators: list[Callable[[Any], Any]] = field(default_factory=list)
    #: Whether msgspec reads the value as pydantic does (not so a datetime).
    mirrored: bool = True
    nullable: bool = False
    strict_mode: bool = False

    @classmethod
    def of(cls, info: FieldInfo) -> _Field:
        found = cls()
        found.constrain(info.metadata)
        found.lenient = found.translate(info.annotation, strict=False)
        found.meta, found.validators = {}, []  # the same again, for the strict Struct
        found.constrain(info.metadata)
        found.strict = found.translate(info.annotation, strict=True)
        if not found.mirrored or (found.validators and found.nullable):
            # msgspec takes the JSON value as it is; the field's own type validates it, in
            # Python, which reads a JSON value as from JSON unless the field is strict.
            if found.strict_mode:
                raise TypeError("no compiled form for a strict field msgspec does not mirror")
            whole: Any = info.annotation
            if info.metadata:
                whole = Annotated[(whole, *info.metadata)]
            adapter: TypeAdapter[Any] = TypeAdapter(whole)
            found.lenient = found.strict = Any
            found.check = adapter.validate_python
        elif found.validators:
            found.check = _Validators(tuple(found.validators))
        return found

    def constrain(self, metadata: list[Any]) -> None:
        for item in metadata:
            bound = type(item).__name__.lower()
            if isinstance(item, annotated_types.MinLen | annotated_types.MaxLen):
                self.meta[_LENGTHS[bound]] = getattr(item, _LENGTHS[bound])
            elif isinstance(item, annotated_types.Ge | annotated_types.Le):
                self.meta[bound] = getattr(item, bound)
            elif isinstance(item, Strict):
                # msgspec is strict: no "12" for 12, no 1.0 for 1, no 1 for true. (A strict
                # field read by pydantic would be read in Python: not as from JSON.)
                self.strict_mode = item.strict
            elif isinstance(item, BeforeValidator | AfterValidator):
                self.validators.append(item.func)  # type: ignore[arg-type]
            elif _field_pattern(item) is not None:
                self.meta["pattern"] = _search_pattern(_field_pattern(item))
            else:
                raise TypeError(f"no compiled form for {item!r}")

    def translate(self, annotation: Any, *, strict: bool) -> Any:
        """The msgspec type of ``annotation`` (constraints found so far applied)."""
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            self.constrain(list(args[1:]))
            return self.translate(args[0], strict=strict)
        if origin in (Union, types.UnionType):
            return Union[tuple(self.translate(arg, strict=strict) for arg in args)]  # noqa: UP007
        if annotation is type(None):
            self.nullable = True
            return annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if self.model is None:
                self.model = compile_model(annotation)
            elif self.model.model is not annotation:
                raise TypeError("no compiled form for a field of two models")
            return self.model.strict if strict else self.model.lenient
        if annotation in _READ_BY_PYDANTIC:
            self.mirrored = False
            return Any
        if origin is list or (origin is dict and args[0] is str):
            meta, self.meta = self.meta, {}  # the field's constraints are the container's
            held = self.model
            items = tuple(self.translate(arg, strict=strict) for arg in args)
            if self.meta or (held is None and self.model is not None and origin is dict):
                raise TypeError("no compiled form for constraints on items or models in a dict")
            self.many = self.many or (held is None and self.model is not None)
            self.meta = meta
            return self.annotated(origin[items])
        if annotation in (str, int, bool) or origin is Literal:
            return self.annotated(annotation)
        if annotation is Any:
            return Any
        raise TypeError(f"no compiled form for {annotation!r}")

    def annotated(self, kind: Any) -> Any:
        return Annotated[kind, msgspec.Meta(**self.meta)] if self.meta else kind


_LENGTHS = {"minlen": "min_length", "maxlen": "max_length"}
#: The model configuration the Structs mirror (frozen or not, as decoded values are builtins).
_CONFIG: dict[str, Any] = {"extra": "ignore", "str_strip_whitespace": False}
#: Types msgspec reads otherwise than pydantic: msgspec rounds a fraction of a second past the
#: microseconds where pydantic (speedate) cuts it, and refuses forms pydantic takes (19:13Z, an
#: underscore for the T, a comma before the fraction, Unix time as a string). A field of such
#: a type is decoded as any JSON value, and its own TypeAdapter reads it.
_READ_BY_PYDANTIC = (datetime, AwareDatetime)


def _field_pattern(item: object) -> Any:
    """The pattern of Field(pattern=...), whose metadata class pydantic keeps private."""
    if type(item).__name__ == "_PydanticGeneralMetadata" and vars(item).keys() == {"pattern"}:
        return vars(item)["pattern"]
    return None


def _search_pattern(pattern: str) -> str:
    """A pydantic pattern (the Rust regex crate's, where ``$`` is the end of the text) as
    msgspec applies it (Python's re.search, where ``$`` also matches before a final newline)."""
    if not pattern.endswith("$") or pattern.endswith("\\$"):
        raise TypeError(f"no compiled form for the pattern {pattern!r}")
    return pattern[:-1] + r"\Z"


@dataclass(frozen=True, slots=True)
class _Validators:
    """A field's validators, run as pydantic runs them, on the value msgspec decoded (the JSON
    value itself, for the types it mirrors). Only validators that check, not change, mirror
    exactly: one that returns another value fails the compiled path (pydantic decides)."""

    validators: tuple[Callable[[Any], Any], ...]

    def __call__(self, value: Any) -> Any:
        for validate in self.validators:
            if validate(value) is not value:
                raise ValueError("a validator changed the value")
        return value


_EVENT = compile_model(ErrorEvent)
_STRICT = msgspec.json.Decoder(_EVENT.strict)
_LENIENT = msgspec.json.Decoder(_EVENT.lenient)
_JSON = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
#: The top level's optional fields, given their defaults when the event had fields the
#: contract does not know (as parse_event_exact's lenient parse does), a fresh one each time.
_DEFAULTS = tuple(
    (name, info) for name, info in ErrorEvent.model_fields.items() if not info.is_required()
)


def decode_event(raw: bytes | str) -> tuple[dict[str, Any], bytes] | None:
    """The compiled path alone: what parse_event_compiled returns for ``raw``, or None where
    parse_event_exact must decide: bad input, and the rare valid forms msgspec does not read
    as pydantic does (nesting over 100 levels, a number out of a float's range in an unknown
    field)."""
    if len(raw) > MAX_EVENT_BYTES:
        return None
    try:
        event = _STRICT.decode(raw)
        unknown = False
    except (msgspec.DecodeError, RecursionError):
        try:
            event = _LENIENT.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return None
        unknown = True
    doc: dict[str, Any] = msgspec.to_builtins(event)
    # Deeper than the contract's own objects go: only in the context or an unknown field
    # (which msgspec skips, so that the event's depth is not known).
    if _brackets(raw) > _MAX_NESTING and (
        unknown or _deeper_than(doc.get("context"), _MAX_NESTING)
    ):
        return None
    try:
        same = _EVENT.check(doc)
    except (ValueError, AssertionError):
        return None
    # The compact JSON of what was decoded has each key once: if it is raw, so has raw.
    as_sent = not unknown and _ENCODER.encode(event) == raw
    if not as_sent and not _each_key_once(raw):
        return None
    if as_sent and same and isinstance(raw, bytes):
        return doc, raw  # what mendline's emitters write: stored as it came
    if unknown:
        for name, info in _DEFAULTS:
            if name not in doc:
                doc[name] = info.get_default(call_default_factory=True)
    return doc, _ENCODER.encode(doc)


def _each_key_once(raw: bytes | str) -> bool:
    """Whether no object of ``raw`` repeats a key; False also when msgspec cannot read all of
    it (what it skipped in unknown fields, pydantic's reader may refuse: let it decide)."""
    try:
        tree = _JSON.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return False
    # Compact JSON in another order or with unknown fields, or the same with spaces (as
    # Python's json.dumps writes it), stripped of them: the same test as the Struct's.
    written = _ENCODER.encode(tree)
    if isinstance(raw, bytes) and (
        written == raw or written == msgspec.json.format(raw, indent=-1)
    ):
        return True
    try:  # escapes, numbers written otherwise: read it all
        _reject_duplicate_keys(raw)
    except InvalidEvent:
        return False
    return True


def _brackets(raw: bytes | str) -> int:
    """An upper bound of how deeply ``raw`` nests (a count of its opening brackets)."""
    if isinstance(raw, bytes):
        return len(raw) - len(raw.translate(None, b"[{"))
    return raw.count("[") + raw.count("{")


def _deeper_than(value: Any, levels: int) -> bool:
    if levels < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper_than(item, levels - 1) for item in value.values())
    if isinstance(value, list):
        return any(_deeper_than(item, levels - 1) for item in value)
    return False
