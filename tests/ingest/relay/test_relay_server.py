"""The relay over HTTP on loopback, against the session's real broker and a real database:
the real sentry-sdk sends to it; hand-made requests for what an SDK would not send."""

from __future__ import annotations

import asyncio
import functools
import gzip
import importlib
import json
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import cramjam
import httpx
import pytest
import sentry_sdk

from mendline.devstack import KafkaBroker
from mendline.ingest import read_dead_letters, redrive
from mendline.schemas.checks import CheckIn
from tests.db_helpers import store_events
from tests.ingest.relay.conftest import ADMIN, ServedRelay, relay_settings, serve
from tests.integration.kafka_helpers import read_events, read_records
from tests.sentry_helpers import init_sdk

pytestmark = pytest.mark.integration

_SDK_LOCK = threading.Lock()  # sentry_sdk's client is global: one test at a time uses it


def envelope(*items: tuple[dict[str, Any], bytes], header: dict[str, Any] | None = None) -> bytes:
    lines = [json.dumps(header or {}).encode()]
    for item_header, payload in items:
        lines += [json.dumps({**item_header, "length": len(payload)}).encode(), payload]
    return b"\n".join(lines) + b"\n"


def event_item(**fields: Any) -> tuple[dict[str, Any], bytes]:
    payload = {
        "exception": {"values": [{"type": "KeyError", "value": "'sku'", "stacktrace": {}}]},
        "platform": "node",
        **fields,
    }
    return {"type": "event"}, json.dumps(payload).encode()


@pytest.fixture
def sdk() -> Iterator[Any]:
    """sentry_sdk.init for the test, the client closed after."""

    def init(dsn: str, **options: Any) -> None:
        init_sdk(dsn, release="shop@1.4.2", environment="staging", **options)

    with _SDK_LOCK:
        yield init
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: sends nothing


def inner(order: dict[str, int]) -> float:
    return order["amount"] / order["count"]


def checkout() -> None:
    try:
        inner({"amount": 10, "count": 0})
    except ZeroDivisionError as exc:
        raise ValueError("checkout failed for order 7") from exc


async def test_the_python_sdk_sends_a_chained_error_that_arrives_as_an_error_event(
    served_relay: ServedRelay, sdk: Any
) -> None:
    sdk(served_relay.dsn, send_client_reports=False, debug=True)
    try:
        checkout()
    except ValueError:
        event_id = sentry_sdk.capture_exception()
    await asyncio.to_thread(sentry_sdk.flush, 10)
    (event,) = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.errors_topic, 1
    )
    assert event["event_id"] == event_id and event["service"] == "checkout"
    assert [e["type"] for e in event["exceptions"]] == ["ZeroDivisionError", "ValueError"]
    cause = event["exceptions"][0]
    assert cause["frames"][-1]["function"] == "inner" and cause["frames"][-1]["in_app"] is True
    assert cause["frames"][-1]["context_line"].strip() == 'return order["amount"] / order["count"]'
    assert (event["environment"], event["release"], event["platform"]) == (
        "staging",
        "shop@1.4.2",
        "python",
    )
    assert served_relay.relay.stats.events == 1


async def test_auth_failures_are_answered_as_sentry_answers_them(served_relay: ServedRelay) -> None:
    body = envelope(event_item())
    other = await served_relay.new_key()
    await served_relay.keys.revoke_key(ADMIN, str(other.id))
    await served_relay.ring.load()
    url = served_relay.envelope_url()
    async with httpx.AsyncClient() as client:
        missing = await client.post(url, content=body)
        unknown = await client.post(
            url, content=body, headers={"X-Sentry-Auth": f"Sentry sentry_key={'0' * 32}"}
        )
        revoked = await client.post(
            served_relay.envelope_url(other), content=body, headers=served_relay.auth(other)
        )
        wrong_project = await client.post(
            f"{served_relay.url}/api/{served_relay.key.project_id + 99}/envelope/",
            content=body,
            headers=served_relay.auth(),
        )
        twice = await client.post(
            f"{url}?sentry_key={served_relay.key.public_key}",
            content=body,
            headers=served_relay.auth(),
        )
    assert (missing.status_code, unknown.status_code, revoked.status_code) == (401, 403, 403)
    assert missing.json()["detail"] == "bad envelope authentication header"
    assert unknown.json()["detail"] == "event submission rejected with_reason: ProjectId"
    assert wrong_project.status_code == 403
    assert (twice.status_code, twice.json()["detail"]) == (
        401,
        "multiple authorization payloads detected",
    )
    refused = served_relay.relay.stats.refused
    assert (refused["unknown_key"], refused["revoked_key"]) == (2, 1)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", lambda b: bytes(cramjam.brotli.compress(b))),
        ("zstd", lambda b: bytes(cramjam.zstd.compress(b))),
    ],
)
async def test_every_compression_is_read_and_the_query_key_authenticates(
    served_relay: ServedRelay, encoding: str | None, encode: Any
) -> None:
    body = envelope(event_item(event_id="ab" * 16))
    headers = {"Content-Encoding": encoding} if encoding else {}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            served_relay.envelope_url() + f"?sentry_key={served_relay.key.public_key}",
            content=encode(body),
            headers=headers,
        )
    assert (answer.status_code, answer.json()) == (200, {"id": "ab" * 16})
    (event,) = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.errors_topic, 1
    )
    assert (event["event_id"], event["platform"]) == ("ab" * 16, "node")


async def test_an_sdk_whose_clock_is_a_day_behind_has_its_event_moved_to_when_it_was_sent(
    served_relay: ServedRelay,
) -> None:
    now = datetime.now(UTC)
    behind = now - timedelta(days=1)  # the SDK's clock
    body = envelope(
        event_item(event_id="cd" * 16, timestamp=(behind - timedelta(seconds=3)).timestamp()),
        header={"event_id": "cd" * 16, "sent_at": behind.isoformat()},
    )
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            served_relay.envelope_url(), content=body, headers=served_relay.auth()
        )
    assert answer.status_code == 200
    (event,) = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.errors_topic, 1
    )
    moved = datetime.fromisoformat(event["timestamp"])
    assert now - timedelta(seconds=4) < moved <= datetime.now(UTC)  # a day later than it said
    assert event["context"]["clock_drift"]["adjusted_by_seconds"] > 86_399
    assert served_relay.relay.stats.clock_corrected == 1


async def test_malformed_and_oversized_bodies_are_refused_and_the_malformed_kept(
    served_relay: ServedRelay,
) -> None:
    url, auth = served_relay.envelope_url(), served_relay.auth()
    async with httpx.AsyncClient() as client:
        broken = await client.post(
            url, content=b'{}\n{"type":"event","length":99}\n{}', headers=auth
        )
        not_json = await client.post(
            url, content=envelope(({"type": "event"}, b"{nope")), headers=auth
        )
        huge = await client.post(
            url,
            content=envelope(({"type": "event"}, b'{"x":"' + b"a" * (1 << 20) + b'"}')),
            headers=auth,
        )
        unknown_coding = await client.post(
            url, content=b"x", headers={**auth, "Content-Encoding": "compress"}
        )
        bomb = await client.post(
            url,
            content=gzip.compress(b"\n" * (300 << 20)),
            headers={**auth, "Content-Encoding": "gzip"},
        )
    assert (broken.status_code, broken.json()["detail"]) == (400, "invalid event envelope")
    assert not_json.status_code == 400
    assert huge.status_code == 413 and "size limits for type 'event'" in huge.json()["detail"]
    assert (unknown_coding.status_code, bomb.status_code) == (415, 413)
    kept = await read_records(
        served_relay.settings.kafka_bootstrap, served_relay.settings.dlq_topic, 2, timeout=10
    )
    # The two malformed bodies, with why; not the oversized ones (nor unauthenticated ones).
    by_reason = {dict(r.headers)["mendline.errors.relay_reason"]: r for r in kept}
    assert sorted(by_reason) == [b"bad_envelope", b"bad_event"]
    assert by_reason[b"bad_envelope"].value == b'{}\n{"type":"event","length":99}\n{}'
    assert dict(by_reason[b"bad_event"].headers)["mendline.errors.service"] == b"checkout"
    assert served_relay.relay.stats.kept == 2
    # `dlq list --reason relay_rejected` finds them; a redrive never sends them to the errors
    # topic (they are bodies an SDK was answered 400 for, not events), even when asked by name.
    settings = served_relay.settings
    listed = await read_dead_letters(settings, reason="relay_rejected")
    assert sorted(dict(d.headers)["mendline.errors.relay_reason"] for d in listed) == [
        b"bad_envelope",
        b"bad_event",
    ]
    assert await redrive(settings, "relay_rejected") == 0
    assert await redrive(settings) == 0
    assert await read_records(settings.kafka_bootstrap, settings.errors_topic, 1, timeout=2) == []


async def test_a_check_in_becomes_a_heartbeat_and_other_items_are_counted(
    served_relay: ServedRelay,
) -> None:
    check_in = {
        "check_in_id": "83a7c03ed0a04e1b97e2e3b18d38f244",
        "monitor_slug": "nightly-export",
        "status": "ok",
        "duration": 12.5,
    }
    report = {
        "timestamp": 1796607000.5,
        "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 3}],
    }
    body = envelope(
        ({"type": "check_in"}, json.dumps(check_in).encode()),
        ({"type": "session"}, b'{"sid":"x","status":"ok","attrs":{"release":"1"}}'),
        ({"type": "attachment", "filename": "a.txt"}, b"hello"),
        ({"type": "client_report"}, json.dumps(report).encode()),
    )
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            served_relay.envelope_url(), content=body, headers=served_relay.auth()
        )
    assert (answer.status_code, answer.json()) == (200, {})
    (record,) = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.checkins_topic, 1
    )
    heartbeat = CheckIn.model_validate(record)
    # Named by the key's service: a key speaks for its own service's heartbeats only.
    assert (heartbeat.check, heartbeat.status, heartbeat.duration) == (
        "checkout.nightly-export",
        "ok",
        12.5,
    )
    assert heartbeat.run_id == check_in["check_in_id"]
    stats = served_relay.relay.stats
    assert stats.dropped == {"session": 1, "attachment": 1}
    assert stats.discarded == {("queue_overflow", "error"): 3}


async def test_cors_preflight_and_origins_as_the_key_allows(served_relay: ServedRelay) -> None:
    only = await served_relay.new_key(origins=("https://shop.example.com",))
    url = served_relay.envelope_url(only) + f"?sentry_key={only.public_key}"
    async with httpx.AsyncClient() as client:
        preflight = await client.options(url, headers={"Origin": "https://evil.example"})
        allowed = await client.post(
            url, content=envelope(event_item()), headers={"Origin": "https://shop.example.com"}
        )
        refused = await client.post(
            url, content=envelope(event_item()), headers={"Origin": "https://evil.example"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert "x-sentry-auth" in preflight.headers["Access-Control-Allow-Headers"]
    assert allowed.status_code == 200
    assert "x-sentry-rate-limits" in allowed.headers["Access-Control-Expose-Headers"]
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "event submission rejected with_reason: Cors",
    )


SHOP = """
def total(order):
    return order["amount"] / order["count"]


def lookup(order):
    return order["sku"]
"""


async def test_sdk_errors_become_issues_grouped_as_sentry_groups_them(
    served_relay: ServedRelay, sdk: Any, tmp_path: Path, fresh_db_url: str
) -> None:
    """The same error twice, then after a deploy moved its line: one issue; another error in
    another function: another issue. Titles and culprits as people read them."""
    sdk(served_relay.dsn, send_client_reports=False, in_app_include=["shop_orders"])
    source = tmp_path / "shop_orders.py"
    source.write_text(SHOP)
    sys.path.insert(0, str(tmp_path))
    try:
        shop_orders = importlib.import_module("shop_orders")  # the test's own, on disk

        sent = [_capture(shop_orders.total, {"amount": 1, "count": 0}) for _ in range(2)]
        source.write_text("\n\n# moved down by a deploy\n" + SHOP)
        shop_orders = importlib.reload(shop_orders)
        sent.append(_capture(shop_orders.total, {"amount": 1, "count": 0}))
        sent.append(_capture(shop_orders.lookup, {}))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shop_orders", None)
    await asyncio.to_thread(sentry_sdk.flush, 10)
    events = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.errors_topic, 4
    )
    assert sorted(e["event_id"] for e in events) == sorted(sent)
    lines = {e["exceptions"][-1]["frames"][-1]["lineno"] for e in events}
    assert len(lines) == 3  # total before and after the move, and lookup
    await store_events(fresh_db_url, sorted(events, key=lambda e: e["timestamp"]))
    conn = await asyncpg.connect(fresh_db_url)
    try:
        issues = await conn.fetch(
            "SELECT title, culprit, times_seen FROM mendline.issues ORDER BY id"
        )
    finally:
        await conn.close()
    assert [tuple(i) for i in issues] == [
        ("ZeroDivisionError: division by zero", "shop_orders.total", 3),
        ("KeyError: 'sku'", "shop_orders.lookup", 1),
    ]


def _capture(call: Any, order: dict[str, int]) -> str:
    try:
        call(order)
    except Exception:
        event_id = sentry_sdk.capture_exception()
    assert event_id is not None
    return event_id


async def test_a_kafka_outage_is_a_503_and_the_sdks_report_of_its_loss_is_counted(
    fresh_db_url: str, kafka_broker_factory: Callable[..., KafkaBroker], sdk: Any
) -> None:
    broker = kafka_broker_factory()
    settings = relay_settings(fresh_db_url, broker.bootstrap, relay_produce_timeout=2.0)
    async for served in serve(settings):
        broker.stop()
        sdk(served.dsn)  # client reports on: the SDK says what it could not deliver
        try:
            checkout()
        except ValueError:
            sentry_sdk.capture_exception()
        await asyncio.to_thread(sentry_sdk.flush, 10)  # the event, answered 503
        await asyncio.to_thread(sentry_sdk.flush, 10)  # then its report, which needs no Kafka
        stats = served.relay.stats
        assert stats.refused == {"kafka_unavailable": 1} and stats.events == 0
        assert stats.discarded == {("network_error", "error"): 1}
        # An envelope of several records (an event, a check-in, a day-late clock): none
        # acknowledged, so none counted, and the whole envelope is refused.
        check_in = {"check_in_id": "ab" * 16, "monitor_slug": "nightly", "status": "ok"}
        late = datetime.now(UTC) - timedelta(days=1)
        body = envelope(
            event_item(timestamp=late.timestamp()),
            ({"type": "check_in"}, json.dumps(check_in).encode()),
            header={"sent_at": late.isoformat()},
        )
        async with httpx.AsyncClient() as client:
            answer = await client.post(served.envelope_url(), content=body, headers=served.auth())
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "30")
        assert stats.refused == {"kafka_unavailable": 2}
        assert (stats.events, stats.check_ins, stats.clock_corrected) == (0, 0, 0)
        assert stats.check_ins_invalid == 0  # a valid check-in, only not acknowledged


async def test_a_key_writes_only_its_services_heartbeats_and_bad_check_ins_are_counted(
    served_relay: ServedRelay,
) -> None:
    def check_in(slug: str, **fields: Any) -> tuple[dict[str, Any], bytes]:
        body = {"check_in_id": "0" * 32, "monitor_slug": slug, "status": "ok", **fields}
        return {"type": "check_in"}, json.dumps(body).encode()

    mendline_key = await served_relay.keys.create_key(ADMIN, "mendline", "production")
    await served_relay.ring.load()
    async with httpx.AsyncClient() as client:
        for key, item in [
            (served_relay.key, check_in("a", environment="*")),
            (served_relay.key, check_in("b")),  # all-zero ids, each its own check-in
            (served_relay.key, check_in("c", duration=-1.0)),  # refused by the contract
            (mendline_key, check_in("clock")),  # never mendline's own clock
        ]:
            answer = await client.post(
                served_relay.envelope_url(key),
                content=envelope(item),
                headers=served_relay.auth(key),
            )
            assert answer.status_code == 200
    records = await read_events(
        served_relay.settings.kafka_bootstrap, served_relay.settings.checkins_topic, 2
    )
    heartbeats = sorted((CheckIn.model_validate(r) for r in records), key=lambda c: c.check)
    assert [(c.check, c.environment) for c in heartbeats] == [
        ("checkout.a", "production"),  # "*" is no environment of its own
        ("checkout.b", "production"),
    ]
    assert heartbeats[0].checkin_id != heartbeats[1].checkin_id
    assert served_relay.relay.stats.check_ins_invalid == 2


async def test_envelopes_of_too_many_items_and_bodies_without_auth_cost_nothing_more(
    served_relay: ServedRelay,
) -> None:
    many = gzip.compress(b"{}\n" + b'{"type":"x"}\n\n' * 1001)
    bomb = gzip.compress(b"\n" * (50 << 20))
    async with httpx.AsyncClient() as client:
        crowded = await client.post(
            served_relay.envelope_url(),
            content=many,
            headers={**served_relay.auth(), "Content-Encoding": "gzip"},
        )
        # No key in a header or the query: refused before its body is decompressed (a bomb
        # would be 413 otherwise).
        anonymous = await client.post(
            f"{served_relay.url}/api/{served_relay.key.project_id}/store/",
            content=bomb,
            headers={"Content-Encoding": "gzip"},
        )
    assert crowded.status_code == 413 and crowded.json()["causes"] == ["more than 1000 items"]
    assert (anonymous.status_code, anonymous.json()["detail"]) == (
        401,
        "missing authorization information",
    )


async def test_the_store_endpoint_takes_an_envelope_and_an_envelopes_id_is_answered(
    served_relay: ServedRelay,
) -> None:
    transaction = ({"type": "transaction"}, b'{"type":"transaction","spans":[]}')
    body = envelope(transaction, header={"event_id": "ef" * 16})
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{served_relay.url}/api/{served_relay.key.project_id}/store/",
            content=body,
            headers={**served_relay.auth(), "Content-Type": "application/x-sentry-envelope"},
        )
    assert (answer.status_code, answer.json()) == (200, {"id": "ef" * 16})
    assert served_relay.relay.stats.dropped == {"transaction": 1}


async def test_a_client_that_never_sends_its_body_holds_no_one_else(
    fresh_db_url: str, kafka_bootstrap: str
) -> None:
    settings = relay_settings(fresh_db_url, kafka_bootstrap, relay_concurrency=1)
    async for served in serve(settings):
        host, port = served.url.removeprefix("http://").split(":")
        stalled = []
        for _ in range(3):  # headers, then silence: more of them than the relay reads at once
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /api/{served.key.project_id}/envelope/ HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: 5000\r\n\r\n{}".encode()
            )
            await writer.drain()
            stalled.append(writer)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(
                    served.envelope_url(), content=envelope(event_item()), headers=served.auth()
                )
            assert answer.status_code == 200
        finally:
            for writer in stalled:
                writer.close()


async def test_large_bodies_are_decompressed_off_the_loop_a_few_at_once(
    fresh_db_url: str, kafka_bootstrap: str
) -> None:
    # Bodies over 1 MiB once decompressed go to a thread, one at a time here; the others
    # wait up to the produce timeout (20 ms), then are answered 503 with Retry-After.
    settings = relay_settings(
        fresh_db_url, kafka_bootstrap, relay_concurrency=1, relay_produce_timeout=0.02
    )
    big = gzip.compress(envelope(({"type": "attachment"}, b"a" * (15 << 20))), mtime=0)
    gzip_coded = {"Content-Encoding": "gzip"}
    async for served in serve(settings):
        url, headers = served.envelope_url(), {**served.auth(), "Content-Encoding": "gzip"}
        async with httpx.AsyncClient(timeout=30) as client:
            post = functools.partial(client.post, url, content=big, headers=headers)
            # Small bodies, compressed or not (even a large one not compressed), are read on
            # the loop meanwhile, never waiting for a slot.
            small = [
                client.post(url, content=body, headers={**served.auth(), **encoding})
                for body, encoding in [
                    (gzip.compress(envelope(({"type": "attachment"}, b"x" * 1000))), gzip_coded),
                    (envelope(({"type": "attachment"}, b"y" * (2 << 20))), {}),
                ]
                * 3
            ]
            answered = await asyncio.gather(*(post() for _ in range(6)), *small)
            answers = answered[:6]
            assert [answer.status_code for answer in answered[6:]] == [200] * 6
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses[0] == 200 and statuses[-1] == 503, statuses
            for answer in answers:
                if answer.status_code == 503:
                    assert answer.json() == {"detail": "the service is overloaded"}
                    assert answer.headers["Retry-After"] == "5"
            # Every slot is free again: a large body alone is read whole.
            assert (await post()).status_code == 200
        stats = served.relay.stats
        assert stats.dropped["attachment"] == statuses.count(200) + 1 + 6
        assert stats.refused == {"overloaded": statuses.count(503)}


async def test_events_and_check_ins_are_limited_apart_and_the_429_names_its_category(
    fresh_db_url: str, kafka_bootstrap: str
) -> None:
    check_in = {"check_in_id": "0" * 32, "monitor_slug": "nightly", "status": "ok"}
    beat = envelope(({"type": "check_in"}, json.dumps(check_in).encode()))
    dotted = envelope(
        ({"type": "check_in"}, json.dumps({**check_in, "monitor_slug": "api.nightly"}).encode())
    )
    settings = relay_settings(fresh_db_url, kafka_bootstrap)
    async for served in serve(settings, rate_limit=1):
        url, auth = served.envelope_url(), served.auth()
        async with httpx.AsyncClient() as client:
            first = await client.post(url, content=envelope(event_item()), headers=auth)
            heartbeat = await client.post(url, content=beat, headers=auth)  # a bucket of its own
            second = await client.post(url, content=envelope(event_item()), headers=auth)
            another = await client.post(url, content=beat, headers=auth)
        assert (first.status_code, heartbeat.status_code) == (200, 200)
        assert second.status_code == 429 and another.status_code == 429
        assert second.headers["X-Sentry-Rate-Limits"].endswith(":error;default:key:key_quota")
        assert another.headers["X-Sentry-Rate-Limits"].endswith(":monitor:key:key_quota")
        assert int(second.headers["Retry-After"]) >= 1
    async for served in serve(relay_settings(fresh_db_url, kafka_bootstrap)):
        async with httpx.AsyncClient() as client:
            for body in (beat, beat, dotted):
                answer = await client.post(
                    served.envelope_url(), content=body, headers=served.auth()
                )
                assert answer.status_code == 200
        records = await read_events(
            served.settings.kafka_bootstrap, served.settings.checkins_topic, 2
        )
        # Two runs with Sentry's nil id are two check-ins; a dotted slug would name another
        # service's check, and is not taken.
        assert [r["check"] for r in records] == ["checkout.nightly", "checkout.nightly"]
        assert records[0]["checkin_id"] != records[1]["checkin_id"]
        assert served.relay.stats.check_ins_invalid == 1
