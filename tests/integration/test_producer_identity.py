"""Producer identity end to end: the real processor and shipper sign, the consumer checks,
against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import asyncpg
import pytest

from mendline.analyzers.policy import ProducerAuthMode, signature_headers
from mendline.ingest import ErrorEventProcessor, read_dead_letters
from mendline.stages import Telemetry, consume
from tests.cli_helpers import cli, cli_env, json_lines

from .event_factory import encode, make_event
from .kafka_helpers import create_topic, produce
from .stage_helpers import consume_settings, running_consumer, wait_until

pytestmark = pytest.mark.integration

KEY = "shop-signing-key-0123456789abcdef"


async def stored_events(url: str) -> dict[str, tuple[str, str]]:
    """event_id -> (service, message) of every stored event."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT event_id, service, message FROM mendline.events")
    finally:
        await conn.close()
    return {r["event_id"].hex: (r["service"], r["message"]) for r in rows}


@pytest.mark.parametrize("mode", ["off", "warn", "enforce"])
async def test_a_signed_event_is_stored_and_forged_ones_are_dead_lettered_when_enforced(
    kafka_bootstrap: str,
    fresh_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: ProducerAuthMode,
) -> None:
    keys_file = tmp_path / "producers.toml"
    keys_file.write_text(f'[services]\nshop = ["{"n" * 32}", "{KEY}"]\n')
    settings = consume_settings(
        kafka_bootstrap, fresh_db_url, producer_auth=mode, producer_keys_file=keys_file
    )
    # The app: the real processor and shipper, configured as an app is (by its environment),
    # with the second of the service's two keys.
    for name, setting in {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ERRORS_TOPIC": settings.errors_topic,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "SIGNING_KEY": KEY,
    }.items():
        monkeypatch.setenv(f"MENDLINE_{name}", setting)
    processor = ErrorEventProcessor("shop")
    processor(None, "error", {"event": "signed_by_the_app", "order": 7})
    assert processor.shipper.flush(timeout=30)
    processor.shipper.shutdown()
    # A forger who can write the topic claims the same service: unsigned, then signed with a
    # key of its own, then a signed value it changed afterwards.
    unsigned, wrong_key, altered = (make_event(n, service="shop") for n in range(3))
    genuine_bytes = encode(altered)
    altered["message"] = "altered_after_signing"
    await produce(kafka_bootstrap, settings.errors_topic, [encode(unsigned)])
    await produce(
        kafka_bootstrap,
        settings.errors_topic,
        [encode(wrong_key)],
        headers=signature_headers(b"forger-key-0123456789", "shop", encode(wrong_key)),
    )
    await produce(
        kafka_bootstrap,
        settings.errors_topic,
        [encode(altered)],
        headers=signature_headers(KEY.encode(), "shop", genuine_bytes),
    )

    forged = {e["event_id"]: e for e in (unsigned, wrong_key, altered)}
    kept = 1 if mode == "enforce" else 4
    # The consume stage creates the DLQ topic as it starts; the Consumer alone does not.
    await create_topic(kafka_bootstrap, settings.dlq_topic, 1)
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.received == 4, 30, "the four records")
        await wait_until(lambda: consumer.stats.stored == kept, 30, f"{kept} stored")
    events = await stored_events(fresh_db_url)
    assert ("shop", "signed_by_the_app") in events.values()
    assert len(events) == kept
    letters = await read_dead_letters(settings)
    if mode == "enforce":
        assert not set(events) & set(forged)
        assert consumer.stats.dead_lettered == {"unauthenticated": 3}
        assert [d.reason for d in letters] == ["unauthenticated"] * 3
        assert [d.message.split(":")[0] for d in letters] == [
            "missing_signature",
            "bad_signature",
            "bad_signature",
        ]
        # Kept unchanged, with the headers the forger sent, for a look or a redrive.
        assert [d.value for d in letters] == [encode(e) for e in (unsigned, wrong_key, altered)]
        assert [h for h, _ in letters[1].headers][:2] == ["mendline.signature", "mendline.key-id"]
    else:
        assert set(forged) <= set(events)
        assert letters == [] and consumer.stats.dead_lettered == {}
    if mode == "warn":
        assert consumer.producers is not None
        assert consumer.producers.warned == {"missing_signature": 1, "bad_signature": 2}
    if mode == "off":
        assert consumer.producers is None


async def test_emit_signs_with_the_signing_key_so_an_enforcing_consumer_stores_its_events(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    keys_file = tmp_path / "producers.toml"
    keys_file.write_text(f'[services]\nshop = "{KEY}"\n')
    settings = consume_settings(
        kafka_bootstrap, fresh_db_url, producer_auth="enforce", producer_keys_file=keys_file
    )
    env = cli_env(settings)
    lines = tmp_path / "events.jsonl"
    from_file = make_event(0, service="shop")
    lines.write_text(encode(from_file).decode() + "\n")

    async def emit(*args: str, key: str | None) -> list[str]:
        signing = {"MENDLINE_SIGNING_KEY": key} if key else {}
        result = await cli("emit", *args, "--json", env={**env, **signing})
        return [sent["event_id"] for sent in json_lines(result)]

    signed = await emit("--message", "signed by emit", "--service", "shop", key=KEY)
    signed += await emit("--file", str(lines), key=KEY)
    unsigned = await emit("--message", "unsigned", "--service", "shop", key=None)
    other_key = await emit("--message", "other key", "--service", "shop", key="o" * 32)
    assert signed[1] == from_file["event_id"]

    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.received == 4, 30, "the four emitted events")
        await wait_until(lambda: consumer.stats.stored == 2, 30, "the two signed ones")
    assert set(await stored_events(fresh_db_url)) == set(signed)
    letters = {
        json.loads(d.value or b"")["event_id"]: (d.reason, d.message.split(":")[0])
        for d in await read_dead_letters(settings)
    }
    assert letters == {
        unsigned[0]: ("unauthenticated", "missing_signature"),
        other_key[0]: ("unauthenticated", "bad_signature"),
    }


async def test_the_consume_stage_says_what_warn_stored_when_it_stops(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file = tmp_path / "producers.toml"
    keys_file.write_text(f'[services]\nshop = "{KEY}"\n')
    settings = consume_settings(
        kafka_bootstrap, fresh_db_url, producer_auth="warn", producer_keys_file=keys_file
    )
    signed, unsigned, forged = (make_event(n, service="shop") for n in range(3))
    await produce(
        kafka_bootstrap,
        settings.errors_topic,
        [encode(signed)],
        headers=signature_headers(KEY.encode(), "shop", encode(signed)),
    )
    await produce(kafka_bootstrap, settings.errors_topic, [encode(unsigned)])
    await produce(
        kafka_bootstrap,
        settings.errors_topic,
        [encode(forged)],
        headers=signature_headers(b"forger-key-0123456789", "shop", encode(forged)),
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="mendline.consume"):
        stage = asyncio.create_task(consume.run(settings, stop, Telemetry().stage("consume")))
        try:
            await wait_until(lambda: stored_count(fresh_db_url, 3), 60, "the three events stored")
        finally:
            stop.set()
            await asyncio.wait_for(stage, 30)
    closing = caplog.records[-1].getMessage()
    assert closing == (
        "mendline: consumed 3 records: 3 stored, 0 duplicates, 0 dead-lettered;"
        " 2 of those stored failed the producer check (bad_signature 1, missing_signature 1)"
    )


async def stored_count(url: str, wanted: int) -> bool:
    """Whether ``wanted`` events are stored (False while the stage has not migrated yet)."""
    try:
        return len(await stored_events(url)) == wanted
    except asyncpg.UndefinedTableError:
        return False
