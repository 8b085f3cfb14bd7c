"""Envelopes read as Relay reads them: real SDK envelopes, the grammar's corners, what is
malformed, the size limits, and the legacy store body."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest

from mendline.ingest.relay._envelope import (
    DEFAULT_LIMITS,
    Envelope,
    EnvelopeItem,
    EnvelopeLimits,
    check_limits,
    decode_store_body,
    parse_envelope,
    parse_envelope_header,
    read_json,
)
from mendline.schemas.errors import RelayRefused

DATA = Path(__file__).parent / "data"
EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def items_of(envelope: Envelope) -> list[tuple[str, bytes]]:
    return [(item.type, item.payload) for item in envelope.items]


# --- real SDK envelopes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_id", "types"),
    [
        ("python_exception", "1e1c25af15444fd888f0732b6ba8f053", ["event"]),
        ("python_message", "6406ad42b78c43bfb29fbeb511591908", ["event"]),
        (
            "python_attachments",
            "9dc84e1c0f2343a1b07de6ebe921c1a6",
            ["event", "attachment", "attachment"],
        ),
        ("python_check_in", "63bb67a4f455435b9c2b76450a08656c", ["check_in"]),
        # Node: no length on any item, no newline after the last payload
        ("node_exception", "6c925b3b7f2e44fea92be81f6e412784", ["event"]),
        ("node_message", "f63e6972842041ee9ea70ea57cca4f09", ["event"]),
        ("node_session", None, ["session"]),
        ("node_client_report", None, ["client_report"]),
    ],
)
def test_real_sdk_envelopes_are_read_whole(
    name: str, event_id: str | None, types: list[str]
) -> None:
    body = (DATA / f"{name}.envelope").read_bytes()
    envelope = parse_envelope(body)
    assert envelope.event_id == event_id
    assert [item.type for item in envelope.items] == types
    for item in envelope.items:
        if item.type != "attachment":
            assert isinstance(json.loads(item.payload), dict)  # every JSON payload, whole
        if "length" in item.headers:
            assert len(item.payload) == item.headers["length"]


def test_a_python_attachment_keeps_its_carriage_return_and_newlines() -> None:
    envelope = parse_envelope((DATA / "python_attachments.envelope").read_bytes())
    log, state = envelope.items[1:]
    assert log.headers == {
        "filename": "debug.log",
        "type": "attachment",
        "content_type": "application/octet-stream",
        "length": 19,
    }
    assert log.payload == b"line one\r\nline two\n"
    assert state.payload == b'{"k": 1}'


def test_the_envelope_header_is_kept_as_sent() -> None:
    envelope = parse_envelope((DATA / "node_exception.envelope").read_bytes())
    assert envelope.headers["sdk"] == {"name": "sentry.javascript.node", "version": "11.12.0"}
    assert envelope.headers["trace"]["public_key"] == "abc123abc123abc123abc123abc12312"
    assert envelope.headers["sent_at"] == "2026-12-07T02:06:12.733Z"


# --- the grammar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b"{}", []),
        (b"{}\n", []),  # a header alone: an empty envelope
        (b'{"event_id":"%s"}\n' % EVENT_ID.encode(), []),
        (b'{}\n{"type":"event","length":2}\n{}\n', [("event", b"{}")]),
        (b'{}\n{"type":"event","length":2}\n{}', [("event", b"{}")]),  # no last newline
        (b'{}\n{"type":"event"}\n{}\n', [("event", b"{}")]),
        (b'{}\n{"type":"event"}\n{}', [("event", b"{}")]),
        (
            b'{}\n{"type":"event"}\n{"a":1}\n{"type":"session"}\n{"s":2}',
            [("event", b'{"a":1}'), ("session", b'{"s":2}')],
        ),
        # lengths and newline-ended payloads mixed
        (
            b'{}\n{"type":"attachment","length":3}\na\nb\n{"type":"event"}\n{}\n',
            [("attachment", b"a\nb"), ("event", b"{}")],
        ),
        # "\r" belongs to the payload, with or without a length
        (b'{}\n{"type":"event"}\n{}\r\n', [("event", b"{}\r")]),
        (b'{}\n{"type":"attachment","length":3}\nab\r\n', [("attachment", b"ab\r")]),
        # a last item header at the end: an empty payload (test_..._implicit_length_empty_eof)
        (b'{}\n{"type":"attachment"}', [("attachment", b"")]),
        (b'{}\n{"type":"attachment"}\n', [("attachment", b"")]),
        (b'{}\n{"type":"attachment","length":0}', [("attachment", b"")]),
        (b'{}\n{"type":"attachment","length":0}\n\n', [("attachment", b"")]),
        (
            b'{}\n{"type":"attachment","length":0}\n\n{"type":"attachment","length":0}\n\n',
            [("attachment", b""), ("attachment", b"")],
        ),
        # an empty payload without length, then another item
        (b'{}\n{"type":"event"}\n\n{"type":"session"}\n{}', [("event", b""), ("session", b"{}")]),
        # unknown types are kept, with their headers
        (b'{}\n{"type":"something_new","length":2}\nxy\n', [("something_new", b"xy")]),
        # whitespace before a header line is skipped, as serde_json does
        (b' \n{}\n  {"type":"event"}\n{}', [("event", b"{}")]),
        # binary attachment bytes, newlines and all
        (
            b'{}\n{"type":"attachment","length":5}\n\x00\n\xff\n\x01\n',
            [("attachment", b"\x00\n\xff\n\x01")],
        ),
    ],
)
def test_the_grammar(body: bytes, items: list[tuple[str, bytes]]) -> None:
    assert items_of(parse_envelope(body)) == items


def test_item_headers_keep_what_they_carry() -> None:
    body = (
        b'{"event_id":"%s","dsn":"x","other":[1]}\n'
        b'{"type":"attachment","length":1,"filename":"a.txt","attachment_type":"event.minidump",'
        b'"future":{"x":1}}\nz\n' % EVENT_ID.encode()
    )
    envelope = parse_envelope(body)
    assert envelope.headers == {"event_id": EVENT_ID, "dsn": "x", "other": [1]}
    (item,) = envelope.items
    assert item == EnvelopeItem(
        "attachment",
        {
            "type": "attachment",
            "length": 1,
            "filename": "a.txt",
            "attachment_type": "event.minidump",
            "future": {"x": 1},
        },
        b"z",
    )


@pytest.mark.parametrize(
    ("event_id", "normalised"),
    [
        (EVENT_ID, EVENT_ID),
        ("9EC79C33-EC99-42AB-8353-589FCB2E04DC", EVENT_ID),  # dashes and capitals
        (None, None),
    ],
)
def test_the_event_id_of_the_header(event_id: str | None, normalised: str | None) -> None:
    header = json.dumps({} if event_id is None else {"event_id": event_id})
    assert parse_envelope(header.encode() + b"\n").event_id == normalised


# --- malformed envelopes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "causes"),
    [
        (b" ", ("missing envelope header",)),
        (b"\n\n", ("missing envelope header",)),
        (b"[]\n", ("invalid envelope header",)),  # not an object
        (b'"x"\n', ("invalid envelope header",)),
        (b"{\n", ("invalid envelope header",)),  # not JSON on its line
        (b"{]\n", ("invalid envelope header",)),
        (b"{} \n", ("missing newline after header or payload",)),  # nothing after the JSON
        (b"{}\r\n", ("missing newline after header or payload",)),
        (b"{}{}\n", ("missing newline after header or payload",)),
        (b'{"a":NaN}\n', ("invalid envelope header",)),  # not JSON for Relay either
        (b"\xff\xfe{}\n", ("invalid envelope header",)),  # not UTF-8
        (b"[" * 100_000 + b"\n", ("invalid envelope header",)),  # too deep for the parser
        (b'{"a":1}}\n', ("missing newline after header or payload",)),  # ends as one would
        (b'{"a":"\xff"}\n', ("invalid envelope header",)),  # not UTF-8 inside
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", ("invalid envelope header",)),
        (b'{"event_id":"nope"}\n', ("invalid envelope header",)),
        (b'{"event_id":42}\n', ("invalid envelope header",)),
        # item headers
        (b"{}\n[]\n", ("invalid item header",)),
        (b"{}\n{}\n{}\n", ("invalid item header",)),  # no type
        (b'{}\n{"type":1}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event"} \n{}\n', ("missing newline after header or payload",)),
        (b"{}\n\n\n", ("unexpected end of file",)),  # an item of nothing but newlines
        (b"{}\n\n", ("unexpected end of file",)),  # two newlines after the header
        (b'{}\n{"type":"event"}\n{}\n\n', ("unexpected end of file",)),  # and after an item
        # lengths
        (b'{}\n{"type":"event","length":-1}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event","length":"2"}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event","length":true}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event","length":1.5}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event","length":4294967296}\n{}\n', ("invalid item header",)),
        (b'{}\n{"type":"event","length":10}\n{}\n', ("unexpected end of file",)),  # too few
        (b'{}\n{"type":"event","length":1}\n{}\n', ("missing newline after header or payload",)),
        (b'{}\n{"type":"event","length":2}\n{}x', ("missing newline after header or payload",)),
    ],
)
def test_a_malformed_envelope_is_a_400_with_relays_cause(
    body: bytes, causes: tuple[str, ...]
) -> None:
    with pytest.raises(RelayRefused) as refused:
        parse_envelope(body)
    assert (refused.value.status, refused.value.reason) == (400, "bad_envelope")
    assert refused.value.detail == "invalid event envelope"
    assert refused.value.causes[: len(causes)] == causes


def test_an_empty_body_is_an_empty_request_body() -> None:
    for parse in (parse_envelope, parse_envelope_header):
        with pytest.raises(RelayRefused) as refused:
            parse(b"")
        assert (refused.value.status, refused.value.reason) == (400, "empty_body")
        assert refused.value.detail == "empty request body"


def test_the_header_alone_is_read_before_the_rest() -> None:
    body = b'{"dsn":"http://k@h/1","event_id":"%s"}\n{"type":"event","length":99}\n' % (
        EVENT_ID.encode()
    )
    assert parse_envelope_header(body) == {"dsn": "http://k@h/1", "event_id": EVENT_ID}
    with pytest.raises(RelayRefused):
        parse_envelope(body)  # the item is cut short: only the whole read sees it
    with pytest.raises(RelayRefused) as refused:
        parse_envelope_header(b"[1]\n")
    assert refused.value.reason == "bad_envelope"


@pytest.mark.parametrize(
    "header",
    [
        b'{"a":"\\ud800"}',  # a lone surrogate: Python's reader takes it, msgspec does not
        b'{"a":1e400}',  # out of a float's range: inf, as Python reads it
        b'{"a":123456789012345678901234567890}',
        b'{"a":1,"a":2}',  # the last one wins, as in Python
        b'{ "a" : [1, {"b": null}] }',
    ],
)
def test_a_header_reads_as_pythons_json_reads_it(header: bytes) -> None:
    assert parse_envelope_header(header + b"\n") == json.loads(header)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":"\\ud800"}',
        b'{"a":1e400,"b":NaN,"c":-Infinity}',  # Python's reader takes these
        b'{"a":123456789012345678901234567890}',
        b'{"a":1,"a":2}',
        b'"text"',
        b"[1, 2.5, true, null]",
        '{"é":"ü"}'.encode(),
        b"\xef\xbb\xbf{}",  # a BOM: Python reads past it, msgspec does not
        b"[1,2",
        b"",
        b"\xff",
        b"[" * 100_000,
    ],
)
def test_read_json_is_pythons_json_loads(payload: bytes) -> None:
    try:
        expected: object = json.loads(payload)
    except (ValueError, RecursionError) as error:
        with pytest.raises(type(error)):
            read_json(payload)
        return
    got = read_json(payload)
    assert json.dumps(got) == json.dumps(expected)  # NaN == NaN in its text, not as a float


# --- size limits -------------------------------------------------------------------------

SMALL = EnvelopeLimits(
    envelope=10_000,
    event=100,
    attachment=50,
    attachments=80,
    client_report=40,
    check_in=30,
    sessions=2,
    profile=60,
    replay=70,
    telemetry=20,
)


def envelope_of(*items: tuple[object, ...]) -> bytes:
    """An envelope with items of these types and payload sizes (and more item headers)."""
    parts = [b"{}"]
    for item_type, size, *extra in items:
        assert isinstance(size, int)
        header = {"type": item_type, "length": size, **(extra[0] if extra else {})}
        parts += [json.dumps(header).encode(), b"x" * size]
    return b"\n".join(parts) + b"\n"


@pytest.mark.parametrize(
    "items",
    [
        [("event", 100)],  # limits are inclusive
        [("transaction", 100)],
        [("attachment", 50), ("attachment", 30)],  # 80 in all
        [("client_report", 20), ("client_report", 20)],
        [("check_in", 30)],
        [("session", 5), ("sessions", 5)],
        [("profile", 60)],
        [("replay_recording", 70), ("replay_video", 70)],
        [("log", 60, {"item_count": 3})],  # 20 on average
        [("span", 20), ("span", 20), ("span", 20)],  # legacy spans: no count
        [("span", 40, {"item_count": 2})],
        [("statsd", 20), ("metric_buckets", 20)],
        [("something_new", 5000), ("other_new", 4000)],  # unknown: the envelope only
        [("event", 100), ("attachment", 50), ("client_report", 40), ("check_in", 30)],
    ],
)
def test_items_within_their_limits_pass(items: list[tuple[str, int]]) -> None:
    envelope = parse_envelope(envelope_of(*items), SMALL)
    assert len(envelope.items) == len(items)


@pytest.mark.parametrize(
    ("items", "offender", "cause"),
    [
        ([("event", 101)], "event", "at most 100 bytes each: this one is 101"),
        ([("transaction", 101)], "transaction", "at most 100 bytes"),
        ([("feedback", 101)], "user_report_v2", "at most 100 bytes"),
        ([("event", 10), ("event", 10)], "event", "event-like items are too many"),
        ([("event", 10), ("transaction", 10)], "transaction", "too many"),  # one event-like
        ([("attachment", 51)], "attachment:attachment", "at most 50 bytes"),
        (
            [("attachment", 1, {"attachment_type": "event.minidump"}), ("attachment", 51)],
            "attachment:attachment",
            "at most 50",
        ),
        (
            [("attachment", 51, {"attachment_type": "event.minidump"})],
            "attachment:minidump",
            "at most 50",
        ),
        (
            [("attachment", 51, {"attachment_type": "x.unknown"})],
            "attachment:attachment",
            "at most 50",
        ),
        (
            [("attachment", 50), ("attachment", 31)],
            "attachment:attachment",
            "attachments are over their total size",
        ),
        ([("user_report", 50), ("attachment", 31)], "attachment:attachment", "total size"),
        ([("client_report", 41)], "client_report", "at most 40"),
        ([("client_report", 20), ("client_report", 21)], "client_report", "total size"),
        ([("check_in", 31)], "check_in", "at most 30"),
        ([("check_in", 1), ("check_in", 1)], "check_in", "too many"),
        ([("session", 1), ("sessions", 1), ("session", 1)], "session", "sessions are too many"),
        ([("profile", 1), ("profile_chunk", 1)], "profile_chunk", "profiles are too many"),
        ([("profile", 1), ("profile_chunk_ui", 1)], "profile_chunk", "profiles are too many"),
        ([("profile", 61)], "profile", "at most 60"),
        ([("replay_recording", 71)], "replay_recording", "at most 70"),
        ([("replay_video", 1), ("replay_video", 1)], "replay_video", "too many"),
        ([("log", 63, {"item_count": 3})], "log", "at most 20 bytes each: this one is 21"),
        ([("log", 1), ("log", 1)], "log", "log items are too many"),
        ([("trace_metric", 21)], "trace_metric", "at most 20"),
        ([("span", 21)], "span", "at most 20"),
        ([("statsd", 21)], "statsd", "at most 20"),
    ],
)
def test_an_item_over_its_limit_refuses_the_whole_envelope(
    items: list[tuple[str, int]], offender: str, cause: str
) -> None:
    with pytest.raises(RelayRefused) as refused:
        parse_envelope(envelope_of(*items), SMALL)
    assert (refused.value.status, refused.value.reason) == (413, "too_large")
    assert refused.value.detail == (
        f"envelope exceeded size limits for type '{offender}' "
        "(https://develop.sentry.dev/sdk/envelopes/#size-limits)"
    )
    (said,) = refused.value.causes
    assert cause in said


def test_the_first_item_over_a_limit_is_the_one_named() -> None:
    body = envelope_of(("check_in", 31), ("event", 101))
    with pytest.raises(RelayRefused) as refused:
        parse_envelope(body, SMALL)
    assert "'check_in'" in refused.value.detail


def test_a_whole_envelope_over_its_limit_is_refused_before_it_is_read() -> None:
    body = b"{}\n" + b"x" * 10_000  # not even an envelope: its size is enough
    with pytest.raises(RelayRefused) as refused:
        parse_envelope(body, SMALL)
    assert (refused.value.status, refused.value.reason) == (413, "too_large")
    assert "10003 bytes, over 10000" in refused.value.causes[0]


def test_the_default_limits_are_relays() -> None:
    mib = 1024 * 1024
    assert (
        EnvelopeLimits(
            envelope=200 * mib,
            event=mib,
            attachment=100 * mib,
            attachments=100 * mib,
            client_report=4 * 1024,
            check_in=100 * 1024,
            sessions=100,
            profile=50 * mib,
            replay=10 * mib,
            telemetry=mib,
        )
        == DEFAULT_LIMITS
    )
    event = EnvelopeItem("event", {"type": "event"}, b"x" * (mib + 1))
    with pytest.raises(RelayRefused):
        check_limits(Envelope({}, (event,)))
    sessions = tuple(EnvelopeItem("session", {}, b"{}") for _ in range(101))
    check_limits(Envelope({}, sessions[:100]))
    with pytest.raises(RelayRefused):
        check_limits(Envelope({}, sessions))


# --- the legacy store body ---------------------------------------------------------------

EVENT = b'{"event_id":"%s","message":"hello"}' % EVENT_ID.encode()


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (EVENT, EVENT),  # JSON as it is
        (b"", b""),  # empty: the caller says "empty request body"
        (base64.b64encode(EVENT), EVENT),  # base64 of JSON
        (base64.b64encode(zlib.compress(EVENT)), EVENT),  # raven's base64 of zlib
        (b"{not json", b"{not json"),  # starts with "{": as it is, for the JSON parser
    ],
)
def test_a_store_body_is_decoded_as_relay_does(body: bytes, decoded: bytes) -> None:
    assert decode_store_body(body) == decoded


@pytest.mark.parametrize(
    ("body", "limit", "status", "reason"),
    [
        (b"not base64!", 150, 400, "bad_compression"),
        (base64.b64encode(b"neither JSON nor zlib"), 150, 400, "bad_compression"),
        (base64.b64encode(zlib.compress(EVENT)[:-4]), 150, 400, "bad_compression"),  # cut short
        (base64.b64encode(zlib.compress(EVENT) + b"x"), 150, 400, "bad_compression"),
        (b"{" + b" " * 200, 150, 413, "too_large"),  # the body as sent is over the limit
        (base64.b64encode(b"{" + b" " * 120), 150, 413, "too_large"),
        # base64 of zlib that inflates past the limit: stopped there, a bomb or not
        (base64.b64encode(zlib.compress(b"{" + b" " * 10**6)), 2000, 413, "too_large"),
        (base64.b64encode(zlib.compress(b"{" + b" " * 2000)), 2000, 413, "too_large"),
    ],
)
def test_a_store_body_that_does_not_decode(
    body: bytes, limit: int, status: int, reason: str
) -> None:
    assert len(body) <= limit or status == 413
    with pytest.raises(RelayRefused) as refused:
        decode_store_body(body, limit=limit)
    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert refused.value.causes
    if status == 400:
        assert refused.value.detail == "invalid request body"
