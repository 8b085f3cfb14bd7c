"""Sentry events, as each SDK sends them, converted into ErrorEvents the contract accepts:
the chain root cause first, frames oldest first, the key's service, PII left out, scrubbed."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping import culprit as fingerprint_culprit
from mendline.analyzers.grouping import fingerprint
from mendline.analyzers.grouping import title as fingerprint_title
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest._wire import finish_event
from mendline.ingest.relay._convert import KeyScope, convert_event, event_id_of
from mendline.schemas.errors import RelayRefused
from mendline.schemas.event import parse_event_exact
from mendline.schemas.limits import MAX_FRAMES

SENTRY = Path(__file__).parents[2] / "data" / "sentry"
SCOPE = KeyScope("checkout", "production")
RECEIVED = 1796607000.0  # 2026-12-07T01:30:00Z


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SENTRY / f"{name}.json").read_text())
    return loaded


def accepted(doc: dict[str, Any]) -> dict[str, Any]:
    """The converted event as the relay sends it on: scrubbed, cut, and valid."""
    data, _ = finish_event(doc, Scrubber())
    parsed, _ = parse_event_exact(data)
    return parsed


@pytest.mark.parametrize(
    ("name", "types", "platform", "level", "timestamp"),
    [
        (
            "python_chain",
            ["ZeroDivisionError", "ValueError"],
            "python",
            "error",
            "2026-12-07T01:36:12.114563+00:00",
        ),
        ("node_chain", ["TypeError", "Error"], "node", "error", "2026-12-07T01:36:25.171000+00:00"),
        ("node_message", [], "node", "warning", "2026-12-07T01:36:25.500000+00:00"),
        ("go_error", ["*os.PathError"], "go", "error", "2026-12-07T01:40:56.584908+00:00"),
        ("java_error", ["ApiException"], "java", "critical", "2026-12-07T01:41:00.123000+00:00"),
        (
            "dotnet_error",
            ["System.Net.Http.HttpRequestException"],
            "csharp",
            "error",
            "2026-12-07T01:42:00+00:00",
        ),
        ("browser_error", ["TypeError"], "javascript", "error", "2026-12-07T01:36:40.250000+00:00"),
        (
            "ruby_error",
            ["Errno::ECONNREFUSED"],
            "ruby",
            "error",
            "2026-12-07T00:43:00.500000+00:00",
        ),
        ("php_message", [], "php", "warning", "2026-12-07T01:38:20+00:00"),
    ],
)
def test_each_sdks_event_converts_into_a_valid_error_event(
    name: str, types: list[str], platform: str, level: str, timestamp: str
) -> None:
    event = accepted(convert_event(fixture(name), SCOPE, received=RECEIVED))
    assert [exc["type"] for exc in event["exceptions"]] == types
    assert (event["platform"], event["level"]) == (platform, level)
    assert event["timestamp"].isoformat() == timestamp
    assert event["service"] == "checkout"  # the key's, whatever the event says


def test_the_chain_and_frames_keep_sentrys_order_and_in_app() -> None:
    event = accepted(convert_event(fixture("python_chain"), SCOPE, received=RECEIVED))
    cause, raised = event["exceptions"]
    assert (cause["value"], raised["value"]) == ("division by zero", "wrapped failure for order 7")
    assert [f["function"] for f in raised["frames"]] == ["dispatch_request", "checkout"]
    assert [f["in_app"] for f in raised["frames"]] == [False, True]
    frame = cause["frames"][0]
    assert (frame["filename"], frame["module"], frame["lineno"]) == (
        "shop/orders.py",
        "shop.orders",
        41,
    )
    assert frame["abs_path"] == "/srv/shop/orders.py"
    assert frame["context_line"] == "    return order.amount / order.count"
    assert "exception_id" not in raised  # a plain chain: no tree ids
    assert (event["release"], event["host"], event["environment"]) == (
        "shop@1.4.2",
        "web-3",
        "production",
    )


def test_pii_and_secrets_stay_out_unless_kept() -> None:
    event = accepted(convert_event(fixture("python_chain"), SCOPE, received=RECEIVED))
    context = event["context"]
    assert context["user"] == {"id": "u1"}  # no email, no address
    request = context["request"]
    assert "cookies" not in request and "env" not in request
    assert request["headers"]["Authorization"] == "[Filtered]"
    assert request["headers"]["Cookie"] == "[Filtered]"
    assert request["headers"]["User-Agent"] == "curl/8"
    assert context["order_id"] == 7 and context["contexts"]["runtime"]["name"] == "CPython"
    assert context["sdk"] == {"name": "sentry.python", "version": "2.76.0"}
    kept = convert_event(fixture("python_chain"), SCOPE, received=RECEIVED, keep_pii=True)
    assert kept["context"]["user"]["email"] == "ada@example.com"
    assert kept["context"]["request"]["env"] == {"REMOTE_ADDR": "203.0.113.9"}


def test_a_message_with_a_synthetic_stack_is_a_message_event() -> None:
    event = accepted(convert_event(fixture("node_message"), SCOPE, received=RECEIVED))
    assert (event["message"], event["exceptions"]) == ("payment provider slow: 4200 ms", [])


def test_a_php_message_object_gives_its_template() -> None:
    event = accepted(convert_event(fixture("php_message"), SCOPE, received=RECEIVED))
    assert event["message"] == "Stock low for %s: %d left"
    assert event["logger"] == "php"


def test_tags_as_pairs_and_frames_with_columns_and_packages() -> None:
    go = accepted(convert_event(fixture("go_error"), SCOPE, received=RECEIVED))
    assert go["tags"] == {"region": "eu-west-1", "tier": "batch"}
    frame = go["exceptions"][0]["frames"][0]
    assert (frame["filename"], frame["function"]) == ("/app/cmd/billing/main.go", "main")
    assert "abs_path" not in frame  # the same as its filename
    dotnet = accepted(convert_event(fixture("dotnet_error"), SCOPE, received=RECEIVED))
    frame = dotnet["exceptions"][0]["frames"][1]
    assert (frame["colno"], frame["package"]) == (13, "Shop.Api, Version=1.0.0.0")
    assert dotnet["exceptions"][0]["frames"][0]["filename"] == "System.Net.Http.HttpClient"


def test_a_ruby_context_line_loses_its_newline_and_an_offset_becomes_utc() -> None:
    event = accepted(convert_event(fixture("ruby_error"), SCOPE, received=RECEIVED))
    assert event["exceptions"][0]["frames"][1]["context_line"] == "      redis.get(key)"


@pytest.mark.parametrize(
    ("header", "payload", "expected"),
    [
        ("AA" * 16, "bb" * 16, "aa" * 16),  # the envelope header's wins, lowercased
        (None, "4a70c3b2-d1e0-4f5f-a6b7-c8d9e0f1a2b3", "4a70c3b2d1e04f5fa6b7c8d9e0f1a2b3"),
        ("not an id", "cc" * 16, "cc" * 16),
    ],
)
def test_the_event_id_comes_from_the_header_then_the_payload(
    header: str | None, payload: str, expected: str
) -> None:
    assert event_id_of(header, payload) == expected
    doc = convert_event({"event_id": payload}, SCOPE, event_id=header, received=RECEIVED)
    assert doc["event_id"] == expected


def test_an_event_without_a_usable_id_or_time_gets_new_ones() -> None:
    doc = accepted(
        convert_event({"timestamp": "yesterday", "level": "nonsense"}, SCOPE, received=RECEIVED)
    )
    assert len(doc["event_id"]) == 32 and doc["event_id"] != event_id_of()
    assert doc["timestamp"].timestamp() == RECEIVED
    assert (doc["level"], doc["environment"], doc["message"]) == ("error", "production", "")
    assert "platform" not in doc or doc["platform"] is None


def test_a_long_stack_keeps_its_outermost_and_innermost_frames() -> None:
    frames = [{"function": f"f{n}", "filename": "a.js", "in_app": True} for n in range(250)]
    payload = {"exception": {"values": [{"type": "RangeError", "stacktrace": {"frames": frames}}]}}
    exc = accepted(convert_event(payload, SCOPE, received=RECEIVED))["exceptions"][0]
    assert len(exc["frames"]) == MAX_FRAMES and exc["frames_omitted"] == 150
    assert (exc["frames"][0]["function"], exc["frames"][-1]["function"]) == ("f0", "f249")


def test_an_exception_group_keeps_its_tree_and_maps_other_languages_sources() -> None:
    payload = {
        "platform": "node",
        "exception": {
            "values": [
                {
                    "type": "TypeError",
                    "value": "a",
                    "mechanism": {"exception_id": 1, "parent_id": 0, "source": "errors[0]"},
                },
                {
                    "type": "AggregateError",
                    "value": "all failed",
                    "mechanism": {"exception_id": 0, "is_exception_group": True},
                },
            ]
        },
    }
    member, group = accepted(convert_event(payload, SCOPE, received=RECEIVED))["exceptions"]
    assert (member["exception_id"], member["parent_id"], member["source"]) == (
        1,
        0,
        "exceptions[0]",
    )
    assert group["is_exception_group"] is True and group["exception_id"] == 0


@pytest.mark.parametrize("payload", [[], "event", 7, None])
def test_a_payload_that_is_not_an_object_is_refused(payload: Any) -> None:
    with pytest.raises(RelayRefused) as refused:
        convert_event(payload, SCOPE, received=RECEIVED)
    assert (refused.value.status, refused.value.reason) == (400, "bad_event")


def test_hostile_strings_are_cut_and_kept_as_text() -> None:
    payload = {
        "message": "x" * 100_000,
        "environment": "e" * 500,
        "tags": {"k": "\u202e" + "v" * 500},
        "exception": [{"type": "T" * 2000, "value": 12}],
    }
    event = accepted(convert_event(payload, SCOPE, received=RECEIVED))
    assert len(event["message"].encode()) <= 8 * 1024 and len(event["environment"]) == 200
    assert len(event["tags"]["k"]) <= 200 and event["exceptions"][0]["value"] == "12"
    assert len(event["exceptions"][0]["type"]) == 512


def test_texts_are_cut_once_scrubbed_and_new_frame_fields_are_scrubbed() -> None:
    secret_url = "https://cdn.example.com/app.js?api_key=sk_live_abcdef0123456789&password=x1"
    frame = {
        "filename": "a" * 1010 + "?password=x1&token=y2&secret=z3",
        "abs_path": secret_url,
        "package": "password=hunter2",
        "function": 5,  # a number: as text
        "context_line": "x" * 1020 + " token=ab12",
        "in_app": None,  # not a boolean: Sentry's default rules decide
    }
    payload = {
        "release": "r" * 190 + "token=ab12",
        "server_name": "h" * 250 + " password=x",
        "exception": {"values": [{"type": "E", "stacktrace": {"frames": [frame]}}]},
        "request": {"headers": {"X-Forwarded-For": "203.0.113.9", "Accept": "*/*"}},
    }
    event = accepted(convert_event(payload, SCOPE, received=RECEIVED))
    out = event["exceptions"][0]["frames"][0]
    assert len(out["filename"]) <= 1024 and "x1" not in out["filename"]
    assert "sk_live" not in out["abs_path"] and "hunter2" not in out["package"]
    assert (out["function"], out["in_app"]) == ("5", True)
    assert len(event["release"]) <= 200 and len(event["host"]) <= 255
    assert event["context"]["request"]["headers"] == {"Accept": "*/*"}  # no address


@pytest.mark.parametrize(
    "timestamp", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", 1e30, -5, True]
)
def test_a_time_no_event_can_have_is_the_time_of_receipt(timestamp: object) -> None:
    event = accepted(convert_event({"timestamp": timestamp}, SCOPE, received=RECEIVED))
    assert event["timestamp"].timestamp() == RECEIVED


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "expected", "corrected"),
    [
        # The SDK's clock a day behind: its event happened a day later than it says.
        (RECEIVED - 86_400 - 5, "2026-12-06T01:30:00Z", RECEIVED - 5, True),
        ("2026-12-07T03:29:55Z", "2026-12-07T03:30:00+00:00", RECEIVED - 5, True),  # 2 h ahead
        (RECEIVED - 5, RECEIVED - 60, RECEIVED - 5, False),  # a minute: latency, not corrected
        (RECEIVED - 5, None, RECEIVED - 5, False),  # no sent_at
        (RECEIVED - 5, "not a time", RECEIVED - 5, False),
        (None, RECEIVED - 86_400, RECEIVED, False),  # no time of its own: the receipt's
        # sent_at is RFC 3339 or nothing: a date alone, a week date, a number say nothing.
        (RECEIVED - 5, "2026-12-07", RECEIVED - 5, False),
        (RECEIVED - 5, "2026-W49-1", RECEIVED - 5, False),
        (RECEIVED - 5, RECEIVED - 86_400, RECEIVED - 5, False),
        # Moved out of what RFC 3339 can write: left as the SDK said it, and not said moved.
        ("9999-12-31T23:00:00Z", "2026-12-06T01:30:00Z", 253402297200.0, False),
        ("1969-07-20T20:17:00Z", None, -14182980.0, False),  # before 1970, as sent
    ],
)
def test_an_sdks_drifted_clock_moves_its_events_time_as_relay_does(
    timestamp: object, sent_at: object, expected: float, corrected: bool
) -> None:
    payload = {"timestamp": timestamp, "extra": {"clock_drift": "the app's own"}}
    event = accepted(convert_event(payload, SCOPE, received=RECEIVED, sent_at=sent_at))
    assert event["timestamp"].timestamp() == pytest.approx(expected)
    assert event["context"]["extra.clock_drift"] == "the app's own"  # never taken for ours
    if corrected:
        drift = event["context"]["clock_drift"]
        assert drift["adjusted_by_seconds"] == pytest.approx(RECEIVED - 5 - _seconds(timestamp))
        assert drift["server_time"] == "2026-12-07T01:30:00.000000Z"
    else:
        assert "clock_drift" not in event["context"]


def _seconds(value: object) -> float:
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    assert isinstance(value, float)
    return value


def _moved(sentry: dict[str, Any]) -> dict[str, Any]:
    """The same error after a deploy (a Sentry event): every line and column moved, a new
    build of the browser's script (its hash in the URL), another event id."""
    moved = json.loads(json.dumps(sentry))
    exception = moved.get("exception") or {}
    for exc in exception.get("values", []) if isinstance(exception, dict) else exception:
        for frame in (exc.get("stacktrace") or {}).get("frames", []):
            frame["lineno"] = (frame.get("lineno") or 0) + 17
            if "colno" in frame:
                frame["colno"] += 3
            for key in ("filename", "abs_path"):
                if key in frame:
                    frame[key] = frame[key].replace("4f3a2b1c", "9e8d7c6b")
    moved["event_id"] = "f" * 32
    return moved


@pytest.mark.parametrize(
    ("name", "title", "culprit"),
    [
        ("python_chain", "ValueError: wrapped failure for order 7", "shop.views.checkout"),
        ("node_chain", "Error: order lookup failed", "routes.Object.?"),
        (
            "go_error",
            "*os.PathError: open ./invoices/2026-12.csv: no such file or directory",
            "github.com/acme/billing/internal/export.(*Exporter).Export",
        ),
        (
            "java_error",
            "ApiException: Authentication failed, token expired!",
            "com.acme.ledger.ApiRequest$$EnhancerBySpringCGLIB$$1a2b3c4d.perform",
        ),
        (
            "dotnet_error",
            "System.Net.Http.HttpRequestException: Connection refused (inventory:443)",
            "Shop.Api.Inventory.Task<Stock> Inventory.GetStockAsync(string sku)",
        ),
        (
            "browser_error",
            "TypeError: undefined is not an object (evaluating 'cart.items')",
            "main.onClick",
        ),
        (
            "ruby_error",
            "Errno::ECONNREFUSED: Failed to open TCP connection to redis:6379 "
            '(Connection refused - connect(2) for "redis" port 6379)',
            "app/models/cart.rb in block in fetch_cart",
        ),
        ("php_message", "Stock low for %s: %d left", None),
    ],
)
def test_each_sdks_event_groups_alike_after_a_deploy_and_reads_well(
    name: str, title: str, culprit: str | None
) -> None:
    event = accepted(convert_event(fixture(name), SCOPE, received=RECEIVED))
    moved = accepted(convert_event(_moved(fixture(name)), SCOPE, received=RECEIVED))
    assert fingerprint(moved).hash == fingerprint(event).hash
    assert (fingerprint_title(event), fingerprint_culprit(event)) == (title, culprit)
