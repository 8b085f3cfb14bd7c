"""The kafka probe: the cluster's metadata from the bootstrap servers and, for a group and
a topic, how far the group's committed offsets are behind the topic's end."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from mendline.ingest._topics import kafka_client_options
from mendline.ingest.probes._run import ProbeFailed, Seen, since_ms
from mendline.ingest.probes._tcp import connect
from mendline.schemas.checks import KafkaCheck
from mendline.schemas.settings import Settings

__all__ = ["kafka_probe_options", "probe_kafka"]

_CLIENT_ID = "mendline-monitor"


def _servers(bootstrap: str) -> set[str]:
    return {server.strip().lower() for server in bootstrap.split(",") if server.strip()}


def kafka_probe_options(check: KafkaCheck, settings: Settings) -> dict[str, Any]:
    """The aiokafka options the check connects with. mendline's own security settings
    (``MENDLINE_KAFKA_*``: protocol, SASL credentials, CA) go only to mendline's own brokers:
    when the check names no ``bootstrap``, or only servers of ``kafka_bootstrap``. A check
    naming another cluster connects in PLAINTEXT, so mendline's credentials never reach it."""
    bootstrap = check.bootstrap or settings.kafka_bootstrap
    own = _servers(bootstrap) <= _servers(settings.kafka_bootstrap)
    options: dict[str, Any] = (
        kafka_client_options(settings) if own else {"security_protocol": "PLAINTEXT"}
    )
    options["bootstrap_servers"] = bootstrap
    # aiokafka waits this long for a request; the check's timeout bounds the run anyway.
    options["request_timeout_ms"] = max(1000, int(check.timeout * 1000))
    return options


async def _why_unreachable(bootstrap: str) -> ProbeFailed:
    """Why no bootstrap server answered: aiokafka keeps the socket errors to its log, so the
    first server is tried over TCP to tell refused, unresolved and unreachable apart."""
    first = bootstrap.split(",")[0].strip().rpartition("@")[2]
    host, _, port = first.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return ProbeFailed("config", f"{first!r} is not host:port")
    try:
        sock = await connect(host, int(port), Seen())
    except ProbeFailed as failure:
        return ProbeFailed(failure.kind, f"Kafka at {failure.message}")
    sock.close()
    # aiokafka keeps why to its log: a TLS or SASL handshake refused, or not a Kafka broker.
    problem = f"{first} accepts TCP connections but no Kafka session could be opened"
    return ProbeFailed("unreachable", problem)


async def _lag(options: dict[str, Any], admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(**options, client_id=_CLIENT_ID, enable_auto_commit=False)
    try:
        await consumer.start()
        await consumer.topics()  # fresh metadata
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ProbeFailed("other", f"the topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    lag = 0
    for tp in tps:
        offset = committed[tp].offset if tp in committed else -1
        behind = ends[tp] - offset if offset >= 0 else ends[tp] - beginnings[tp]
        lag += max(0, behind)
    return lag


async def probe_kafka(check: KafkaCheck, settings: Settings, seen: Seen) -> None:
    """Fetch the cluster's metadata: CONNECTED, RESPONSE_TIME (ms); with ``group`` and
    ``topic``, LAG: the sum over the topic's partitions of its end offset minus the group's
    committed offset (the whole partition, end minus beginning, where none is committed)."""
    options = kafka_probe_options(check, settings)
    seen.values["CONNECTED"] = False
    started = time.perf_counter()
    admin = AIOKafkaAdminClient(**options, client_id=_CLIENT_ID)
    try:
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            raise await _why_unreachable(options["bootstrap_servers"]) from exc
        seen.values["CONNECTED"] = True
        seen.timings["connect"] = time.perf_counter() - started
        seen.values["RESPONSE_TIME"] = since_ms(started)
        if check.group is not None and check.topic is not None:
            seen.values["LAG"] = await _lag(options, admin, check.group, check.topic)
    except KafkaError as exc:
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise ProbeFailed("other", f"Kafka answered with an error ({problem})") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
