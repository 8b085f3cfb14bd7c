"""TaskGroup failures from a real app to findings: the structlog processor ships them to a real
broker, the consumer groups them into PostgreSQL by their sub-exceptions, the heuristic
diagnoses them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import structlog

from mendline.ingest import ErrorEventProcessor
from mendline.schemas.settings import load_settings
from tests.db_helpers import query

from .stage_helpers import (
    analyze_settings,
    consume_settings,
    running_consumer,
    wait_until,
    workers,
)

pytestmark = pytest.mark.integration

Task = Callable[[], Coroutine[Any, Any, None]]


async def reserve() -> None:
    stock: dict[str, int] = {}
    stock["sku-1"] -= 1


async def split() -> None:
    parts = 0
    print(10 / parts)


async def charge() -> None:
    raise ValueError("bad amount: -3")


async def ship() -> None:
    raise TimeoutError("the carrier did not answer")


async def checkout(tasks: tuple[Task, ...]) -> None:
    async with asyncio.TaskGroup() as group:
        for task in tasks:
            group.create_task(task())


async def test_two_taskgroup_failures_become_two_issues_with_diagnosed_findings(
    kafka_bootstrap: str, fresh_db_url: str, tmp_path: Path
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    app = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        errors_topic=settings.errors_topic,
        spool_dir=tmp_path / "spool",
    )
    processor = ErrorEventProcessor("shop", settings=app, environment="test")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            processor,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger()
    try:
        # The same failure twice (its tasks failing in either order), and another one.
        for tasks in ((reserve, split), (split, reserve), (charge, ship)):
            try:
                await checkout(tasks)
            except ExceptionGroup as exc:
                assert len(exc.exceptions) == 2
                log.exception("checkout_failed")
        assert processor.shipper.flush(timeout=30)
    finally:
        structlog.reset_defaults()
        processor.shipper.shutdown(0)

    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 3, 30, "3 events stored")
    issues = await query(
        fresh_db_url, "SELECT id, title, culprit, times_seen FROM mendline.issues ORDER BY id"
    )
    assert [(i["title"], i["times_seen"]) for i in issues] == [
        (
            "ExceptionGroup of KeyError, ZeroDivisionError: unhandled errors in a TaskGroup "
            "(2 sub-exceptions)",
            2,
        ),
        (
            "ExceptionGroup of TimeoutError, ValueError: unhandled errors in a TaskGroup "
            "(2 sub-exceptions)",
            1,
        ),
    ]
    stored = await query(fresh_db_url, "SELECT exceptions FROM mendline.issue_events")
    for row in stored:
        exceptions = json.loads(row["exceptions"])
        assert [e.get("source") for e in exceptions] == ["exceptions[1]", "exceptions[0]", None]
        assert exceptions[-1]["is_exception_group"] is True

    async with workers(analyze_settings(fresh_db_url)):

        async def analysed() -> bool:
            rows = await query(fresh_db_url, "SELECT count(*) AS n FROM mendline.findings")
            return bool(rows[0]["n"] >= 2)

        await wait_until(analysed, 30, "2 findings")
    findings = await query(
        fresh_db_url,
        "SELECT issue_id, analyser, rule, category, root_cause FROM mendline.findings "
        "ORDER BY issue_id",
    )
    assert [(f["analyser"], f["rule"], f["category"]) for f in findings] == [
        ("heuristic", "key-missing", "missing_key_or_attribute"),
        ("heuristic", "timeout", "dependency_outage_or_timeout"),
    ]
    assert "also held: ZeroDivisionError: division by zero" in findings[0]["root_cause"]
    assert "also held: ValueError: bad amount: -3" in findings[1]["root_cause"]
