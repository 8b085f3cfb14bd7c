"""The compiled parse (msgspec types compiled from the models) and the models' own parse agree:
on a corpus of several hundred wire messages, the same are accepted, as the same dict, content
hash and stored JSON, and the same are refused, with the same reason and detail."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
import pytest
from pydantic import BaseModel, Field, PlainValidator
from pydantic_core import to_json

from mendline.schemas.compiled_event import compile_model, decode_event, parse_event_compiled
from mendline.schemas.errors import InvalidEvent
from mendline.schemas.event import ErrorEvent, ExceptionInfo, Frame, content_hash, parse_event_exact
from tests.schemas.event_corpus import Case, corpus

CORPUS = corpus()


def _outcome(parse: Any, raw: bytes | str) -> tuple[dict[str, Any], bytes] | InvalidEvent:
    try:
        result: tuple[dict[str, Any], bytes] = parse(raw)
    except InvalidEvent as exc:
        return exc
    return result


def test_the_corpus_is_large_and_has_both_kinds() -> None:
    accepted = sum(not isinstance(_outcome(parse_event_exact, c.raw), InvalidEvent) for c in CORPUS)
    assert len(CORPUS) >= 600 and 200 <= accepted <= len(CORPUS) - 200


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_the_compiled_parse_agrees_with_the_models(case: Case) -> None:
    expected = _outcome(parse_event_exact, case.raw)
    got = _outcome(parse_event_compiled, case.raw)
    if isinstance(expected, InvalidEvent):
        assert isinstance(got, InvalidEvent), "accepted what the models refuse"
        assert (got.reason, got.detail) == (expected.reason, expected.detail)
        return
    assert not isinstance(got, InvalidEvent), f"refused what the models accept: {got}"
    (doc, stored), (expected_doc, expected_stored) = got, expected
    # The same values, keys in the same order, of the same types (1 is not 1.0 nor true).
    assert doc == expected_doc and to_json(doc) == to_json(expected_doc)
    assert content_hash(doc) == content_hash(expected_doc)
    # What is stored: the same bytes, or (a float's exponent written without its +) the same
    # JSON value.
    assert stored == expected_stored or _json_value(stored) == _json_value(expected_stored)
    assert (decode_event(case.raw) is None) == case.handed_over, (
        "left to the models' parse" if case.handed_over else "not left to the models' parse"
    )


def _json_value(data: bytes) -> bytes:
    return to_json(json.loads(data))


def test_what_the_compiled_parse_stores_differs_only_in_a_float_exponent() -> None:
    raw = (
        b'{"schema_version":1,"event_id":"%s","timestamp":"2026-11-29T19:13:38Z",' % (b"0" * 32)
        + b'"service":"s","environment":"e","level":"error","message":"m","context":{"k":1e20}}'
    )
    assert parse_event_exact(raw)[1] == raw.replace(b"1e20", b"1e+20")
    assert parse_event_compiled(raw)[1] == raw


def test_the_compiled_structs_have_every_field_of_the_models_in_their_order() -> None:
    event = compile_model(ErrorEvent)
    exception = event.held["exceptions"]
    frame = exception.held["frames"]
    assert set(event.held) == {"exceptions"} and set(exception.held) == {"frames"}
    for model, compiled in [(ErrorEvent, event), (ExceptionInfo, exception), (Frame, frame)]:
        assert compiled.model is model
        for struct in (compiled.strict, compiled.lenient):
            fields = msgspec.structs.fields(struct)
            assert [f.name for f in fields] == list(model.model_fields)
            required = [info.is_required() for info in model.model_fields.values()]
            assert [f.required for f in fields] == required


class _Unmirrored(BaseModel):
    name: Annotated[str, PlainValidator(str.strip)] = Field(max_length=10)


class _Unanchored(BaseModel):
    name: str = Field(pattern=r"^x+")


def test_a_field_the_compiled_path_cannot_mirror_is_refused_when_it_is_compiled() -> None:
    with pytest.raises(TypeError, match=r"_Unmirrored\.name: no compiled form"):
        compile_model(_Unmirrored)
    with pytest.raises(TypeError, match=r"_Unanchored\.name: no compiled form for the pattern"):
        compile_model(_Unanchored)


def test_the_pattern_reaches_the_end_of_the_text_as_in_pydantic() -> None:
    raw = json.dumps({**json.loads(_base()), "event_id": "0" * 32 + "\n"})
    with pytest.raises(InvalidEvent, match="event_id"):
        parse_event_compiled(raw.encode())


def _base() -> bytes:
    return next(c.raw for c in CORPUS if c.name == "full")  # type: ignore[return-value]
