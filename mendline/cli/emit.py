"""``mendline emit``: test ErrorEvents sent to the errors topic from the shell."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.cli._console import UsageError, print_json, reaching_kafka
from mendline.ingest import Capture, EventBuilder, RawException, errors_producer, prepare_record
from mendline.schemas.errors import InvalidEvent
from mendline.schemas.prepared import PreparedEvent
from mendline.schemas.settings import Settings

__all__ = ["DEFAULT_SERVICE", "Sent", "build_events", "emit", "prepared_lines", "send"]

#: The service of emitted test events when neither --service nor MENDLINE_SERVICE says.
DEFAULT_SERVICE = "mendline-emit"
# The options that describe the one event --message builds; a --file has whole events.
_EVENT_OPTIONS = (
    "service",
    "level",
    "environment",
    "release",
    "exception",
    "context",
    "tag",
    "fingerprint",
    "count",
)


@dataclass(frozen=True, slots=True)
class Sent:
    """Where one event was written."""

    event_id: str
    fingerprint: str
    topic: str
    partition: int
    offset: int


def build_events(
    builder: EventBuilder,
    *,
    message: str,
    level: str = "error",
    exceptions: Sequence[tuple[str, str | None, str]] = (),
    context: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    fingerprint: list[str] | None = None,
    count: int = 1,
) -> list[bytes]:
    """``count`` events of one log call, each with its own event_id, as the processor builds
    them (trimmed to the limits and scrubbed); their wire bytes.

    ``exceptions`` are (type, module, value) of a chain without frames, root cause first.
    """
    chain = [RawException(kind, module, value, [], 0) for kind, module, value in exceptions]
    return [
        builder.encode(
            Capture(
                time.time(),
                level,
                None,
                message,
                dict(context or {}),
                chain,
                tags,
                fingerprint,
            )
        )[1]
        for _ in range(count)
    ]


def prepared_lines(
    lines: Iterable[bytes], scrubber: Scrubber, bad: list[int]
) -> Iterator[PreparedEvent]:
    """ErrorEvent JSON lines, validated, scrubbed and fingerprinted as the consumer does it.

    Blank lines are skipped. A line that is not an ErrorEvent is named on stderr (``line N:
    <reason>: <detail>``, counted from 1), its number added to ``bad``, and left out.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield prepare_record(line.rstrip(b"\r\n"), scrubber)
        except InvalidEvent as exc:
            print(f"line {number}: {exc.reason}: {exc.detail}", file=sys.stderr)
            bad.append(number)


async def send(settings: Settings, events: Sequence[PreparedEvent]) -> list[Sent]:
    """Produce ``events`` to the errors topic as the shipper does (acks=all, no idempotence,
    keyed by event_id) and wait for every ack."""
    producer = errors_producer(
        settings,
        client_id="mendline-emit",
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )
    try:
        await producer.start()
        futures = [
            await producer.send(
                settings.errors_topic, value=event.payload, key=event.event_id.encode()
            )
            for event in events
        ]
        written = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Sent(event.event_id, event.fingerprint, meta.topic, meta.partition, meta.offset)
        for event, meta in zip(events, written, strict=True)
    ]


def emit(args: argparse.Namespace, settings: Settings) -> int:
    """``mendline emit``: events from the options or from ``--file``; 1 if a line was bad."""
    scrubber = Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns)
    bad: list[int] = []
    if args.file is not None:
        given = [name for name in _EVENT_OPTIONS if getattr(args, name)]
        if given:
            raise UsageError(f"--{given[0]} goes with --message, not with --file")
        with args.file:
            events = list(prepared_lines(args.file, scrubber, bad))
    else:
        builder = EventBuilder(
            args.service or settings.service or DEFAULT_SERVICE,
            args.environment or settings.environment,
            args.release or settings.release,
            scrubber=scrubber,
        )
        wire = build_events(
            builder,
            message=args.message,
            level=args.level or "error",
            exceptions=args.exception,
            context=args.context,
            tags=dict(args.tag),
            fingerprint=args.fingerprint or None,
            count=args.count or 1,
        )
        events = [prepare_record(data, scrubber) for data in wire]  # the consumer's own check
    sent: list[Sent] = []
    if events:
        with reaching_kafka(settings):
            sent = asyncio.run(send(settings, events))
    for one in sent:
        if args.json:
            print_json(asdict(one))
        else:
            print(one.event_id)
    if not args.json:
        print(f"sent {len(sent)} event(s) to {settings.errors_topic}", file=sys.stderr)
    return 1 if bad else 0
