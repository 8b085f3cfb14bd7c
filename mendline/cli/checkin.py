"""``mendline checkin``: a heartbeat check-in from a cron line or a shell script."""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import TYPE_CHECKING

from mendline.cli._connections import reaching_kafka
from mendline.cli._options import AS_JSON, Commands
from mendline.cli.output import print_json
from mendline.schemas.errors import UsageError
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.schemas.checks import CheckIn

__all__ = ["checkin", "register", "send_checkin"]

_STATUSES = ("start", "ok", "fail")


def register(commands: Commands) -> None:
    """Add ``checkin`` to the top-level ``commands``."""
    command = commands.add_parser(
        "checkin",
        parents=[AS_JSON],
        help="send a heartbeat check-in (start, ok or fail) to the check-ins topic",
        description="Send one check-in of a heartbeat check and wait for Kafka's ack: silent\n"
        "and 0 when it was written, one line on stderr and 1 when not. In a crontab:\n\n"
        "  0 3 * * * /opt/export.sh && mendline checkin nightly-export --status ok"
        " || mendline checkin nightly-export --status fail",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("name", help="the heartbeat check's name, as in the checks file")
    command.add_argument("--status", required=True, choices=_STATUSES)
    command.add_argument(
        "--run-id", help="pairs a start with its ok or fail, so the run time is measured"
    )
    command.add_argument("--message", help="what happened (scrubbed of secrets, shortened)")
    command.add_argument(
        "--duration", type=_seconds, metavar="SECONDS", help="how long the run took"
    )
    command.add_argument("--environment", help="default: MENDLINE_ENVIRONMENT")
    command.set_defaults(run=checkin)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not value >= 0 or value == float("inf"):  # NaN fails the first test
        raise argparse.ArgumentTypeError(f"expected seconds, at least 0, not {text!r}")
    return value


async def send_checkin(settings: Settings, checkin: CheckIn) -> tuple[int, int]:
    """Produce ``checkin`` to the check-ins topic (acks=all, keyed by the check's name) and
    wait for its ack; returns the (partition, offset) it was written at."""
    from mendline.ingest import encode_checkin, errors_producer

    key, value = encode_checkin(checkin)
    producer = errors_producer(
        settings,
        client_id="mendline-checkin",
        request_timeout_ms=int(settings.kafka_request_timeout * 1000),
    )
    try:
        await producer.start()
        meta = await (await producer.send(settings.checkins_topic, value=value, key=key))
    finally:
        await producer.stop()
    return meta.partition, meta.offset


def checkin(args: argparse.Namespace, settings: Settings) -> int:
    """``mendline checkin NAME --status ...``: one check-in, sent once Kafka acked it."""
    from pydantic import ValidationError

    from mendline.analyzers.grouping.scrubbing import Scrubber
    from mendline.ingest import new_checkin

    try:
        one = new_checkin(
            args.name,
            args.status,
            run_id=args.run_id,
            message=args.message,
            duration=args.duration,
            environment=args.environment or settings.environment,
            host=socket.gethostname(),
            scrubber=Scrubber(settings.scrub_extra_keys, settings.scrub_extra_patterns),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UsageError(f"not a check-in: {problems}") from None
    with reaching_kafka(settings):
        partition, offset = asyncio.run(send_checkin(settings, one))
    if args.json:
        print_json(
            {
                "checkin_id": str(one.checkin_id),
                "check": one.check,
                "status": one.status,
                "topic": settings.checkins_topic,
                "partition": partition,
                "offset": offset,
            }
        )
    return 0
