"""`mendline emit`: test events from the shell become issues, through the real consumer."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.cli.emit import SEND_BATCH, Sent, build_events, send
from mendline.ingest import EventBuilder, prepare_record
from mendline.schemas.prepared import PreparedEvent
from mendline.schemas.settings import load_settings
from tests.cli_helpers import cli, cli_env, json_lines
from tests.db_helpers import query

from .event_factory import encode, make_event
from .kafka_helpers import read_events, unique_topic
from .stage_helpers import consume_settings, running_consumer, wait_until

pytestmark = pytest.mark.integration


async def test_emitted_events_become_one_issue_scrubbed_and_where_emit_said(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    env = cli_env(settings)
    emitted = await cli(
        "emit",
        "--message",
        "payment failed",
        "--service",
        "checkout",
        "--environment",
        "staging",
        "--release",
        "2.0.1",
        "--level",
        "critical",
        "--exception",
        "TimeoutError:gateway did not answer",
        "--exception",
        "app.errors.PaymentDeclined: card declined",
        "--context",
        '{"order": 1234, "password": "hunter2"}',
        "--tag",
        "region=eu",
        "--count",
        "3",
        "--json",
        env=env,
    )
    sent = json_lines(emitted)
    assert emitted.stderr == ""
    assert len(sent) == 3 and len({s["event_id"] for s in sent}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", s["event_id"]) for s in sent)
    assert {s["topic"] for s in sent} == {settings.errors_topic}
    assert len({s["fingerprint"] for s in sent}) == 1  # one log call, one issue

    plain = await cli("emit", "--message", "another failure", env=env)
    assert plain.returncode == 0, plain.stderr
    (other_id,) = plain.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{32}", other_id)
    assert plain.stderr == f"sent 1 event(s) to {settings.errors_topic}\n"

    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 4, 30, "the 4 emitted events")

    events = await query(
        fresh_db_url,
        """SELECT event_id, issue_id, kafka_partition, kafka_offset, service, environment,
                  release, level, payload::text AS payload
           FROM mendline.events""",
    )
    by_id = {r["event_id"].hex: r for r in events}
    assert set(by_id) == {s["event_id"] for s in sent} | {other_id}
    for s in sent:
        stored = by_id[s["event_id"]]
        assert (stored["kafka_partition"], stored["kafka_offset"]) == (s["partition"], s["offset"])
        assert (stored["service"], stored["environment"], stored["release"]) == (
            "checkout",
            "staging",
            "2.0.1",
        )
        assert stored["level"] == "critical"
        payload = json.loads(stored["payload"])
        assert payload["context"] == {"order": 1234, "password": "[Filtered]"}
        assert payload["tags"] == {"region": "eu"}
        assert [(e["type"], e["module"], e["value"]) for e in payload["exceptions"]] == [
            ("TimeoutError", None, "gateway did not answer"),
            ("PaymentDeclined", "app.errors", "card declined"),
        ]
    assert all("hunter2" not in r["payload"] for r in events)

    issues = await query(
        fresh_db_url,
        "SELECT id, title, times_seen, service FROM mendline.issues ORDER BY times_seen DESC",
    )
    assert [(r["times_seen"], r["service"]) for r in issues] == [
        (3, "checkout"),
        (1, "mendline-emit"),
    ]
    assert issues[0]["title"] == "PaymentDeclined: card declined"
    assert by_id[other_id]["issue_id"] == issues[1]["id"]


async def test_a_custom_fingerprint_groups_different_messages(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    env = cli_env(settings)
    messages = ("checkout timed out after 30 s", "basket service unreachable")

    async def emitted(message: str, *fingerprint: str) -> str:
        """The fingerprint of the one event ``emit --message`` sent (with ``--fingerprint``)."""
        options = [arg for part in fingerprint for arg in ("--fingerprint", part)]
        result = await cli("emit", "--message", message, *options, "--json", env=env)
        (sent,) = json_lines(result)
        return str(sent["fingerprint"])

    outage = [await emitted(message, "checkout-outage") for message in messages]
    # Without it the two messages are two issues; another custom one is another issue.
    by_message = [await emitted(message) for message in messages]
    other = await emitted(messages[0], "payment-outage")
    assert outage[0] == outage[1]
    assert by_message[0] != by_message[1]
    assert len({outage[0], *by_message, other}) == 4

    # The consumer groups them as emit said: the two custom ones are one issue.
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 5, 30, "the 5 emitted events")
    issues = await query(
        fresh_db_url,
        """SELECT f.hash, i.times_seen FROM mendline.fingerprints f
           JOIN mendline.issues i ON i.id = f.issue_id""",
    )
    assert {r["hash"]: r["times_seen"] for r in issues} == {
        outage[0]: 2,
        by_message[0]: 1,
        by_message[1]: 1,
        other: 1,
    }


@pytest.mark.parametrize("source", ["file", "stdin"])
async def test_emit_file_sends_the_good_lines_and_names_the_bad_ones(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path, source: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    secret = make_event(1, 0)
    secret["context"]["password"] = "hunter2"
    good = [secret, make_event(1, 1)]
    text = b"".join(
        [
            encode(good[0]) + b"\n",  # line 1
            b"{this is not json\n",  # line 2
            b"\n",  # line 3, blank: skipped
            encode({**make_event(2), "level": "fatal"}) + b"\n",  # line 4, not an ErrorEvent
            encode(good[1]) + b"\r\n",  # line 5
        ]
    ).decode()
    path = tmp_path / "events.jsonl"
    path.write_text(text)
    result = await cli(
        "emit",
        "--file",
        str(path) if source == "file" else "-",
        env=cli_env(settings),
        stdin=text if source == "stdin" else None,
    )
    assert result.returncode == 1
    assert result.stdout.split() == [e["event_id"] for e in good]
    errors = result.stderr.splitlines()
    assert errors[0].startswith("line 2: not_json: ")
    assert errors[1].startswith("line 4: invalid: level")
    assert errors[2:] == [f"sent 2 event(s) to {settings.errors_topic}"]
    assert "Traceback" not in result.stderr

    on_the_topic = {
        e["event_id"]: e for e in await read_events(kafka_bootstrap, settings.errors_topic, 2)
    }
    assert set(on_the_topic) == {e["event_id"] for e in good}
    # Scrubbed before it was sent, not only by the consumer.
    assert on_the_topic[secret["event_id"]]["context"]["password"] == "[Filtered]"

    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 2, 30, "the 2 good events")
    stored = await query(fresh_db_url, "SELECT event_id FROM mendline.events")
    assert {r["event_id"].hex for r in stored} == {e["event_id"] for e in good}
    assert consumer.stats.dead_lettered == {}


async def test_a_large_emit_is_sent_as_it_is_built(kafka_bootstrap: str) -> None:
    # A batch is sent, and acked, before the next is built: memory holds one batch, not all.
    settings = load_settings(kafka_bootstrap=kafka_bootstrap, errors_topic=unique_topic("emit"))
    scrubber = Scrubber()
    built = 0
    built_at_acks: list[int] = []

    def events() -> Iterator[PreparedEvent]:
        nonlocal built
        for n in range(3 * SEND_BATCH):
            built += 1
            yield prepare_record(encode(make_event(1, n)), scrubber)

    def acked(one: Sent) -> None:
        built_at_acks.append(built)

    assert await send(settings, events(), acked) == 3 * SEND_BATCH
    assert built_at_acks[0] == SEND_BATCH  # the first ack came before the rest was built
    assert built_at_acks[-1] == 3 * SEND_BATCH
    assert len(built_at_acks) == 3 * SEND_BATCH


def test_build_events_builds_as_they_are_taken() -> None:
    builder = EventBuilder("api", "test", None, scrubber=Scrubber())
    events = build_events(builder, message="again", count=10**12)  # never all held
    first, second = itertools.islice(events, 2)
    assert json.loads(first)["event_id"] != json.loads(second)["event_id"]
