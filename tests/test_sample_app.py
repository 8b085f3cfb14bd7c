"""The sample shop: a real web app whose failures become exactly the events the demo waits for."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog

from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.devstack import free_port
from mendline.ingest import ErrorEventProcessor
from mendline.sample_app import (
    TRAFFIC,
    DriveResult,
    PaymentDeclined,
    RequestSpec,
    configure_logging,
    drive,
    serving,
    shop,
)
from mendline.schemas.event import ErrorEvent
from mendline.schemas.finding import IssueContext, IssueSummary
from mendline.schemas.settings import load_settings
from mendline.testing import capture_error_events

#: Each failure and the exception it raises, "module.Type" ("": logged without an exception).
EXPECTED = {
    "bad_quantity": "builtins.ValueError",
    "unknown_sku": "builtins.KeyError",
    "missing_gift_wrap": "builtins.KeyError",
    "empty_report": "builtins.ZeroDivisionError",
    "payment_declined": f"{PaymentDeclined.__module__}.PaymentDeclined",
    "missing_user": "builtins.AttributeError",
    "invalid_json_body": "json.decoder.JSONDecodeError",
    "inventory_down": "httpx.ConnectError",
    "shipping_quote_timeout": "httpx.ReadTimeout",
    "duplicate_signup": "sqlite3.IntegrityError",
    "loyalty_db_locked": "sqlite3.OperationalError",
    "missing_env_config": "builtins.KeyError",
    "non_utf8_upload": "builtins.UnicodeDecodeError",
    "missing_template": "builtins.FileNotFoundError",
    "bad_date": "builtins.ValueError",
    "str_plus_float": "builtins.TypeError",
    "recommendations_cache_down": "",
}
#: What the requests carry in secret: a bearer JWT, a database password, a card number.
SECRETS = ("eyJhbGciOiJIUzI1NiJ9", "hunter2", "4111 1111 1111 1111")
BEARER = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2ln"}
#: The line of the shop's source that reads the gift-wrapping option unchecked.
GIFT_WRAP_LINE = next(
    number
    for number, line in enumerate(Path(shop.__file__).read_text().splitlines(), 1)
    if 'options["gift_wrap"]' in line
)


@pytest.fixture
def shop_logging(tmp_path: Path) -> Iterator[ErrorEventProcessor]:
    """structlog configured as the shop's entry point does it, Kafka nowhere (events are
    captured, never shipped)."""
    settings = load_settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        spool_dir=tmp_path / "spool",
        emit_level="error",
    )
    processor = configure_logging(
        "shop", stream=io.StringIO(), settings=settings, release="1.4.2", environment="test"
    )
    yield processor
    processor.shipper.shutdown(1)
    structlog.reset_defaults()


@dataclass
class Round:
    result: DriveResult
    answers: list[tuple[RequestSpec, int]]
    events: list[ErrorEvent]

    def failure_of(self, event: ErrorEvent) -> str:
        """The failure whose endpoint logged ``event``."""
        routes = {(s.method, s.route): s.failure for s in TRAFFIC if s.failure is not None}
        return routes[(event.context["method"], event.context["path"])]

    def by_failure(self) -> dict[str, list[ErrorEvent]]:
        found: dict[str, list[ErrorEvent]] = {}
        for event in self.events:
            found.setdefault(self.failure_of(event), []).append(event)
        return found


@pytest.fixture
async def one_round(shop_logging: ErrorEventProcessor) -> Round:
    """TRAFFIC driven once at an in-process shop, with the events it logged."""
    answers: list[tuple[RequestSpec, int]] = []
    async with serving() as url:
        with capture_error_events() as events:
            result = await drive(
                url, on_response=lambda spec, status: answers.append((spec, status))
            )
    return Round(result, answers, list(events))


def qualified(event: ErrorEvent) -> str:
    if not event.exceptions:
        return ""
    raised = event.exceptions[-1]
    return f"{raised.module}.{raised.type}"


async def test_one_round_logs_exactly_the_events_drive_counts_one_issue_per_failure(
    one_round: Round,
) -> None:
    result, events = one_round.result, one_round.events
    assert result.requests == sum(spec.repeat for spec in TRAFFIC) == len(one_round.answers)
    assert result.unexpected == 0, [(s.path, code) for s, code in one_round.answers]
    assert len(events) == result.events_logged
    assert result.failed == sum(s.repeat for s in TRAFFIC if s.status == 500) > 12
    not_found = sum(s.repeat for s in TRAFFIC if s.status == 404)
    assert result.succeeded + result.failed + not_found == result.requests
    # one error is logged without an exception, and its request is answered 200
    quiet = sum(s.repeat for s in TRAFFIC if s.failure is not None and s.status != 500)
    assert quiet > 0 and result.events_logged == result.failed + quiet
    assert result.events_logged < result.requests  # some requests succeed

    found = one_round.by_failure()
    assert sorted(found) == sorted(EXPECTED)
    repeats = Counter({s.failure: s.repeat for s in TRAFFIC if s.failure is not None})
    assert {name: len(group) for name, group in found.items()} == repeats
    assert result.by_failure == repeats
    assert max(repeats.values()) > 5 and min(repeats.values()) == 1
    for name, group in found.items():
        assert {qualified(event) for event in group} == {EXPECTED[name]}, name
        # every repeat of a failure groups into one issue, and no two failures share one
        assert len({fingerprint(event.model_dump(mode="json")).hash for event in group}) == 1
    hashes = {fingerprint(group[0].model_dump(mode="json")).hash for group in found.values()}
    assert len(hashes) == len(EXPECTED)

    payment = found["payment_declined"][0].exceptions
    assert [e.type for e in payment] == ["JSONDecodeError", "PaymentDeclined"]
    cache = found["recommendations_cache_down"][0]
    assert cache.level == "error" and "connection refused" in cache.message
    # the innermost frame is the shop's own code, with its real source line
    quantity = found["bad_quantity"][0].exceptions[-1].frames[-1]
    assert quantity.in_app and quantity.function == "parse_quantity"
    assert quantity.context_line == '    return int(query["qty"])'
    for event in events:
        assert event.service == "shop" and event.release == "1.4.2"
        assert event.logger == "shop.http" and event.context["request_id"]


async def test_no_secret_of_the_requests_reaches_an_event(one_round: Round) -> None:
    sent = " ".join(
        f"{spec.headers} {(spec.body or b'').decode('cp1252')}" for spec, _ in one_round.answers
    )
    wire = json.dumps([event.model_dump(mode="json") for event in one_round.events])
    for secret in SECRETS:
        assert secret in sent  # the shop was given it...
        assert secret not in wire  # ...and it did not come out
    found = one_round.by_failure()
    # The secrets were in the logging context, filtered there.
    assert found["missing_user"][0].context["authorization"] == "[Filtered]"
    assert found["missing_user"][0].context["user_id"] == 7
    assert found["payment_declined"][0].context["order"]["card"] == "[Filtered]"
    assert "[Filtered]" in found["missing_env_config"][0].context["warehouse_url"]


async def test_the_heuristic_analyser_knows_every_failure(one_round: Round) -> None:
    analyser = HeuristicAnalyser()
    categories = {}
    patches = {}
    for name, group in one_round.by_failure().items():
        event = group[0].model_dump(mode="json")
        summary = IssueSummary(
            id=1,
            service="shop",
            title=title(event),
            culprit=culprit(event),
            level=event["level"],
            times_seen=len(group),
        )
        finding = analyser.diagnose(IssueContext(issue=summary, events=[event]))
        categories[name] = finding.category
        if finding.fix_patch is not None:
            patches[name] = finding.fix_patch
    assert len(categories) == len(EXPECTED)
    assert not [name for name, category in categories.items() if category == "unknown"], categories
    # One bug is of a shape it mends with a one-line patch, on the path the frame names.
    assert patches == {
        "missing_gift_wrap": (
            "--- a/mendline/sample_app/shop.py\n+++ b/mendline/sample_app/shop.py\n"
            f"@@ -{GIFT_WRAP_LINE},1 +{GIFT_WRAP_LINE},1 @@\n"
            '-    return GIFT_WRAP_FEE if options["gift_wrap"] else 0.0\n'
            '+    return GIFT_WRAP_FEE if options.get("gift_wrap") else 0.0\n'
        )
    }


async def test_a_500_carries_the_request_id_of_its_one_event_and_context_stays_per_request(
    shop_logging: ErrorEventProcessor,
) -> None:
    one_connection = httpx.Limits(max_connections=1)  # the requests follow each other on it
    async with (
        serving() as url,
        httpx.AsyncClient(base_url=url, limits=one_connection, trust_env=False) as client,
    ):
        with capture_error_events() as events:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/users/7/profile", headers=BEARER)).status_code == 500
            failed = await client.get("/cart/quote", params={"sku": "mug-01", "qty": "two"})
    assert failed.status_code == 500
    request_id = failed.json()["request_id"]
    assert failed.headers["X-Request-Id"] == request_id
    assert len(events) == 2
    assert events[0].context["user_id"] == 7
    # nothing bound by the previous request on the same connection
    assert events[1].context == {"method": "GET", "path": "/cart/quote", "request_id": request_id}
    functions = [f.function for f in events[1].exceptions[-1].frames if f.in_app]
    assert functions[-2:] == ["quote_cart", "parse_quantity"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_python_m_serves_until_signalled_then_flushes_its_events_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    env = {
        **os.environ,
        "MENDLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # closed: events are spooled
        "MENDLINE_SPOOL_DIR": str(tmp_path / "spool"),
        "MENDLINE_SHUTDOWN_TIMEOUT": "0.5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mendline.sample_app",
        "--port",
        "0",
        "--service",
        "shop",
        "--release",
        "1.4.2",
        "--environment",
        "demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        listening = re.fullmatch(rb"listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert listening, line
        async with httpx.AsyncClient(base_url=listening[1].decode(), trust_env=False) as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/users/7/profile", headers=BEARER)).status_code == 500
        process.send_signal(signum)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert stdout == b""  # the one line was all
    assert b"event='request_failed'" in stderr  # the app's own log lines
    # On its way out the shipper spooled the event Kafka could not take.
    records = [
        record.split(b" ", 1)[1]
        for path in sorted((tmp_path / "spool" / "shop").glob("slot-*/*.spool"))
        for record in path.read_bytes().splitlines()
    ]
    spooled = [json.loads(record) for record in records]
    assert [
        (e["message"], e["exceptions"][-1]["type"], e["release"], e["environment"]) for e in spooled
    ] == [("request_failed", "AttributeError", "1.4.2", "demo")]
    assert b"eyJhbGciOiJIUzI1NiJ9" not in b"".join(records)
