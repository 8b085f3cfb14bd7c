"""What fingerprint() costs per event: a typical stack trace event and message-only events.

Run: .venv/bin/python bench/fingerprint.py [--events N]

The typical event: one exception whose ten frames (seven in-app, three library) have
60-character source lines; the frames recur from event to event, as the same code fails again,
while the values and messages vary. Message-only events are given with a recurring template
(the logging handler sends the unformatted template) and with every message new (a producer
that formats its messages). title() and culprit(), which the consumer also calls, are shown
apart. Figures only, no assertions: this machine is shared.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

from samples import LINES  # bench/ is the script folder

from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title


def _event(n: int, exceptions: list[dict[str, Any]], message: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"{n:032x}",
        "timestamp": "2024-05-01T12:34:56.123456Z",
        "service": "checkout",
        "environment": "production",
        "release": "1.2.3",
        "host": "web-7",
        "level": "error",
        "logger": "checkout.orders",
        "message": message,
        "exceptions": exceptions,
        "context": {},
        "tags": {},
        "fingerprint": None,
    }


def stack_event(n: int) -> dict[str, Any]:
    """One exception, ten frames: the first seven in-app, the last three library code."""
    frames = [
        {
            "filename": f"/srv/app/releases/{n % 3}/checkout/module{i}.py"
            if i < 7
            else f"/usr/lib/python3.11/site-packages/requests/module{i}.py",
            "module": f"checkout.module{i}" if i < 7 else f"requests.module{i}",
            "function": f"handler_{i}",
            "lineno": 10 * i + 7,
            "context_line": line,
            "in_app": i < 7,
        }
        for i, line in enumerate(LINES)
    ]
    exception = {
        "type": "ConnectionError",
        "module": "requests.exceptions",
        "value": f"HTTPSConnectionPool(host='api.example.com', port=443): /v1/orders/{n}",
        "frames": frames,
        "frames_omitted": 0,
    }
    return _event(n, [exception], f"order {n} failed")


def message_event(n: int) -> dict[str, Any]:
    """No exception; the message is a recurring template."""
    return _event(n, [], "payment for order %s failed: upstream returned %s")


def formatted_message_event(n: int) -> dict[str, Any]:
    """No exception; a new message every time, with numbers, an IP, a UUID and a quoted value."""
    message = (
        f"payment {n} for order 6f1c9a8b-3e2d-4f5a-9b8c-{n:012x} failed: upstream"
        f" 10.0.{n % 256}.7 returned 502 after {n % 997}ms ('card declined')"
    )
    return _event(n, [], message)


def measure(
    label: str, make: Callable[[int], dict[str, Any]], call: Callable[..., object], events: int
) -> None:
    batch = [make(n) for n in range(events)]

    def run() -> None:
        for event in batch:
            call(event)

    run()  # warm the caches, as a running consumer has them
    times = timeit.repeat(run, repeat=5, number=1)
    print(f"{label:<58} {min(times) / len(batch) * 1e6:7.2f} µs/event")


def _title_and_culprit(event: dict[str, Any]) -> None:
    title(event)
    culprit(event)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    n = parser.parse_args().events
    print(f"fingerprint(), best of 5 runs over {n} events each")
    measure("stack trace: 1 exception, 10 frames (7 in-app)", stack_event, fingerprint, n)
    measure("message only, recurring template", message_event, fingerprint, n)
    measure("message only, every message new (formatted)", formatted_message_event, fingerprint, n)
    measure("title() + culprit() of the stack trace event", stack_event, _title_and_culprit, n)


if __name__ == "__main__":
    main()
