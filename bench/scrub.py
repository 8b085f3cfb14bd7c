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
import copy
import timeit
from collections.abc import Callable
from typing import Any

from mendline.analyzers.scrubbing import Scrubber

LINES = [
    "response = self.session_pool.request(method, url, timeout=30)",
    "raise ConnectionError(err, request=request) from err now",
    "return self.send(prepared, allow_redirects=True, **kwargs)",
    "resp = conn.urlopen(method=request.method, url=url, body=b)",
    "order = await self.repo.get_order(order_id, for_update=True)",
    "result = handler(event, context, retries=self.max_retries)",
    "total = sum(item.price * item.quantity for item in lines)",
    "self._validate_payload(payload, schema=self.schema, strict=1)",
    "return await call_next(request, background=background_tasks)",
    "raise HTTPError(status_code=502, detail='upstream failed')",
]


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


def measure(
    label: str, make: Callable[[int], dict[str, Any]], events: int, fresh_scrubber: bool
) -> None:
    scrubber = Scrubber()
    batch: list[dict[str, Any]] = []

    def setup() -> None:
        nonlocal scrubber, batch
        if fresh_scrubber:
            scrubber = Scrubber()
        batch = [copy.deepcopy(make(n)) for n in range(events)]

    def run() -> None:
        scrub_event = scrubber.scrub_event
        for event in batch:
            scrub_event(event)

    times = timeit.repeat(run, setup=setup, repeat=5, number=1)
    print(f"{label:<62} {min(times) / events * 1e6:7.2f} µs/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    events = parser.parse_args().events
    print(f"scrub_event, best of 5 runs over {events} events each")
    measure(
        "clean, every string recurs (same event again and again)",
        lambda n: clean_event(0, "none"),
        events,
        False,
    )
    measure(
        "clean, source lines and tags recur, the rest varies",
        lambda n: clean_event(n, "data"),
        events,
        False,
    )
    measure(
        "clean, every string new (nothing remembered)",
        lambda n: clean_event(n, "all"),
        events,
        True,
    )
    measure("several secrets (message, value, line, context, tags)", secret_event, events, False)


if __name__ == "__main__":
    main()
