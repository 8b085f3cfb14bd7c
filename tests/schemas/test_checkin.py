"""CheckIn v1 on the wire: the shipped JSON Schema is the model's, and parsing is strict."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from mendline.schemas.checkin import (
    CHECKIN_JSON_SCHEMA_PATH,
    MAX_CHECKIN_BYTES,
    checkin_json_schema_text,
    parse_checkin,
)
from mendline.schemas.errors import InvalidEvent

SCHEMA = json.loads(CHECKIN_JSON_SCHEMA_PATH.read_text())
VALID: dict[str, Any] = {
    "schema_version": 1,
    "checkin_id": "6f1c1f5e-2f7e-4d43-9a53-3b1c1f5e2f7e",
    "check": "nightly-export",
    "status": "fail",
    "timestamp": "2026-12-05T03:00:12.5+01:00",
    "run_id": "2026-12-05",
    "environment": "production",
    "duration": 12.5,
    "message": "exit status 2",
    "host": "cron-1",
}


def with_(**fields: Any) -> dict[str, Any]:
    return {**VALID, **fields}


def test_the_shipped_json_schema_file_is_current() -> None:
    assert CHECKIN_JSON_SCHEMA_PATH.read_text() == checkin_json_schema_text(), (
        "schemas/checkin.v1.json is stale: run `mendline schema --checkin --write`"
    )


def test_the_documented_example_is_valid_to_the_schema_and_to_the_model() -> None:
    jsonschema.validate(VALID, SCHEMA)
    checkin = parse_checkin(json.dumps(VALID).encode())
    assert checkin.timestamp == datetime(2026, 12, 5, 2, 0, 12, 500000, tzinfo=UTC)
    assert (checkin.check, checkin.status, checkin.duration) == ("nightly-export", "fail", 12.5)
    minimal = {
        k: VALID[k] for k in ("schema_version", "checkin_id", "check", "status", "timestamp")
    }
    jsonschema.validate(minimal, SCHEMA)
    assert parse_checkin(json.dumps(minimal)).environment == "production"


@pytest.mark.parametrize(
    "doc",
    [
        with_(status="done"),
        with_(schema_version=True),
        with_(schema_version="1"),
        with_(schema_version=2),
        with_(check="two words"),
        with_(duration=-1),
        with_(unknown="field"),
        with_(message="x" * 4001),
        {k: v for k, v in VALID.items() if k != "timestamp"},
    ],
)
def test_what_the_model_refuses_the_schema_refuses(doc: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        parse_checkin(json.dumps(doc))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (json.dumps(with_(status="done")), "invalid", "status"),
        (json.dumps(with_(schema_version=1.0)), "invalid", "schema_version"),
        (json.dumps(with_(schema_version=True)), "invalid", "schema_version"),
        (json.dumps(with_(schema_version=2)), "unknown_schema_version", "2"),
        ('{"check": "a", ' + json.dumps(VALID)[1:], "invalid", "duplicate key"),
        (json.dumps(with_(timestamp="2026-12-05T03:00:00")), "invalid", "timestamp"),
        ("[1]", "not_json", "not an object"),
        ("{", "not_json", ""),
        (json.dumps(with_(message="x" * MAX_CHECKIN_BYTES)), "too_large", "bytes"),
        (None, "not_json", "no value"),
    ],
)
def test_a_bad_record_is_refused_with_its_reason(raw: str | None, reason: str, detail: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_checkin(raw.encode() if raw is not None else None)
    assert refused.value.reason == reason
    assert detail in refused.value.detail
