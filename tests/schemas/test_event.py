from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from mendline.schemas.errors import InvalidEvent
from mendline.schemas.event import (
    JSON_SCHEMA_PATH,
    content_hash,
    json_schema_text,
    parse_event,
    parse_event_dict,
    parse_event_exact,
)
from tests.schemas.event_cases import BAD_INPUT, COMPACT, SHAPES, STRICT, VALID, with_


def test_the_shipped_json_schema_file_is_current() -> None:
    assert JSON_SCHEMA_PATH.read_text() == json_schema_text(), (
        "schemas/error-event.v1.json is stale: run `mendline schema --write`"
    )


def test_the_json_schema_accepts_the_documented_example_and_the_model_agrees() -> None:
    jsonschema.validate(VALID, json.loads(JSON_SCHEMA_PATH.read_text()))
    event = parse_event(json.dumps(VALID))
    assert event.exceptions[0].frames[0].function == "parse"
    assert event.timestamp == datetime(2026, 11, 29, 19, 13, 38, 123456, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    BAD_INPUT,
)
def test_bad_input_is_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == reason
    # the consumer's dict parser applies the very same rules
    with pytest.raises(InvalidEvent) as caught_dict:
        parse_event_dict(raw)
    assert (caught_dict.value.reason, caught_dict.value.detail) == (
        caught.value.reason,
        caught.value.detail,
    )


@pytest.mark.parametrize(
    "doc",
    SHAPES,
)
def test_the_dict_parser_gives_the_models_shape(doc: dict[str, object]) -> None:
    raw = json.dumps(doc)
    model = parse_event(raw).model_dump()
    parsed = parse_event_dict(raw)
    # Nested optional keys are left out when not sent; the rest is the model's shape.
    for exc, model_exc in zip(parsed["exceptions"], model["exceptions"], strict=True):
        for frame, model_frame in zip(exc.get("frames", []), model_exc["frames"], strict=True):
            assert frame == {k: v for k, v in model_frame.items() if k in frame}
        assert {k: v for k, v in model_exc.items() if k in exc and k != "frames"} == {
            k: v for k, v in exc.items() if k != "frames"
        }
    assert {k: v for k, v in parsed.items() if k != "exceptions"} == {
        k: v for k, v in model.items() if k != "exceptions"
    }


def test_timestamps_with_offsets_are_stored_in_utc() -> None:
    event = parse_event(json.dumps({**VALID, "timestamp": "2026-11-29T21:00:00+02:00"}))
    assert event.timestamp.isoformat() == "2026-11-29T19:00:00+00:00"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = parse_event(json.dumps({**VALID, "added_in_v1_5": True}))
    assert event.message == "order_failed"


@pytest.mark.parametrize(
    ("raw", "names"),
    STRICT,
)
def test_strict_parsing_rejects_duplicates_and_coercions(raw: bytes, names: str) -> None:
    for parse in (parse_event, parse_event_dict, parse_event_exact):
        with pytest.raises(InvalidEvent) as caught:
            parse(raw)
        assert caught.value.reason == "invalid"
        assert names in caught.value.detail


def test_the_content_hash_of_an_event_is_what_it_was_before_count_and_lost_were_added() -> None:
    # Taken before v1 gained count, first_timestamp and lost: a replay of an event stored
    # then must still be a duplicate, not a conflict.
    before = "26569fc7a8ab1f61afc66f7da74e43762b1dba1c4783bb97fc61b6cf106b14e1"
    assert content_hash(parse_event_dict(json.dumps(VALID))) == before
    assert content_hash(parse_event_dict(json.dumps({**VALID, "count": 1, "lost": 0}))) == before
    assert content_hash(parse_event_dict(json.dumps({**VALID, "count": 2}))) != before
    assert content_hash(parse_event_dict(json.dumps({**VALID, "lost": 3}))) != before


def test_a_duplicate_key_is_named_escaped_and_cut_short() -> None:
    key = json.dumps("k\u001b[31m" + "x" * 500)  # a terminal escape, written as \\u001b
    raw = with_(COMPACT, '"context":{"order_id":1}', f'"context":{{{key}:0,{key}:1}}')
    with pytest.raises(InvalidEvent) as caught:
        parse_event_dict(raw)
    assert "duplicate key" in caught.value.detail and "\u001b" not in caught.value.detail
    assert len(caught.value.detail) < 400


def test_the_content_hash_ignores_key_order_and_omitted_nulls_but_not_content() -> None:
    base = content_hash(parse_event_dict(json.dumps(VALID)))
    reordered = {k: VALID[k] for k in reversed(list(VALID))}
    reordered["context"] = {"b": 2, "a": 1}
    assert content_hash(parse_event_dict(json.dumps(reordered))) != base  # other context
    same_context = {**VALID, "context": {"a": 1, "b": 2}}
    assert content_hash(parse_event_dict(json.dumps(reordered))) == content_hash(
        parse_event_dict(json.dumps(same_context))
    )
    assert content_hash(parse_event_dict(json.dumps({**VALID, "unknown": 1}))) == base
    sparse = {k: v for k, v in VALID.items() if v is not None}
    exact, _ = parse_event_exact(json.dumps(sparse))
    assert "release" not in exact and content_hash(exact) == base
    assert content_hash(parse_event_dict(json.dumps({**VALID, "message": "other"}))) != base
    # an offset is the same instant: validation stores it in UTC
    assert (
        content_hash(
            parse_event_dict(json.dumps({**VALID, "timestamp": "2026-11-29T21:13:38.123456+02:00"}))
        )
        == base
    )
