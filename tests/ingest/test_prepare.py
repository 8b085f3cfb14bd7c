"""What the consumer makes of one record, before storing it (no servers needed)."""

from __future__ import annotations

import json

import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.ingest.consumer import scrubbed_by
from mendline.schemas.errors import InvalidEvent
from tests.integration.event_factory import encode, make_event


def test_a_clean_event_with_only_known_fields_is_stored_as_it_came() -> None:
    raw = encode(make_event(1, 1))
    prepared = prepare_record(raw, Scrubber())
    assert prepared.payload is raw


def test_unknown_fields_are_dropped_and_never_stored_unscrubbed() -> None:
    doc = make_event(1, 1)
    doc["request_headers"] = {"Authorization": "Bearer abc.def.ghi"}  # not in the contract
    doc["exceptions"][0]["frames"][0]["locals"] = {"password": "hunter2"}
    prepared = prepare_record(encode(doc), Scrubber())
    stored = json.loads(prepared.payload)
    assert "request_headers" not in stored
    assert "original_timestamp" not in stored  # set by the consumer alone, when it clamps
    assert "locals" not in stored["exceptions"][0]["frames"][0]
    assert b"hunter2" not in prepared.payload and b"abc.def.ghi" not in prepared.payload


def test_an_event_with_a_secret_is_stored_scrubbed() -> None:
    doc = make_event(1, 1)
    doc["context"]["password"] = "hunter2"
    doc["message"] = "login failed token=abcdef123"
    prepared = prepare_record(encode(doc), Scrubber())
    stored = json.loads(prepared.payload)
    assert stored["context"]["password"] == "[Filtered]"
    assert stored["message"] == "login failed token=[Filtered]"
    assert prepared.message == "login failed token=[Filtered]"


def test_the_same_bug_gets_the_same_fingerprint_and_other_bugs_others() -> None:
    scrubber = Scrubber()
    same = {prepare_record(encode(make_event(3, n)), scrubber).fingerprint for n in range(5)}
    other = prepare_record(encode(make_event(4, 0)), scrubber).fingerprint
    assert len(same) == 1 and other not in same


def test_bad_input_raises_invalid_event_with_the_same_reasons() -> None:
    with pytest.raises(InvalidEvent) as caught:
        prepare_record(b'{"schema_version": 1, "bogus": true}', Scrubber())
    assert caught.value.reason == "invalid"
    assert "event_id" in caught.value.detail  # the lenient parse explains, not "extra field"


def test_what_is_stored_is_what_was_validated_when_the_bytes_differ() -> None:
    doc = make_event(1, 1)
    doc["timestamp"] = "2026-11-29T14:00:00+02:00"  # the same instant as 12:00Z
    raw = json.dumps(doc, indent=1).encode()  # valid, exact and clean, but not as we write it
    prepared = prepare_record(raw, Scrubber())
    assert prepared.payload != raw
    assert json.loads(prepared.payload) == {**doc, "timestamp": "2026-11-29T12:00:00Z"}


def test_a_duplicate_key_is_rejected_not_stored_by_the_fast_path() -> None:
    raw = encode(make_event(1, 1)).replace(
        b'"context":{', b'"context":{"password":"hunter2","password":"x",', 1
    )
    with pytest.raises(InvalidEvent) as caught:
        prepare_record(raw, Scrubber())
    assert caught.value.reason == "invalid"
    assert caught.value.detail == 'duplicate key "password" in "context"'


RULES = Scrubber().rules_id


@pytest.mark.parametrize(
    ("headers", "rules", "scrubbed"),
    [
        ([("mendline.scrubbed", RULES.encode())], RULES.encode(), True),
        (
            [("mendline.key-id", b"api"), ("mendline.scrubbed", RULES.encode())],
            RULES.encode(),
            True,
        ),
        ([("mendline.scrubbed", b"other rules")], RULES.encode(), False),  # the app's rules differ
        ([("mendline.scrubbed", None)], RULES.encode(), False),
        ([("x-scrubbed", RULES.encode())], RULES.encode(), False),
        ([], RULES.encode(), False),
        (None, RULES.encode(), False),
        ([("mendline.scrubbed", RULES.encode())], None, False),  # this consumer has no id
    ],
)
def test_which_records_say_they_were_scrubbed_with_the_consumers_rules(
    headers: list[tuple[str, bytes | None]] | None, rules: bytes | None, scrubbed: bool
) -> None:
    assert scrubbed_by(headers, rules) is scrubbed


def test_an_event_scrubbed_with_the_same_rules_is_not_checked_again_others_are() -> None:
    doc = make_event(1, 1)
    doc["context"] = {"password": "hunter2"}  # what the same rules would have filtered
    raw = encode(doc)
    trusted = prepare_record(raw, Scrubber(), scrubbed=True)
    assert trusted.payload is raw  # taken as it came: not walked, not written again
    checked = prepare_record(raw, Scrubber())
    assert b"hunter2" not in checked.payload
