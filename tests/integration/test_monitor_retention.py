"""A check taken out of the checks file while it is down: the running monitor retires it and
the real alert stage resolves its page at the PagerDuty stand-in, as a recovery would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.channel_servers import FakePagerDuty
from tests.db_helpers import query
from tests.probe_servers import http_target

from .stage_helpers import (
    PAGE_ALL_HEALTH,
    http_check,
    monitor_settings,
    monitors,
    paging,
    status,
    wait_until,
)

pytestmark = pytest.mark.integration
NIGHTLY = '[[checks]]\nname = "nightly"\nkind = "heartbeat"\nevery = "1d"\n'


async def test_a_check_retired_while_down_has_its_page_resolved(
    kafka_bootstrap: str, fresh_db_url: str, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    async with http_target() as target:
        checks = tmp_path / "checks.toml"
        checks.write_text(http_check("payments-api", target.url) + NIGHTLY)
        routes = tmp_path / "routes.toml"
        routes.write_text(PAGE_ALL_HEALTH.format(pagerduty=pagerduty.events_url))
        settings = monitor_settings(kafka_bootstrap, fresh_db_url, checks, routes)
        target.mode = "down"
        async with monitors(settings), paging(settings, pagerduty):
            await wait_until(lambda: len(pagerduty.requests) >= 1, 30, "the page")
            checks.write_text(NIGHTLY)  # still down, and taken out of the file
            await wait_until(lambda: len(pagerduty.requests) >= 2, 30, "the resolve")
            assert await status(fresh_db_url, "payments-api") is None  # retired
    bodies = pagerduty.bodies()
    assert [b["event_action"] for b in bodies] == ["trigger", "resolve"]
    assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"]
    issues = await query(fresh_db_url, "SELECT status FROM mendline.issues WHERE kind = 'health'")
    assert [i["status"] for i in issues] == ["resolved"]
