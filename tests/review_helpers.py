"""Production for a code review to read: the sample shop's real failures logged through
mendline's processor (captured, not shipped), stored the consumer's way, analysed by the
heuristic analyser (the gift-wrap bug gets its one-line patch), marked, resolved and ignored
by a person on call; with decoy issues in files of other names and learned rules."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import structlog

from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.sample_app import configure_logging, run_failures, shop
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import FindingStore, IssueActions, append_audit
from mendline.testing import capture_error_events
from tests.db_helpers import RESPONDER, store_events
from tests.integration.event_factory import make_event

#: The shop's failures in the order they are stored (issue ids 1 to 5), the gift wrap twice.
FAILURE_NAMES = ("bad_quantity", "unknown_sku", "empty_report", "payment_declined", "gift_wrap")


@dataclass(frozen=True)
class Production:
    """What ``seed_production`` stored: each failure's issue id, the decoys' ids (a frame
    in ``myshop.py``, one in ``C:\\srv\\shop.py``, one merged), the finding of the gift wrap
    (marked right, with its patch) and of the empty report (marked wrong), and the learned
    rules' ids (the second disabled)."""

    issues: dict[str, int]
    decoys: dict[str, int]
    gift_finding: int
    gift_patch: str
    rules: tuple[int, int]


def shop_events() -> list[dict[str, Any]]:
    """The sample shop's failures (``run_failures``) and its gift-wrap bug twice, as the
    processor builds them: each an ErrorEvent document, in FAILURE_NAMES' order."""
    with tempfile.TemporaryDirectory() as spool:
        settings = load_settings(kafka_bootstrap="127.0.0.1:1", spool_dir=spool)
        processor = configure_logging(
            "shop", stream=io.StringIO(), settings=settings, release="1.4.2"
        )
        try:
            with capture_error_events() as events:
                run_failures()
                log = structlog.get_logger().bind(logger="shop.orders")
                for _ in range(2):
                    try:
                        shop.gift_wrap_fee({"qty": 1})
                    except KeyError:
                        log.exception("order_failed", failure="gift_wrap")
        finally:
            processor.shipper.shutdown(0)
            structlog.reset_defaults()
    return [event.model_dump(mode="json") for event in events]


def decoy(issue: int, filename: str) -> dict[str, Any]:
    """An event of its own call site whose innermost in-app frame is in ``filename``."""
    doc = make_event(issue, frames=3)
    for frame in doc["exceptions"][0]["frames"]:
        frame["filename"] = filename
    return doc


async def seed_production(url: str) -> Production:
    """Store the shop's failures (one issue each, in FAILURE_NAMES' order) and the decoys
    on a migrated database; analyse the gift wrap (marked right) and the empty report
    (marked wrong); resolve the empty report now and the bad quantity 40 days ago; ignore
    the unknown SKU; learn two rules (one disabled)."""
    events = shop_events()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["context"]["failure"], []).append(event)
    await store_events(url, *(by_name[name] for name in FAILURE_NAMES))
    await store_events(
        url,
        [decoy(1, "/srv/app/myshop.py")],
        [decoy(2, "C:\\srv\\shop.py")],
        [decoy(3, "/srv/app/shop.py")],
    )
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM mendline.issues ORDER BY id")]
        issues = dict(zip(FAILURE_NAMES, ids, strict=False))
        decoys = dict(zip(("myshop", "windows", "merged"), ids[len(FAILURE_NAMES) :], strict=True))
        findings = FindingStore(pool)
        actions = IssueActions(pool, append_audit, origin="test")
        marked: dict[str, int] = {}
        verdicts: dict[str, Literal["right", "wrong"]] = {
            "gift_wrap": "right",
            "empty_report": "wrong",
        }
        for name, verdict in verdicts.items():
            context = await findings.context(issues[name], "on_demand")
            finding = HeuristicAnalyser().diagnose(context)
            marked[name] = await findings.save(finding, issue_id=issues[name], cache_key=name)
            await actions.mark_finding(RESPONDER, marked[name], verdict)
        gift = await findings.get(marked["gift_wrap"])
        assert gift.finding.fix_patch is not None
        await actions.resolve(RESPONDER, issues["empty_report"], "guarded the empty list")
        await actions.resolve(RESPONDER, issues["bad_quantity"])
        await actions.ignore(RESPONDER, issues["unknown_sku"])
        long_ago = datetime.now(UTC) - timedelta(days=40)
        # No action resolves in the past: the resolution is moved back by hand.
        await pool.execute(
            "UPDATE mendline.issues SET resolved_at = $2 WHERE id = $1",
            issues["bad_quantity"],
            long_ago,
        )
        # A merge moves events between issues; only the merged state is wanted here.
        await pool.execute(
            "UPDATE mendline.issues SET status = 'merged', merged_into = $2 WHERE id = $1",
            decoys["merged"],
            issues["gift_wrap"],
        )
        rules = await pool.fetch(
            """INSERT INTO mendline.review_rules (shape, example, title, issue_id, finding_id,
                   disabled_at, disabled_by)
               VALUES ('subscript-of-mapping', 'options["gift_wrap"]', 'KeyError: gift_wrap',
                       $1, $2, NULL, NULL),
                      ('division-by-len', 'sum(x) / len(x)', 'ZeroDivisionError', $3, NULL,
                       now(), 'rita')
               RETURNING id""",
            issues["gift_wrap"],
            marked["gift_wrap"],
            issues["empty_report"],
        )
    finally:
        await pool.close()
    return Production(
        issues=issues,
        decoys=decoys,
        gift_finding=marked["gift_wrap"],
        gift_patch=gift.finding.fix_patch,
        rules=(rules[0]["id"], rules[1]["id"]),
    )
