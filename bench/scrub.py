"""What Scrubber.scrub_event costs per event: clean events (the common case) and secret ones.

Run: .venv/bin/python bench/scrub.py [--events N]

The typical event: an 80-character message, one exception with a 100-character value and ten
frames with 60-character source lines, eight short context values and three tags. Scrubber
remembers short strings it found clean, so the figures are given for events whose strings all
recur, for the usual mix (source lines and tags recur, message, value and context vary), and
for events whose every string is new. Figures only, no assertions: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

from samples import LINES  # bench/ is the script folder

from mendline.analyzers.grouping.scrubbing import Scrubber

BATCH = 500


def clean_event(n: int, vary: str) -> dict[str, Any]:
    """One typical event; ``vary`` is 'none', 'data' (not the source lines) or 'all'."""
    d = f"{n:06d}" if vary in ("data", "all") else "000000"
    a = f"{n:06d}" if vary == "all" else ""
    return {
        "schema_version": 1,
        "event_id": f"{n:032x}",
        "timestamp": "2024-05-01T12:34:56.123456Z",
        "service": "checkout",
        "environment": "production",
        "level": "error",
        "message": f"Failed to process order {d} for customer 1192: upstream returned HTTP 502",
        "exceptions": [
            {
                "type": "ConnectionError",
                "value": f"HTTPSConnectionPool(host='api.example.com', port=443): Max retries "
                f"exceeded with url: /v1/orders/{d}",
                "frames": [
                    {
                        "filename": f"/app/checkout/module{i}.py",
                        "function": f"handler_{i}",
                        "lineno": 10 * i + 7,
                        "context_line": line + a,
                        "in_app": True,
                    }
                    for i, line in enumerate(LINES)
                ],
            }
        ],
        "context": {
            "path": f"/api/v1/orders/{d}",
            "method": "POST",
            "request_id": f"3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c{d}",
            "started": "2024-05-01T12:34:56Z",
            "region": "eu-west-1",
            "user_id": f"u{d}",
            "release": "1.2.3",
            "attempt": 3,
        },
        "tags": {"env": "prod" + a, "host": "web-7" + a, "team": "checkout" + a},
    }


def secret_event(n: int) -> dict[str, Any]:
    """A typical event that carries several secrets of different kinds."""
    event = clean_event(n, "data")
    event["message"] = f"login failed for user 1192 password=hunter{n} via Bearer abc.def{n}"
    event["exceptions"][0]["value"] = (
        f"could not connect to postgres://app:s3cr3t{n}@db:5432/app (card 4111 1111 1111 1111)"
    )
    event["exceptions"][0]["frames"][3]["context_line"] = (
        'API_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"'
    )
    event["context"]["authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
    event["context"]["note"] = f"token=ghp_{'A1b2' * 9} sent"
    event["tags"]["api_key"] = "k-123"
    return event


def measure(label: str, make: Callable[[int], dict[str, Any]], events: int) -> None:
    """Print the best of five runs; "every string new" runs need a fresh Scrubber each."""
    wire = [json.dumps(make(n)) for n in range(events)]
    runs = []
    for _ in range(5):
        scrubber = Scrubber()
        scrubber.scrub_event(json.loads(wire[0]))
        spent = 0.0
        # As the consumer does it: decode a batch (every string a new object, its hash not
        # yet computed), then scrub it while it is still in the CPU caches.
        for start in range(0, events, BATCH):
            batch = [json.loads(raw) for raw in wire[start : start + BATCH]]
            began = timeit.default_timer()
            for event in batch:
                scrubber.scrub_event(event)
            spent += timeit.default_timer() - began
        runs.append(spent)
    print(f"{label:<62} {min(runs) / events * 1e6:7.2f} µs/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    events = parser.parse_args().events
    print(f"scrub_event, best of 5 runs over {events} events each, in batches of {BATCH}")
    measure(
        "clean, every string recurs (same event again and again)",
        lambda n: clean_event(0, "none"),
        events,
    )
    measure(
        "clean, source lines and tags recur, the rest varies",
        lambda n: clean_event(n, "data"),
        events,
    )
    measure("clean, every string new (nothing remembered)", lambda n: clean_event(n, "all"), events)
    measure("several secrets (message, value, line, context, tags)", secret_event, events)


if __name__ == "__main__":
    main()
