"""A corpus of ErrorEvent v1 wire messages, valid and not, for the test that the compiled parse
(msgspec) and the models' parse (pydantic) agree: the shared cases, realistic events, and
mutations made field by field from the models themselves, so that a field the models gain is
mutated too (and a type this does not know how to mutate fails the corpus)."""

from __future__ import annotations

import asyncio
import copy
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic_core import to_json

from mendline.ingest.app import Capture, EventBuilder, encode_event
from mendline.schemas.event import ErrorEvent, ExceptionInfo, Frame
from mendline.schemas.limits import MAX_CONTEXT_BYTES, MAX_EVENT_BYTES
from tests.integration.event_factory import encode, make_event
from tests.schemas.event_cases import BAD_INPUT, SHAPES, STRICT, VALID


@dataclass(frozen=True)
class Case:
    """One wire message. ``handed_over``: valid, yet the compiled path leaves it to pydantic
    (a form msgspec does not read as pydantic does): agreement then costs two parses."""

    name: str
    raw: bytes | str
    handed_over: bool = False


#: VALID with every optional field of every level set.
FULL: dict[str, Any] = {
    **VALID,
    "release": "1.2.3",
    "host": "web-1",
    "exceptions": [
        {
            **VALID["exceptions"][0],
            "frames": [
                {
                    **VALID["exceptions"][0]["frames"][0],
                    "abs_path": "/srv/app/orders.py",
                    "colno": 12,
                    "package": "orders-1.0.jar",
                },
                *VALID["exceptions"][0]["frames"][1:],
            ],
            "exception_id": 1,
            "parent_id": 0,
            "source": "exceptions[0]",
            "is_exception_group": False,
        },
        {
            "type": "ExceptionGroup",
            "module": "builtins",
            "value": "1 sub-exception",
            "frames": [],
            "frames_omitted": 0,
            "exception_id": 0,
            "is_exception_group": True,
        },
    ],
    "context": {"order_id": 1, "ratio": 0.25, "nested": {"list": [1, "two", None, True]}},
    "tags": {"region": "eu", "tier": "web"},
    "fingerprint": ["{{ default }}", "orders"],
    "original_timestamp": "2026-11-29T19:13:30Z",
    "count": 3,
    "first_timestamp": "2026-11-29T19:13:00+01:00",
    "lost": 2,
    "platform": "node",
}

# Where each model's fields are, in FULL.
_WHERE: dict[type[BaseModel], tuple[Any, ...]] = {
    ErrorEvent: (),
    ExceptionInfo: ("exceptions", 0),
    Frame: ("exceptions", 0, "frames", 0),
}

#: Values of every JSON kind, each a wrong type for most fields.
KINDS: list[Any] = [None, True, False, 0, 1, -1, 1.0, 1.5, "", "x", [], ["x"], {}, {"k": "v"}]

#: Timestamps: RFC 3339 and pydantic's other forms, cut or rounded fractions, the overflow.
TIMESTAMPS = [
    "2026-11-29T19:13:38Z",
    "2026-11-29t19:13:38z",
    "2026-11-29 19:13:38Z",
    "2026-11-29_19:13:38Z",
    "2026-11-29T19:13Z",
    "2026-11-29T19:13:38.1Z",
    "2026-11-29T19:13:38.1234567Z",
    "2026-11-29T19:13:38.9999999Z",
    "2026-11-29T19:13:38,5Z",
    "2026-11-29T19:13:38+02:00",
    "2026-11-29T19:13:38+0200",
    "2026-11-29T19:13:38+02",
    "2026-11-29T19:13:38-00:00",
    "2026-11-29T19:13:38+23:59",
    "2026-11-29T19:13:38+24:00",
    "2026-11-29T19:13:38",
    "2026-11-29",
    "2026-11-29T24:00:00Z",
    "2026-11-29T23:59:60Z",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-05:00",
    "1764443618",
    "1764443618.5",
    "-1",
    " 2026-11-29T19:13:38Z",
    "2026-11-29T19:13:38Z\n",
    "now",
]


def corpus() -> list[Case]:
    """Every case, a few hundred, with unique names."""
    cases = [
        *_shared(),
        *_realistic(),
        *_mutations(),
        *_duplicates(),
        *_unicode(),
        *_syntax(),
        *_sizes(),
    ]
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "two cases of one name"
    return cases


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _shared() -> Iterator[Case]:
    for i, (raw, _) in enumerate(BAD_INPUT):
        yield Case(f"bad-input-{i}", raw)
    for i, doc in enumerate(SHAPES):
        yield Case(f"shape-{i}", json.dumps(doc).encode())
        yield Case(f"shape-{i}-str", json.dumps(doc))
        yield Case(f"shape-{i}-compact", _compact(doc))
    for i, (raw, _) in enumerate(STRICT):
        yield Case(f"strict-{i}", raw)
        yield Case(f"strict-{i}-str", raw.decode())
    yield Case("full", _compact(FULL))
    yield Case("full-pretty", json.dumps(FULL, indent=2).encode())
    yield Case("full-ascii", json.dumps(FULL).encode())
    yield Case("full-reversed", _compact({k: FULL[k] for k in reversed(FULL)}))


def _realistic() -> Iterator[Case]:
    for frames in (0, 1, 10, 100):
        event = make_event(frames, frames, frames=frames)
        yield Case(f"factory-{frames}-frames", encode(event))
        yield Case(f"factory-{frames}-frames-canonical", to_json(event))
    builder = EventBuilder("checkout", "production", "1.0", host="web-1")

    def chained() -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("no such order: é😀") from exc

    async def grouped() -> None:
        async def fail(n: int) -> None:
            raise KeyError(f"sku-{n}")

        async with asyncio.TaskGroup() as group:
            group.create_task(fail(1))
            group.create_task(fail(2))

    for name, run in (("chain", chained), ("group", lambda: asyncio.run(grouped()))):
        try:
            run()
        except Exception as exc:
            context = {"order": {"id": 7, "lines": [1.5, 2e-7, 1e20]}, "user": "ada"}
            capture = Capture.now("error", "app.orders", "order_failed", context, exc)
            doc, data = builder.encode(capture)
            yield Case(f"emitter-{name}", data)
            yield Case(f"emitter-{name}-reencoded", encode_event(doc))
    message = Capture.now("warning", None, "slow %s", {}, None, tags={"a": "b"})
    yield Case("emitter-message", builder.encode(message)[1])


def _set(doc: dict[str, Any], where: tuple[Any, ...], name: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    for step in where:
        target = target[step]
    if value is _MISSING:
        del target[name]
    else:
        target[name] = value
    return doc


_MISSING = object()


def _mutations() -> Iterator[Case]:
    for model, where in _WHERE.items():
        for name, info in model.model_fields.items():
            values = [_MISSING, *KINDS, *_boundaries(model, name, info.annotation, info.metadata)]
            for i, value in enumerate(values):
                doc = _set(FULL, where, name, value)
                handed_over = model is ErrorEvent and name == "context" and _deep(value)
                yield Case(f"{model.__name__}.{name}-{i}", _compact(doc), handed_over)


def _deep(value: Any) -> bool:
    # The compiled path reads nesting 100 levels deep, pydantic's JSON reader about 200.
    return isinstance(value, dict) and value.get("deep", 0) >= 100


def _boundaries(
    model: type[BaseModel], name: str, annotation: Any, metadata: list[Any]
) -> list[Any]:
    """Values at and past the field's limits, from its type and constraints."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return [
            v
            for arg in args
            if arg is not type(None)
            for v in _boundaries(model, name, arg, metadata)
        ]
    if hasattr(annotation, "__metadata__"):  # Annotated
        return _boundaries(model, name, args[0], [*metadata, *annotation.__metadata__])
    limits = {type(item).__name__: item for item in metadata}
    if annotation is str:
        return _strings(name, limits)
    if annotation is int:
        low = limits["Ge"].ge if "Ge" in limits else -(2**63)
        high = limits["Le"].le if "Le" in limits else 2**64
        return [low, low - 1, high, high + 1, 10**30, -(10**30), 2**63, 2**64]
    if annotation is bool:
        return [True, False, "true", 0, 1]
    if origin is Literal:
        return [*args, *(str(a).upper() for a in args), "", 2, 1.0]
    if annotation is AwareDatetime:
        return [*TIMESTAMPS, 1764443618, 1764443618.5, 0]
    if origin is list:
        return _lists(model, name, limits)
    if origin is dict and args == (str, str):
        return [{"k": 1}, {"k": None}, {"": ""}, {"k": "v" * 10_000}, {"é😀": "\u2028"}]
    if origin is dict:
        return _contexts()
    raise AssertionError(f"the corpus cannot mutate {model.__name__}.{name}: {annotation!r}")


def _strings(name: str, limits: dict[str, Any]) -> list[Any]:
    values: list[Any] = ["a", "\u0000", "é😀", " x ", "x\n"]
    if "MaxLen" in limits:
        n = limits["MaxLen"].max_length
        values += ["a" * n, "a" * (n + 1), "😀" * n, "😀" * (n + 1), "é" * (n // 2)]
        values += ["é" * (n // 2) + "a", "é" * n]
    if name == "event_id":
        values += ["0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 32 + "\n", "\n" + "0" * 32]
    if name == "source":
        values += ["__cause__", "__context__", "exceptions[123456]", "exceptions[1234567]"]
        values += ["__cause__\n", "exceptions[]", "exceptions[-1]", "exceptions[٣]"]
    return values


def _lists(model: type[BaseModel], name: str, limits: dict[str, Any]) -> list[Any]:
    n = limits["MaxLen"].max_length if "MaxLen" in limits else 1000
    target: Any = FULL
    for step in _WHERE[model]:
        target = target[step]
    item = (target.get(name) or ["x"])[0]
    return [[item] * n, [item] * (n + 1), [None], [1], [item, "x"]]


def _nested(depth: int, leaf: Any = 1, *, lists: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if lists else {"a": value}
    return value


def _contexts() -> list[Any]:
    """Contexts at the 16 KiB limit and past it, non-finite numbers, deep nesting."""
    pad = MAX_CONTEXT_BYTES - len(to_json({"k": ""}))
    values: list[Any] = [{"k": "x" * pad}, {"k": "x" * (pad + 1)}, {"k": "é" * (pad // 2)}]
    values += [{"k": "é" * (pad // 2) + "x"}, {"k": 1e20}, {"k": -0.0}, {"k": 5e-324}]
    values += [{"k": 2**64}, {"k": 10**4299}, {"": {"": []}}, {"NaN": "Infinity"}]
    for depth in (98, 99, 100, 101, 150, 197, 198, 199, 200):
        values.append({"deep": depth, "d": _nested(depth)})
        values.append({"deep": depth, "l": _nested(depth, lists=True)})
    return values


def _duplicates() -> Iterator[Case]:
    compact = _compact(FULL).decode()
    pairs = {
        "top": ('"service":"checkout-api"', '"service":"checkout-api","service":"checkout-api"'),
        "top-first-invalid": ('"level":"error"', '"level":"bogus","level":"error"'),
        "top-last-invalid": ('"level":"error"', '"level":"error","level":"bogus"'),
        "top-escaped": ('"level":"error"', '"level":"error","l\\u0065vel":"error"'),
        "exception": ('"type":"ValueError"', '"type":"KeyError","type":"ValueError"'),
        "frame": ('"lineno":12', '"lineno":12,"lineno":12'),
        "context": ('"order_id":1', '"order_id":1,"order_id":2'),
        "context-deep": ('"list":[1,', '"list":[{"k":1,"k":1},'),
        "tags": ('"tier":"web"', '"tier":"web","tier":"web"'),
        "unknown": ('"lost":2', '"lost":2,"extra":{"k":1,"k":1}'),
        "unknown-twice": ('"lost":2', '"lost":2,"extra":1,"extra":2'),
        "timestamp": ('"count":3', '"count":3,"timestamp":"2026-11-29T19:13:38Z"'),
    }
    for name, (old, new) in pairs.items():
        assert old in compact, name
        raw = compact.replace(old, new, 1)
        yield Case(f"duplicate-{name}", raw.encode())
        yield Case(f"duplicate-{name}-spaced", raw.replace(",", ", ").encode())


def _unicode() -> Iterator[Case]:
    compact = _compact(FULL)
    texts = {
        "surrogate-pair": b'"\\ud83d\\ude00"',
        "lone-surrogate": b'"\\ud800"',
        "lone-low-surrogate": b'"\\udc00x"',
        "reversed-pair": b'"\\udc00\\ud800"',
        "raw-surrogate": b'"\xed\xa0\x80"',
        "invalid-utf8": b'"\xff"',
        "overlong": b'"\xc0\xaf"',
        "truncated-utf8": b'"\xf0\x9f\x98"',
        "beyond-unicode": b'"\xf4\x90\x80\x80"',
        "nul-escape": b'"a\\u0000b"',
        "raw-control": b'"a\x01b"',
        "raw-tab": b'"a\tb"',
        "line-separator": '"a\u2028b"'.encode(),
        "noncharacter": '"\uffff"'.encode(),
        "bad-escape": b'"\\x41"',
        "escaped-solidus": b'"a\\/b"',
    }
    for name, text in texts.items():
        yield Case(f"unicode-message-{name}", compact.replace(b'"order_failed"', text, 1))
        yield Case(f"unicode-context-key-{name}", compact.replace(b'"ratio"', text, 1))
        yield Case(f"unicode-unknown-{name}", compact[:-1] + b',"extra":' + text + b"}")
    yield Case("unicode-bom", b"\xef\xbb\xbf" + compact)
    yield Case("unicode-utf16", json.dumps(FULL).encode("utf-16"))
    yield Case("unicode-nbsp-around", "\u00a0".encode() + compact)


def _syntax() -> Iterator[Case]:
    compact = _compact(FULL)
    for i, raw in enumerate([b"", b" ", b"null", b"1", b'"x"', b"[]", b"[{}]", b"{}", b"{"]):
        yield Case(f"syntax-{i}", raw)
    last = b'"platform":"node"'  # FULL's last field: the object's end follows it
    end = last + b"}"
    edits = {
        "trailing-comma": (end, last + b",}"),
        "comment": (b'"lost":2,', b'"lost":2 /* x */,'),
        "single-quotes": (b'"level":"error"', b"'level':'error'"),
        "nan-context": (b'"ratio":0.25', b'"ratio":NaN'),
        "infinity-context": (b'"ratio":0.25', b'"ratio":Infinity'),
        "minus-infinity-context": (b'"ratio":0.25', b'"ratio":-Infinity'),
        "overflow-context": (b'"ratio":0.25', b'"ratio":1e400'),
        "overflow-digits-context": (b'"ratio":0.25', b'"ratio":' + b"9" * 400 + b".5"),
        "underflow-context": (b'"ratio":0.25', b'"ratio":1e-400'),
        "leading-zero": (b'"ratio":0.25', b'"ratio":00.25'),
        "plus-sign": (b'"ratio":0.25', b'"ratio":+0.25'),
        "exponent": (b'"ratio":0.25', b'"ratio":2.5E-1'),
        "nan-unknown": (end, last + b',"extra":NaN}'),
        "overflow-unknown": (end, last + b',"extra":1e400}'),
        "overflow-count": (b'"count":3', b'"count":1e400'),
        "bigint-unknown": (end, last + b',"extra":' + b"7" * 4300 + b"}"),
        "bigint-too-long-unknown": (end, last + b',"extra":' + b"7" * 4301 + b"}"),
        "bigint-too-long-context": (b'"ratio":0.25', b'"ratio":' + b"7" * 4301),
        "truncated": (end, last),
        "trailing-garbage": (end, end + b" x"),
        "two-objects": (end, end + b"{}"),
        "trailing-newline": (end, end + b"\r\n"),
        "leading-spaces": (b'{"schema_version"', b' \t\n{"schema_version"'),
        "space-before-colon": (b'"level":"error"', b'"level" :"error"'),
    }
    for name, (old, new) in edits.items():
        assert old in compact, name
        handed_over = name in {"nan-unknown", "overflow-unknown"}
        yield Case(f"syntax-{name}", compact.replace(old, new, 1), handed_over)
    for depth in (99, 150, 198, 199, 200, 201):
        for lists in (False, True):
            extra = _compact(_nested(depth, lists=lists))
            kind = "list" if lists else "object"
            yield Case(
                f"syntax-unknown-{kind}-{depth}", compact[:-1] + b',"x":' + extra + b"}", True
            )
    for version in [2, 0, -1, "1", True, 1.0, None, 10**30, [1], "2"]:
        yield Case(f"schema-version-{version!r}", _compact({**FULL, "schema_version": version}))


def _sizes() -> Iterator[Case]:
    compact = _compact(FULL)
    for extra in (-1, 0, 1):
        pad = MAX_EVENT_BYTES - len(compact) - len(b',"pad":""') + extra
        raw = compact[:-1] + b',"pad":"' + b"x" * pad + b'"}'
        yield Case(f"size-{len(raw) - MAX_EVENT_BYTES:+d}", raw)
        yield Case(f"size-{len(raw) - MAX_EVENT_BYTES:+d}-str", raw.decode())
    many = {
        **FULL,
        "exceptions": [{**VALID["exceptions"][0], "frames": VALID["exceptions"][0]["frames"] * 100}]
        * 25,
    }
    yield Case("size-25-exceptions-100-frames", _compact(many))
