"""What Scrubber.scrub_event costs per event: clean events (the common case) and secret ones.

Run: .venv/bin/python bench/scrub.py [--events N]

The typical event: an 80-character message, one exception with a 100-character value and ten
frames with 60-character source lines, eight short context values and three tags. Scrubber
remembers short strings it found clean, so the figures are given for events whose strings all
recur, for the usual mix (source lines and tags recur, message, value and context vary), and
for events whose every string is new. Figures only, no assertions: this machine is shared.

Before the timings it prints the quality figures over a fixed table of cases: how many
secrets survived (leaks) and how many harmless strings were changed (losses), each in a
message and in a source line, so that a change trading one for the other shows. The table is
self-contained (it does not import the scrubber's own provider table), so the same script can
measure an older scrubber.
"""

from __future__ import annotations

import argparse
import copy
import json
import timeit
from collections.abc import Callable
from typing import Any

from samples import LINES  # bench/ is the script folder

from mendline.analyzers.grouping.scrubbing import Scrubber

BATCH = 500

_GH = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
# (text, the secret in it): after scrubbing, the secret must be gone.
SECRETS = [
    ("key sk-proj-Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy3Za5Bc7T3BlbkFJQw8Er6Ty4Ui2", "Ab3De5Fg7Hj9"),
    ("key sk-ant-api03-Xy7Qk2mN9pLr4TfWb8Zc1Vd6Hs3Jg5Ka0Me_Xy7Qk2mN9pLr4AA", "Xy7Qk2mN9pLr"),
    ("google AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "9tSrke72Pou"),
    ("oauth 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", "1r0aNcG8gdd"),
    ("aws AKIAIOSFODNN7EXAMPLE", "IOSFODNN7"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("AccountName=a;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2U==", "Eby8vdM0"),
    ("blob?sv=2022-11-02&sig=p9k3Xv0yTq%2BZr1wO8mN4bL7cD2eF", "p9k3Xv0yTq"),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIj"),
    ("slack xapp-1-A0123456789-1234567890123-0123456789abcdef", "0123456789abcdef"),
    (
        "hook https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/AbCdEfGhIjKlMnOpQrStUvWx",
        "AbCdEfGh",
    ),
    ("sendgrid 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", "TwL2iGAB"),
    ("twilio SK2a0747c1ba9bd4b3c1cbd23f7e9a1c4f", "2a0747c1ba9bd4b3"),
    ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyj"),
    ("gitlab glpat-xYz1AbC2dEf3GhI4jKl5", "xYz1AbC2dEf3"),
    ("hf hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH", "aBcDeFgHiJkLm"),
    ("npm npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "aBcDeFgHiJkLm"),
    (
        "pypi pypi-AgEIcHlwaS5vcmcCJDY2ZjM5ZTVhLTFmNjMtNGU3Ni1iNzYyLWU0ZTcwY2Q0M2I0NgACKl",
        "CJDY2ZjM5",
    ),
    (f"github {_GH}", _GH),
    ("GET /cb?code=4/0AX4XfWhQzz&state=x", "0AX4XfWhQzz"),
    ("s3?X-Amz-Credential=AKIDEXAMPLE%2F2024&X-Amz-Signature=9f2c0e1d77", "9f2c0e1d77"),
    ("cb#access_token=ya29.abcdef&token_type=bearer", "ya29.abcdef"),
    ("login pwd=s3cr3tpw", "s3cr3tpw"),
    ("password: 987654", "987654"),
    ("login failed password=hunter2", "hunter2"),
    ("card 4111 1111 1111 1111", "4111 1111"),
]
# Strings without a secret: they must come through unchanged.
KEEPERS = [
    "token_count=42",
    "session_timeout: 30",
    "max_tokens=4096 exceeded",
    "tokenizer=gpt2",
    "author=bob",
    "auth_method=password",
    "is_authenticated=true",
    "order_id=4539578763621486",
    "signal=9 received",
    "https://api.example.com/v1/orders?limit=10&page=2",
    "session.commit() failed",
]
# Source lines: their literal secrets go, their code stays.
CODE_SECRETS = [
    ('STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', "4eC39HqLyj"),
    ('password = "hunter2"', "hunter2"),
    ('url = "https://x.example.com/cb?token=abc123&s=1"', "abc123"),
]
CODE_KEEPERS = [
    "session = Session()",
    'token = request.headers.get("X-Token")',
    "author = book.author",
    'password = form["password"]',
    "db.connect(user=user, password=password)",
    "if password == expected:",
]


def quality(scrubber: Scrubber) -> tuple[int, int, int]:
    """(cases, leaks, losses): text cases as a message and as a context value, source-line
    cases as a frame's context_line."""
    placed = [
        *((text, secret, field) for text, secret in SECRETS for field in ("message", "context")),
        *((text, secret, "context_line") for text, secret in CODE_SECRETS),
        *((text, None, field) for text in KEEPERS for field in ("message", "context")),
        *((text, None, "context_line") for text in CODE_KEEPERS),
    ]
    leaks = losses = 0
    for text, secret, field in placed:
        event = clean_event(0, "none")
        _put(event, field, text)
        before = copy.deepcopy(event)
        scrubber.scrub_event(event)
        if secret is not None:
            leaks += secret in json.dumps(event)
        else:
            losses += event != before
    return len(placed), leaks, losses


def _put(event: dict[str, Any], field: str, text: str) -> None:
    if field == "message":
        event["message"] = text
    elif field == "context":
        event["context"]["detail"] = text
    else:
        event["exceptions"][0]["frames"][4]["context_line"] = text


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
    cases, leaks, losses = quality(Scrubber())
    print(f"quality: {cases} cases, {leaks} leaks (secrets kept), {losses} losses (text changed)")
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
