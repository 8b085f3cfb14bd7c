"""What becomes of each item type, client reports and check-ins read from real SDK payloads
and from what is malformed, and an event's rate-limit category."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mendline.ingest.relay._envelope import parse_envelope
from mendline.ingest.relay._items import (
    ClientReport,
    Discarded,
    SentryCheckIn,
    event_category,
    item_handling,
    item_label,
    parse_check_in,
    parse_client_report,
)
from mendline.schemas.errors import InvalidEvent

DATA = Path(__file__).parent / "data"
CHECK_IN_ID = "83a7c03ed0a04e1b97e2e3b18d38f244"


def payload_of(name: str, index: int = 0) -> bytes:
    return parse_envelope((DATA / f"{name}.envelope").read_bytes()).items[index].payload


# --- item types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item_type", "handling", "label"),
    [
        ("event", "convert", "event"),
        ("attachment", "attachment", "attachment"),
        ("client_report", "client_report", "client_report"),
        ("check_in", "check_in", "check_in"),
        *(
            (item_type, "drop", item_type)
            for item_type in (
                "transaction",
                "span",
                "profile",
                "profile_chunk",
                "replay_event",
                "replay_recording",
                "replay_video",
                "session",
                "sessions",
                "log",
                "otel_log",
                "trace_metric",
                "statsd",
                "metric_buckets",
                "user_report",
                "feedback",
            )
        ),
        # unknown types: dropped and counted, under one label whatever their name
        ("something_new", "drop", "unknown"),
        ("Event", "drop", "unknown"),
        ("", "drop", "unknown"),
    ],
)
def test_what_becomes_of_an_item(item_type: str, handling: str, label: str) -> None:
    assert item_handling(item_type) == handling
    assert item_label(item_type) == label


# --- event categories --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "category"),
    [
        ({"exception": {"values": [{"type": "ValueError"}]}}, "error"),
        ({"exception": [{"type": "ValueError"}]}, "error"),  # a bare list (Go, GlitchTip)
        ({"sentry.interfaces.Exception": {"values": [{"type": "E"}]}}, "error"),  # legacy
        ({"message": "hello"}, "default"),
        ({"logentry": {"message": "hello %s", "params": ["x"]}}, "default"),
        ({}, "default"),
        ({"exception": {"values": []}, "message": "m"}, "default"),  # no exception in it
        ({"exception": {"values": None}}, "default"),
        ({"exception": None}, "default"),
        ({"exception": "nonsense"}, "default"),
        ({"type": "transaction", "exception": {"values": [{}]}}, "transaction"),
        ({"csp": {"blocked_uri": "x"}}, "security"),
        ({"expectct": {}}, "security"),
    ],
)
def test_event_category(event: dict[str, Any], category: str) -> None:
    assert event_category(event) == category


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("python_exception", "error"),
        ("python_message", "default"),  # capture_message: no exception
        ("node_exception", "error"),
        ("node_message", "error"),  # Node 11 sends a synthetic exception with a message
    ],
)
def test_event_category_of_real_events(name: str, category: str) -> None:
    assert event_category(json.loads(payload_of(name))) == category


# --- client reports ----------------------------------------------------------------------


def test_a_node_client_report() -> None:
    report = parse_client_report(payload_of("node_client_report"))
    assert report == ClientReport(
        1796609172.704,
        (Discarded("before_send", "error", 1), Discarded("sample_rate", "transaction", 1)),
        0,
    )


@pytest.mark.parametrize(
    ("payload", "report"),
    [
        # the develop docs' example: an ISO timestamp
        (
            b'{"timestamp":"2020-02-07T14:16:00Z","discarded_events":['
            b'{"reason":"queue_overflow","category":"error","quantity":23},'
            b'{"reason":"ratelimit_backoff","category":"transaction","quantity":1321}]}',
            ClientReport(
                1581084960.0,
                (
                    Discarded("queue_overflow", "error", 23),
                    Discarded("ratelimit_backoff", "transaction", 1321),
                ),
            ),
        ),
        # Python sends a float; offsets as well as Z
        (b'{"timestamp":1581084960.5,"discarded_events":[]}', ClientReport(1581084960.5, ())),
        (b'{"timestamp":1581084960}', ClientReport(1581084960.0, ())),
        (b'{"timestamp":"2020-02-07T15:16:00+01:00"}', ClientReport(1581084960.0, ())),
        # a timestamp that cannot be read is no timestamp, not a malformed report
        (b'{"timestamp":"yesterday"}', ClientReport(None, ())),
        (b'{"timestamp":"2020-02-07T14:16:00"}', ClientReport(None, ())),  # no zone
        (b'{"timestamp":true}', ClientReport(None, ())),
        (b'{"timestamp":1e400}', ClientReport(None, ())),  # infinity
        (b'{"timestamp":' + b"9" * 400 + b"}", ClientReport(None, ())),  # too big for a float
        (b'{"timestamp":[1]}', ClientReport(None, ())),
        (b"{}", ClientReport(None, ())),
        # reasons and categories we do not know are counted as "other"
        (
            b'{"discarded_events":[{"reason":"new_reason","category":"new_cat","quantity":2},'
            b'{"reason":"backpressure","category":"log_item","quantity":3}]}',
            ClientReport(
                None,
                (Discarded("other", "other", 2), Discarded("backpressure", "log_item", 3)),
            ),
        ),
        # JavaScript's 1.0 is 1
        (
            b'{"discarded_events":[{"reason":"send_error","category":"error","quantity":1.0}]}',
            ClientReport(None, (Discarded("send_error", "error", 1),)),
        ),
        # the Relay-to-Relay lists are not an SDK's to send: ignored
        (
            b'{"rate_limited_events":[{"reason":"x","category":"error","quantity":5}]}',
            ClientReport(None, ()),
        ),
    ],
)
def test_client_reports(payload: bytes, report: ClientReport) -> None:
    assert parse_client_report(payload) == report


@pytest.mark.parametrize(
    ("payload", "kept", "malformed"),
    [
        (b"", 0, 1),
        (b"not json", 0, 1),
        (b"[]", 0, 1),
        (b"[" * 100_000, 0, 1),  # too deep for the parser
        (b'{"discarded_events":{}}', 0, 1),
        (
            b'{"discarded_events":[{"reason":"before_send","category":"error","quantity":1},'
            b'{"reason":"before_send","category":"error"},'  # no quantity
            b'{"reason":"before_send","category":"error","quantity":-1},'
            b'{"reason":"before_send","category":"error","quantity":1.5},'
            b'{"reason":"before_send","category":"error","quantity":"3"},'
            b'{"reason":"before_send","category":"error","quantity":true},'
            b'{"reason":1,"category":"error","quantity":1},'
            b'{"category":"error","quantity":1},'
            b'{"reason":"before_send","category":null,"quantity":1},'
            b'"line",null,7]}',
            1,
            11,
        ),
    ],
)
def test_a_malformed_client_report_is_counted_never_raised(
    payload: bytes, kept: int, malformed: int
) -> None:
    report = parse_client_report(payload)
    assert (len(report.discarded), report.malformed) == (kept, malformed)


# --- check-ins ---------------------------------------------------------------------------


def test_a_python_check_in() -> None:
    check_in = parse_check_in(payload_of("python_check_in"))
    assert check_in == SentryCheckIn(
        check_in_id=check_in.check_in_id,
        monitor_slug="nightly-report",
        status="ok",
        duration=12.5,
        environment="test",
        release="myapp@1.0.0",
        margin_minutes=5,
    )
    assert len(check_in.check_in_id) == 32


def check_in(**fields: Any) -> bytes:
    return json.dumps(
        {"check_in_id": CHECK_IN_ID, "monitor_slug": "my-monitor", "status": "ok", **fields}
    ).encode()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # the develop docs' example, in full
        (
            check_in(
                status="in_progress",
                duration=10.0,
                release="1.0.0",
                environment="production",
                contexts={"trace": {"trace_id": "8f431b7aa08441bbbd5a0100fd91f9fe"}},
                monitor_config={
                    "schedule": {"type": "crontab", "value": "0 * * * *"},
                    "checkin_margin": 5,
                    "max_runtime": 30,
                    "timezone": "America/Los_Angeles",
                    "failure_issue_threshold": 2,
                    "recovery_threshold": 1,
                    "owner": "user:123",
                },
            ),
            SentryCheckIn(
                CHECK_IN_ID,
                "my-monitor",
                "in_progress",
                duration=10.0,
                environment="production",
                release="1.0.0",
                margin_minutes=5,
                max_runtime_minutes=30,
                timezone="America/Los_Angeles",
            ),
        ),
        # sentry-go's spelling of the margin
        (
            check_in(monitor_config={"check_in_margin": 7}),
            SentryCheckIn(CHECK_IN_ID, "my-monitor", "ok", margin_minutes=7),
        ),
        # dashes and capitals in the id; the all-zero id ("the latest in-progress one")
        (
            check_in(check_in_id="83A7C03E-D0A0-4E1B-97E2-E3B18D38F244"),
            SentryCheckIn(CHECK_IN_ID, "my-monitor", "ok"),
        ),
        (
            check_in(check_in_id="0" * 32, status="error", duration=3),
            SentryCheckIn("0" * 32, "my-monitor", "error", duration=3.0),
        ),
        # statuses: missed is the server's to compute, anything else is unknown
        (check_in(status="missed"), SentryCheckIn(CHECK_IN_ID, "my-monitor", "unknown")),
        (check_in(status="timeout"), SentryCheckIn(CHECK_IN_ID, "my-monitor", "unknown")),
        (check_in(status=None), SentryCheckIn(CHECK_IN_ID, "my-monitor", "unknown")),
        # slugs are cut to 50 characters, as Relay cuts them (characters, not bytes)
        (check_in(monitor_slug="s" * 60), SentryCheckIn(CHECK_IN_ID, "s" * 50, "ok")),
        (check_in(monitor_slug="🦀" * 60), SentryCheckIn(CHECK_IN_ID, "🦀" * 50, "ok")),
        (
            check_in(environment="e" * 64),
            SentryCheckIn(CHECK_IN_ID, "my-monitor", "ok", environment="e" * 64),
        ),
        (check_in(monitor_config="nonsense"), SentryCheckIn(CHECK_IN_ID, "my-monitor", "ok")),
    ],
)
def test_check_ins(payload: bytes, expected: SentryCheckIn) -> None:
    assert parse_check_in(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"not json", "not_json", "not JSON"),
        (b"[]", "not_json", "not a JSON object"),
        (check_in(check_in_id=None), "invalid", "check_in_id"),
        (check_in(check_in_id="nope"), "invalid", "check_in_id"),
        (check_in(check_in_id=42), "invalid", "check_in_id"),
        (check_in(monitor_slug=""), "invalid", "monitor_slug"),
        (check_in(monitor_slug=None), "invalid", "monitor_slug"),
        (check_in(environment="e" * 65), "invalid", "over 64 characters"),
        (check_in(environment=1), "invalid", "environment"),
        (check_in(release=["1.0"]), "invalid", "release"),
        (check_in(duration="10"), "invalid", "duration"),
        (check_in(duration=True), "invalid", "duration"),
        (check_in(monitor_config={"checkin_margin": -1}), "invalid", "checkin_margin"),
        (check_in(monitor_config={"checkin_margin": 1.5}), "invalid", "checkin_margin"),
        (check_in(monitor_config={"max_runtime": "30"}), "invalid", "max_runtime"),
        (check_in(monitor_config={"timezone": 1}), "invalid", "timezone"),
    ],
)
def test_a_check_in_relay_would_refuse(payload: bytes, reason: str, says: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_check_in(payload)
    assert refused.value.reason == reason
    assert says in str(refused.value)
