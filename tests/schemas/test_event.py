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

VALID = {
    "schema_version": 1,
    "event_id": "0" * 32,
    "timestamp": "2026-11-29T19:13:38.123456Z",
    "service": "checkout-api",
    "environment": "production",
    "release": None,
    "host": None,
    "level": "error",
    "logger": "app.orders",
    "message": "order_failed",
    "exceptions": [
        {
            "type": "ValueError",
            "module": "builtins",
            "value": "invalid literal",
            "frames": [
                {
                    "filename": "/srv/app/orders.py",
                    "module": "app.orders",
                    "function": "parse",
                    "lineno": 12,
                    "context_line": "return int(q)",
                    "in_app": True,
                }
            ],
            "frames_omitted": 0,
        }
    ],
    "context": {"order_id": 1},
    "tags": {"region": "eu"},
    "fingerprint": None,
}


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
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_json"),
        (json.dumps({**VALID, "schema_version": 2}).encode(), "unknown_schema_version"),
        (json.dumps({**VALID, "event_id": "xyz"}).encode(), "invalid"),
        (json.dumps({**VALID, "level": "fatal"}).encode(), "invalid"),
        (json.dumps({**VALID, "timestamp": "2026-11-29T19:13:38"}).encode(), "invalid"),
        (json.dumps({**VALID, "message": "é" * 5000}).encode(), "invalid"),
        (json.dumps({**VALID, "context": {"k": "v" * 17_000}}).encode(), "invalid"),
        (json.dumps({**VALID, "context": {"pad": "x" * 300_000}}).encode(), "too_large"),
        (json.dumps({**VALID, "timestamp": "9999-12-31T23:59:59-05:00"}).encode(), "invalid"),
        (json.dumps({**VALID, "context": {"ratio": float("nan")}}).encode(), "not_json"),
        (json.dumps({**VALID, "context": {"x": [1, float("inf")]}}).encode(), "not_json"),
        (json.dumps({**VALID, "count": 0}).encode(), "invalid"),
        (json.dumps({**VALID, "count": 2.0}).encode(), "invalid"),
        (json.dumps({**VALID, "count": "5"}).encode(), "invalid"),
        (json.dumps({**VALID, "count": 10**10}).encode(), "invalid"),
        (json.dumps({**VALID, "lost": -1}).encode(), "invalid"),
        (json.dumps({**VALID, "first_timestamp": 1764000000}).encode(), "invalid"),
    ],
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
    [
        VALID,
        {k: v for k, v in VALID.items() if k not in {"release", "host", "context", "tags"}},
        {
            **VALID,
            "exceptions": [
                {
                    "type": "E",
                    "value": "v",
                    "frames": [{"filename": "f.py", "function": "g", "in_app": True}],
                }
            ],
        },
        {**VALID, "unknown_extra": [1, 2]},
        {**VALID, "count": 250, "first_timestamp": "2026-11-29T19:13:30Z", "lost": 12},
        {**VALID, "timestamp": "2026-11-29T21:00:00+02:00"},
    ],
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


def _with(text: str, old: str, new: str) -> bytes:
    """VALID as compact JSON with one piece of its text replaced (a duplicate key, say)."""
    raw = json.dumps(VALID, separators=(",", ":"))
    assert old in raw
    return raw.replace(old, new, 1).encode()


_COMPACT = json.dumps(VALID, separators=(",", ":"))


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        # duplicate keys, at the top, in a frame, deep in the context: the validator would
        # keep the last, another reader the first
        (_with(_COMPACT, '"level":"error"', '"level":"debug","level":"error"'), '"level"'),
        (
            _with(_COMPACT, '"in_app":true', '"in_app":true,"in_app":false'),
            '"in_app" in "exceptions.0.frames.0"',
        ),
        (
            _with(_COMPACT, '"context":{"order_id":1}', '"context":{"a":[{"k":1,"k":2}]}'),
            '"k" in "context.a.0"',
        ),
        (_with(_COMPACT, '"tags":{"region":"eu"}', '"tags":{"r":"a","r":"b"}'), '"r" in "tags"'),
        # no coercion: a boolean or a float is not the schema version, "yes" is not a boolean,
        # 1.0 and "12" are not integers
        (_with(_COMPACT, '"schema_version":1', '"schema_version":true'), "schema_version"),
        (_with(_COMPACT, '"schema_version":1', '"schema_version":1.0'), "schema_version"),
        (_with(_COMPACT, '"in_app":true', '"in_app":"yes"'), "in_app"),
        (_with(_COMPACT, '"in_app":true', '"in_app":1'), "in_app"),
        (_with(_COMPACT, '"lineno":12', '"lineno":12.0'), "lineno"),
        (_with(_COMPACT, '"lineno":12', '"lineno":"12"'), "lineno"),
        (_with(_COMPACT, '"frames_omitted":0', '"frames_omitted":0.0'), "frames_omitted"),
        (
            _with(_COMPACT, '"timestamp":"2026-11-29T19:13:38.123456Z"', '"timestamp":1764443618'),
            "timestamp",
        ),
    ],
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
    raw = _with(_COMPACT, '"context":{"order_id":1}', f'"context":{{{key}:0,{key}:1}}')
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
