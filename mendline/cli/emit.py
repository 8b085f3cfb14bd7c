"""``mendline emit``: test ErrorEvents sent to the errors topic from the shell."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mendline.cli._connections import reaching_kafka
from mendline.cli._options import AS_JSON, TAGS, Commands, positive
from mendline.cli.output import print_json, printable
from mendline.schemas.errors import InvalidEvent, UsageError
from mendline.schemas.event import LEVELS
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    # Imported where used: the Kafka client is not loaded for every command's help.
    from mendline.analyzers.grouping.scrubbing import Scrubber
    from mendline.ingest import EventBuilder
    from mendline.schemas.prepared import PreparedEvent

__all__ = [
    "DEFAULT_SERVICE",
    "SEND_BATCH",
    "Sent",
    "build_events",
    "emit",
    "prepared_lines",
    "register",
    "send",
]

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


def register(commands: Commands) -> None:
    """Add ``emit`` to the top-level ``commands``."""
    command = commands.add_parser(
        "emit",
        parents=[AS_JSON, TAGS],
        help="send a test ErrorEvent (or a file of ErrorEvent JSON lines) to the errors topic",
    )
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--message", help="the event's message (a log message template)")
    source.add_argument(
        "--file",
        type=argparse.FileType("rb"),
        metavar="FILE",
        help="ErrorEvent JSON lines to send ('-': standard input), each checked as the"
        " consumer checks it; a bad line is named and not sent",
    )
    command.add_argument("--service", help="default: MENDLINE_SERVICE, else mendline-emit")
    command.add_argument("--level", choices=LEVELS, help="default: error")
    command.add_argument("--environment", help="default: MENDLINE_ENVIRONMENT")
    command.add_argument("--release", help="default: MENDLINE_RELEASE")
    command.add_argument(
        "--exception",
        type=_exception,
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="an exception, e.g. 'ValueError:bad input' (repeat for a chain, root cause first)",
    )
    command.add_argument(
        "--context", type=_json_object, metavar="JSON", help="the logged key-values, an object"
    )
    command.add_argument(
        "--fingerprint",
        action="append",
        default=[],
        metavar="PART",
        help="custom grouping (repeat for several parts)",
    )
    command.add_argument("--count", type=positive, help="send this many such events (default 1)")
    command.set_defaults(run=emit)


def _exception(text: str) -> tuple[str, str | None, str]:
    """``[module.]Type[:value]`` as (type, module, value): an exception for `mendline emit`."""
    kind, _, value = text.partition(":")
    module, _, name = kind.strip().rpartition(".")
    if not name:
        raise argparse.ArgumentTypeError(f"use TYPE:VALUE, e.g. 'ValueError:bad', not {text!r}")
    return name, module or None, value.strip()


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, not {text!r}")
    return value


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
) -> Iterator[bytes]:
    """``count`` events of one log call, each with its own event_id, as the processor builds
    them (trimmed to the limits and scrubbed); their wire bytes, built one at a time as they
    are taken (a large count is sent as it is built, never held whole).

    ``exceptions`` are (type, module, value) of a chain without frames, root cause first.
    """
    from mendline.ingest import Capture, RawException

    chain = [RawException(kind, module, value, [], 0) for kind, module, value in exceptions]
    for _ in range(count):
        capture = Capture(
            time.time(), level, None, message, dict(context or {}), chain, tags, fingerprint
        )
        yield builder.encode(capture)[1]


def prepared_lines(
    lines: Iterable[bytes], scrubber: Scrubber, bad: list[int]
) -> Iterator[PreparedEvent]:
    """ErrorEvent JSON lines, validated, scrubbed and fingerprinted as the consumer does it.

    Blank lines are skipped. A line that is not an ErrorEvent is named on stderr (``line N:
    <reason>: <detail>``, counted from 1), its number added to ``bad``, and left out.
    """
    from mendline.ingest import prepare_record

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield prepare_record(line.rstrip(b"\r\n"), scrubber)
        except InvalidEvent as exc:
            # The detail may quote the line, which is anyone's text: escaped for the terminal.
            print(f"line {number}: {exc.reason}: {printable(exc.detail)}", file=sys.stderr)
            bad.append(number)


#: Events sent before their acks are awaited: what memory holds of a large emit.
SEND_BATCH = 1000


async def send(
    settings: Settings, events: Iterable[PreparedEvent], on_sent: Callable[[Sent], None]
) -> int:
    """Produce ``events`` to the errors topic as the shipper does (acks=all, no idempotence,
    keyed by event_id, signed with MENDLINE_SIGNING_KEY when set, as the service each event
    claims), :data:`SEND_BATCH` at a time: each batch's acks are awaited, and ``on_sent``
    told of each, before the next is taken from ``events``. Returns how many were sent."""
    from mendline.analyzers.policy import signature_headers
    from mendline.ingest import errors_producer

    secret = settings.signing_key
    key = secret.get_secret_value().encode() if secret is not None else None
    producer = errors_producer(
        settings,
        client_id="mendline-emit",
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )
    sent = 0
    try:
        await producer.start()
        taking = iter(events)
        while batch := list(itertools.islice(taking, SEND_BATCH)):
            futures = [
                await producer.send(
                    settings.errors_topic,
                    value=event.payload,
                    key=event.event_id.encode(),
                    headers=signature_headers(key, event.service, event.payload) if key else None,
                )
                for event in batch
            ]
            for event, meta in zip(batch, await asyncio.gather(*futures), strict=True):
                on_sent(
                    Sent(event.event_id, event.fingerprint, meta.topic, meta.partition, meta.offset)
                )
            sent += len(batch)
    finally:
        await producer.stop()
    return sent


def emit(args: argparse.Namespace, settings: Settings) -> int:
    """``mendline emit``: events from the options or from ``--file``; 1 if a line was bad."""
    from mendline.analyzers.grouping.scrubbing import Scrubber
    from mendline.ingest import EventBuilder, prepare_record

    scrubber = Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns)
    bad: list[int] = []
    if args.file is not None:
        given = [name for name in _EVENT_OPTIONS if getattr(args, name)]
        if given:
            raise UsageError(f"--{given[0]} goes with --message, not with --file")
        with args.file:
            sent = _send_as_taken(args, settings, prepared_lines(args.file, scrubber, bad))
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
        # Each checked as the consumer will, as it is taken.
        sent = _send_as_taken(args, settings, (prepare_record(data, scrubber) for data in wire))
    if not args.json:
        print(f"sent {sent} event(s) to {settings.errors_topic}", file=sys.stderr)
    return 1 if bad else 0


def _send_as_taken(
    args: argparse.Namespace, settings: Settings, events: Iterator[PreparedEvent]
) -> int:
    """``send`` the events, each printed once acked (its event_id, or with ``--json`` where it
    went); how many. No event at all (a file of bad lines) asks no broker."""
    first = next(events, None)
    if first is None:
        return 0

    def said(one: Sent) -> None:
        if args.json:
            print_json(asdict(one))
        else:
            print(one.event_id)

    with reaching_kafka(settings):
        return asyncio.run(send(settings, itertools.chain([first], events), said))
