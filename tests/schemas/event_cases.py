"""ErrorEvent v1 documents and wire messages, valid and not, that the parsers' tests share."""

from __future__ import annotations

import json
from typing import Any

VALID: dict[str, Any] = {
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

#: Bad wire messages and the reason each is refused with.
BAD_INPUT: list[tuple[bytes, str]] = [
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
]

#: Valid events of several shapes (optional fields left out, extra fields, roll-ups).
SHAPES: list[dict[str, Any]] = [
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
]


def with_(text: str, old: str, new: str) -> bytes:
    """VALID as compact JSON with one piece of its text replaced (a duplicate key, say)."""
    raw = json.dumps(VALID, separators=(",", ":"))
    assert old in raw
    return raw.replace(old, new, 1).encode()


COMPACT = json.dumps(VALID, separators=(",", ":"))


#: Messages refused as ``invalid`` for a duplicate key or a coercion, with what the detail names.
STRICT: list[tuple[bytes, str]] = [
    # duplicate keys, at the top, in a frame, deep in the context: the validator would
    # keep the last, another reader the first
    (with_(COMPACT, '"level":"error"', '"level":"debug","level":"error"'), '"level"'),
    (
        with_(COMPACT, '"in_app":true', '"in_app":true,"in_app":false'),
        '"in_app" in "exceptions.0.frames.0"',
    ),
    (
        with_(COMPACT, '"context":{"order_id":1}', '"context":{"a":[{"k":1,"k":2}]}'),
        '"k" in "context.a.0"',
    ),
    (with_(COMPACT, '"tags":{"region":"eu"}', '"tags":{"r":"a","r":"b"}'), '"r" in "tags"'),
    # no coercion: a boolean or a float is not the schema version, "yes" is not a boolean,
    # 1.0 and "12" are not integers
    (with_(COMPACT, '"schema_version":1', '"schema_version":true'), "schema_version"),
    (with_(COMPACT, '"schema_version":1', '"schema_version":1.0'), "schema_version"),
    (with_(COMPACT, '"in_app":true', '"in_app":"yes"'), "in_app"),
    (with_(COMPACT, '"in_app":true', '"in_app":1'), "in_app"),
    (with_(COMPACT, '"lineno":12', '"lineno":12.0'), "lineno"),
    (with_(COMPACT, '"lineno":12', '"lineno":"12"'), "lineno"),
    (with_(COMPACT, '"frames_omitted":0', '"frames_omitted":0.0'), "frames_omitted"),
    (
        with_(COMPACT, '"timestamp":"2026-11-29T19:13:38.123456Z"', '"timestamp":1764443618'),
        "timestamp",
    ),
]
