"""The issue workflow against a real PostgreSQL, driven by events stored the consumer's way:
resolve in the next release with releases out of order, ignore until more events, a rate or a
time (back as escalating, alerted once), merge and unmerge after new events, reopen, assign,
comment; and where it meets concurrency and counting: batches racing merges and unmerges,
the release cache and rolled-back batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.schemas.errors import ConfigError, IssueNotFound, UserNotFound
from mendline.schemas.issue import IgnoreCondition
from mendline.schemas.people import Actor
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import AuditStore, IssueActions, connect_store
from tests.db_helpers import issue_actions, query
from tests.integration.event_factory import encode
from tests.integration.stage_helpers import ingest, issue_events

pytestmark = pytest.mark.integration

RITA = Actor(name="rita", role="responder", auth="local")


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return load_settings(database_url=fresh_db_url, frequency_threshold=3)


@pytest.fixture
async def actions(settings: Settings) -> AsyncIterator[IssueActions]:
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))  # issue 1
    async with issue_actions(settings.database_url.get_secret_value()) as actions:
        yield actions


async def _issue(settings: Settings, issue_id: int = 1) -> Any:
    (row,) = await query(
        settings.database_url.get_secret_value(),
        """SELECT status, substatus, resolution, resolved_in_release, times_seen, regressions,
                  assignee, merged_into,
                  (SELECT count(*) FROM mendline.events e WHERE e.issue_id = i.id) AS stored,
                  (SELECT coalesce(sum(count), 0) FROM mendline.issue_counts c
                   WHERE c.issue_id = i.id) AS counted
           FROM mendline.issues i WHERE id = $1""",
        issue_id,
    )
    return row


async def _triggers(settings: Settings, kind: str, issue_id: int = 1) -> int:
    (row,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT count(*) FROM mendline.triggers WHERE issue_id = $1 AND kind = $2",
        issue_id,
        kind,
    )
    return int(row[0])


async def _events(settings: Settings, count: int, **fields: Any) -> None:
    await ingest(settings, issue_events(range(1), per_issue=count, **fields))


async def test_resolved_in_the_next_release_reopens_only_for_a_newer_release(
    settings: Settings, actions: IssueActions
) -> None:
    assert await actions.resolve(RITA, 1, in_next_release=True) is True
    issue = await _issue(settings)
    assert (issue["status"], issue["resolution"], issue["resolved_in_release"]) == (
        "resolved",
        "next_release",
        "1.0.0",
    )
    await _events(settings, 1, release="0.9.0")  # a host not yet upgraded, arriving late
    await _events(settings, 1, release="1.0.0")  # the release it was resolved in
    await _events(settings, 1, release=None)  # says nothing of what it runs
    issue = await _issue(settings)
    assert (issue["status"], issue["times_seen"], issue["regressions"]) == ("resolved", 4, 0)
    assert await _triggers(settings, "regression") == 0
    assert await _triggers(settings, "frequency") == 0  # a resolved issue does not spike
    await _events(settings, 1, release="1.0.1")
    issue = await _issue(settings)
    assert (issue["status"], issue["substatus"], issue["regressions"]) == (
        "unresolved",
        "regressed",
        1,
    )
    assert issue["resolution"] is None
    assert await _triggers(settings, "regression") == 1


async def test_next_release_orders_build_names_by_first_seen(
    settings: Settings, actions: IssueActions
) -> None:
    await _events(settings, 1, release="build-b7")
    await _events(settings, 1, release="build-a3")  # a later build, its name sorting lower
    await actions.resolve(RITA, 1, in_next_release=True)
    assert (await _issue(settings))["resolved_in_release"] == "build-a3"
    await _events(settings, 1, release="build-b7")  # the older build: stays resolved
    assert (await _issue(settings))["status"] == "resolved"
    await _events(settings, 1, release="build-c9")  # never seen: newer
    assert (await _issue(settings))["substatus"] == "regressed"


async def test_next_release_needs_a_release(settings: Settings) -> None:
    await ingest(settings, issue_events(range(1), per_issue=1, release=None))
    async with issue_actions(settings.database_url.get_secret_value()) as actions:
        with pytest.raises(ConfigError, match="no release"):
            await actions.resolve(RITA, 1, in_next_release=True)
        assert (await _issue(settings))["status"] == "unresolved"


async def test_ignored_until_more_events_comes_back_escalating_once(
    settings: Settings, actions: IssueActions
) -> None:
    assert await actions.ignore(RITA, 1, IgnoreCondition(events=5)) is True
    await _events(settings, 4)
    issue = await _issue(settings)
    assert (issue["status"], issue["times_seen"]) == ("ignored", 5)
    assert await _triggers(settings, "frequency") == 0  # snoozed: no spike alert
    await _events(settings, 1)
    issue = await _issue(settings)
    assert (issue["status"], issue["substatus"]) == ("unresolved", "escalating")
    assert await _triggers(settings, "escalating") == 1
    await _events(settings, 5)
    assert await _triggers(settings, "escalating") == 1
    (details,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT details ->> 'why' FROM mendline.triggers WHERE kind = 'escalating'",
    )
    assert "reached 6 events" in details[0]


async def test_ignored_until_a_rate_comes_back_when_an_hour_holds_it(
    settings: Settings, actions: IssueActions
) -> None:
    await actions.ignore(RITA, 1, IgnoreCondition(per_hour=10))
    await _events(settings, 9)  # the one before the ignore does not count
    assert (await _issue(settings))["status"] == "ignored"
    await _events(settings, 1)
    assert (await _issue(settings))["substatus"] == "escalating"
    assert await _triggers(settings, "escalating") == 1


async def test_ignored_for_a_while_comes_back_with_the_first_event_after_it(
    settings: Settings, actions: IssueActions
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    await actions.ignore(RITA, 1, IgnoreCondition(until=soon))
    await _events(settings, 1)
    assert (await _issue(settings))["status"] == "ignored"
    over = datetime.now(UTC) - timedelta(seconds=1)  # ignored again, until a time now past
    assert await actions.ignore(RITA, 1, IgnoreCondition(until=over)) is True
    await _events(settings, 1)
    assert (await _issue(settings))["substatus"] == "escalating"


async def test_ignored_forever_stays_ignored_and_raises_no_alert(
    settings: Settings, actions: IssueActions
) -> None:
    await actions.ignore(RITA, 1)
    await _events(settings, 20)
    issue = await _issue(settings)
    assert (issue["status"], issue["times_seen"]) == ("ignored", 21)
    for kind in ("frequency", "escalating", "regression"):
        assert await _triggers(settings, kind) == 0


async def test_reopen_brings_back_a_resolved_or_ignored_issue(
    settings: Settings, actions: IssueActions
) -> None:
    await actions.ignore(RITA, 1, IgnoreCondition(events=100))
    assert await actions.reopen(RITA, 1) is True
    assert await actions.reopen(RITA, 1) is False
    await actions.resolve(RITA, 1, in_next_release=True)
    assert await actions.reopen(RITA, 1) is True
    issue = await _issue(settings)
    assert (issue["status"], issue["resolution"], issue["resolved_in_release"]) == (
        "unresolved",
        None,
        None,
    )
    rows = await AuditStore(actions.pool).list()
    assert [r.action for r in reversed(rows)] == [
        "issue.ignore",
        "issue.reopen",
        "issue.resolve",
        "issue.reopen",
    ]


async def test_unmerge_after_new_events_gives_back_fingerprints_events_and_counts(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1, 2), per_issue=3))  # issue 2
    await actions.merge(RITA, 1, 2)
    merged = await _issue(settings, 2)
    assert (merged["status"], merged["merged_into"]) == ("merged", 1)
    await ingest(settings, issue_events(range(1, 2), per_issue=2))  # issue 2's code, again
    assert (await _issue(settings, 1))["times_seen"] == 6
    with pytest.raises(IssueNotFound, match="is unresolved, not merged"):
        await actions.unmerge(RITA, 1)
    done = await actions.unmerge(RITA, 2)
    assert (done.issue_id, done.holder, done.fingerprints, done.events) == (2, 1, 1, 5)
    back, target = await _issue(settings, 2), await _issue(settings, 1)
    assert (back["status"], back["merged_into"], back["times_seen"]) == ("unresolved", None, 5)
    assert (back["stored"], back["counted"]) == (5, 5)
    assert (target["times_seen"], target["stored"], target["counted"]) == (1, 1, 1)
    await ingest(settings, issue_events(range(1, 2), per_issue=1))  # counts on issue 2 again
    assert (await _issue(settings, 2))["times_seen"] == 6
    assert (await _issue(settings, 1))["times_seen"] == 1
    with pytest.raises(IssueNotFound):
        await actions.unmerge(RITA, 2)
    (row,) = (await AuditStore(actions.pool).list())[:1]
    assert (row.action, row.after["taken_from"], row.after["events"]) == ("issue.unmerge", 1, 5)


async def test_merge_needs_one_service(settings: Settings, actions: IssueActions) -> None:
    await ingest(settings, issue_events(range(1, 2), per_issue=1, service="billing"))
    with pytest.raises(ConfigError, match="only issues of one service merge"):
        await actions.merge(RITA, 1, 2)
    assert (await _issue(settings, 2))["status"] == "unresolved"


async def test_a_merged_issue_cannot_be_resolved_or_ignored(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1, 2), per_issue=1))
    await actions.merge(RITA, 1, 2)
    for act in (actions.resolve(RITA, 2), actions.ignore(RITA, 2), actions.reopen(RITA, 2)):
        with pytest.raises(IssueNotFound, match="merged"):
            await act


async def test_assign_to_a_user_or_a_team_and_comment(
    settings: Settings, actions: IssueActions
) -> None:
    url = settings.database_url.get_secret_value()
    await query(
        url,
        "INSERT INTO mendline.users (name, role, created_by) VALUES ('alice', 'responder', 't')",
    )
    assert await actions.assign(RITA, 1, "alice") is True
    assert (await _issue(settings))["assignee"] == "user:alice"
    assert await actions.assign(RITA, 1, "user:alice") is False
    with pytest.raises(UserNotFound, match="bob"):
        await actions.assign(RITA, 1, "user:bob")
    assert await actions.assign(RITA, 1, "team:payments") is True
    assert await actions.assign(RITA, 1, None) is True
    assert (await _issue(settings))["assignee"] is None
    first = await actions.comment(RITA, 1, "looks like the proxy <script>")
    second = await actions.comment(RITA, 1, "  deploying a guard  ")
    assert second > first
    rows = await query(
        url, "SELECT author, body FROM mendline.issue_comment_thread WHERE issue_id = 1"
    )
    assert [tuple(r) for r in rows] == [
        ("rita", "looks like the proxy <script>"),
        ("rita", "deploying a guard"),
    ]
    with pytest.raises(ConfigError, match="1 to 10,000"):
        await actions.comment(RITA, 1, "   ")
    trail = [(r.action, r.after) for r in reversed(await AuditStore(actions.pool).list())]
    assert trail[0] == ("issue.assign", {"assignee": "user:alice"})
    assert trail[-1][0] == "issue.comment"
    assert trail[-1][1]["body"] == "deploying a guard"


async def test_the_workflow_view_says_where_each_issue_is(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1, 3), per_issue=1))  # issues 2 and 3
    await actions.resolve(RITA, 1, in_next_release=True)
    await actions.ignore(RITA, 2, IgnoreCondition(events=10, per_hour=5))
    await actions.merge(RITA, 1, 3)
    rows = await query(
        settings.database_url.get_secret_value(),
        """SELECT id, status, resolution, resolved_in_release, ignore_until_seen,
                  ignore_per_hour, merged_into, resolved_by, ignored_by
           FROM mendline.issue_states ORDER BY id""",
    )
    assert [tuple(r) for r in rows] == [
        (1, "resolved", "next_release", "1.0.0", None, None, None, "rita", None),
        (2, "ignored", None, None, 11, 5, None, None, "rita"),
        (3, "merged", None, None, None, None, 1, None, None),
    ]


# -- where the workflow meets concurrency and counting (found by the review) --------------


async def _counts(settings: Settings, issue_id: int) -> tuple[int, int, int]:
    """times_seen, stored events, per-minute counts."""
    (row,) = await query(
        settings.database_url.get_secret_value(),
        """SELECT times_seen,
                  (SELECT count(*) FROM mendline.events e WHERE e.issue_id = i.id),
                  (SELECT coalesce(sum(count), 0) FROM mendline.issue_counts c
                   WHERE c.issue_id = i.id)
           FROM mendline.issues i WHERE id = $1""",
        issue_id,
    )
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_batch_that_started_before_a_merge_is_given_back_by_unmerge(
    settings: Settings, actions: IssueActions
) -> None:
    """A consumer batch takes its ``now`` before the merge's transaction starts and is
    stored after it commits (it waited for a pool connection, a lock, or was retried after
    _MergedMeanwhile with the same ``now``). Its events carry received_at < merged_at, so
    unmerge does not count them as after the merge: the source loses them from times_seen
    and the target keeps them, with no events behind them."""
    url = settings.database_url.get_secret_value()
    await ingest(settings, issue_events(range(1, 2), per_issue=3))  # issue 2, 3 events
    late = issue_events(range(1, 2), per_issue=2)  # issue 2's code, in flight
    blocker = await asyncpg.connect(url)
    store = await connect_store(settings)
    try:
        # Hold one of the batch's event ids uncommitted: the batch takes its `now`, then
        # waits in _new_events, before it reads the fingerprints.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO mendline.event_ids (event_id, received_at) VALUES ($1::uuid, now())",
            late[0]["event_id"],
        )
        batch = [prepare_record(encode(e), Scrubber()) for e in late]
        writing = asyncio.create_task(store.write(batch))
        await asyncio.sleep(0.5)
        await actions.merge(RITA, 1, 2)  # starts after the batch's now, commits first
        await tx.rollback()
        await asyncio.wait_for(writing, 10)
    finally:
        await blocker.close()
        await store.close()
    assert (await _counts(settings, 1))[0] == 6  # 1 + 3 + 2, all on the target
    await actions.unmerge(RITA, 2)
    source, target = await _counts(settings, 2), await _counts(settings, 1)
    assert source == (5, 5, 5), f"source times_seen/stored/counted {source}"
    assert target == (1, 1, 1), f"target times_seen/stored/counted {target}"


async def test_unmerge_does_not_leave_the_old_resolution_or_ignore_behind(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1, 2), per_issue=1, release="1.0.0"))  # issue 2
    await actions.resolve(RITA, 2, in_next_release=True)
    await actions.merge(RITA, 1, 2)
    await actions.unmerge(RITA, 2)
    (row,) = await query(
        settings.database_url.get_secret_value(),
        """SELECT status, resolution, resolved_in_release, resolved_by
           FROM mendline.issue_states WHERE id = 2""",
    )
    assert tuple(row) == ("unresolved", None, None, None)


async def test_next_release_waits_for_the_release_after_the_services_newest(
    settings: Settings, actions: IssueActions
) -> None:
    """Sentry's "resolve in next release" waits for the release after the project's most
    recent one. Here the baseline is the issue's own last release: an issue last seen in
    1.0.0 on a service already running 1.3.0 regresses on the next 1.3.0 event, which
    cannot contain the fix."""
    await ingest(settings, issue_events(range(1, 2), per_issue=1, release="1.3.0"))  # deployed
    await actions.resolve(RITA, 1, in_next_release=True)
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.3.0"))
    (row,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert row[0] == "resolved"


async def test_an_escalation_is_one_alert_not_also_a_spike(
    settings: Settings, actions: IssueActions
) -> None:
    await actions.ignore(RITA, 1, IgnoreCondition(per_hour=5))
    await ingest(settings, issue_events(range(1), per_issue=5))
    rows = await query(
        settings.database_url.get_secret_value(),
        "SELECT kind FROM mendline.triggers WHERE issue_id = 1 ORDER BY id",
    )
    assert [r[0] for r in rows] == ["new_issue", "escalating"]


async def test_a_rate_ignore_counts_the_events_after_it(
    settings: Settings, actions: IssueActions
) -> None:
    """Ignored "until 10 an hour" in the middle of a burst of 10: one more event is not
    10 events since the ignore."""
    await ingest(settings, issue_events(range(1), per_issue=9))
    await actions.ignore(RITA, 1, IgnoreCondition(per_hour=10))
    await ingest(settings, issue_events(range(1), per_issue=1))
    (row,) = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert row[0] == "ignored"


async def test_merging_into_an_ignored_issue_does_not_end_its_ignore(
    settings: Settings, actions: IssueActions
) -> None:
    """Ignored until 10 more events; a merge adds 50 old events to times_seen, and the next
    single event ends the ignore."""
    await ingest(settings, issue_events(range(1, 2), per_issue=50))  # issue 2
    await actions.ignore(RITA, 1, IgnoreCondition(events=10))
    await actions.merge(RITA, 1, 2)
    await ingest(settings, issue_events(range(1), per_issue=1))
    rows: list[Any] = await query(
        settings.database_url.get_secret_value(),
        "SELECT status FROM mendline.issues WHERE id = 1",
    )
    assert rows[0][0] == "ignored"


async def test_a_release_recorded_in_a_batch_that_failed_is_recorded_again(
    settings: Settings,
) -> None:
    """_record_releases adds to the process's cache before the transaction commits: any
    failure after it (an outage mid-batch, or a deadlock/serialization retry inside
    Store.write's own loop) leaves the release unrecorded for the life of the process."""
    store = await connect_store(settings)
    try:
        batch = [
            prepare_record(encode(e), Scrubber())
            for e in issue_events(range(1), per_issue=1, release="build-a3")
        ]
        async with store.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await store._record_releases(conn, batch, batch[0].timestamp)
            await tx.rollback()  # what any later failure in the batch does
        await store.write(batch)  # the same batch, again
    finally:
        await store.close()
    rows = await query(
        settings.database_url.get_secret_value(), "SELECT release FROM mendline.releases"
    )
    assert [r[0] for r in rows] == ["build-a3"]


async def test_a_batch_racing_an_unmerge_lands_on_the_unmerged_issue(
    settings: Settings, actions: IssueActions
) -> None:
    """The fingerprint recheck in _lock_issues, which no shipped test exercises."""
    from mendline.sinks.postgres._merges import unmerge

    url = settings.database_url.get_secret_value()
    await ingest(settings, issue_events(range(1, 2), per_issue=3))  # issue 2
    await actions.merge(RITA, 1, 2)
    conn = await asyncpg.connect(url)
    store = await connect_store(settings)
    try:
        tx = conn.transaction()
        await tx.start()
        await unmerge(conn, 2, "rita")  # holds issues 1 and 2, fingerprints moved, uncommitted
        batch = [prepare_record(encode(e), Scrubber()) for e in issue_events(range(1, 2), 2)]
        writing = asyncio.create_task(store.write(batch))
        await asyncio.sleep(0.5)  # read the old fingerprint (-> 1), waits for issue 1
        await tx.commit()
        await asyncio.wait_for(writing, 10)
    finally:
        await conn.close()
        await store.close()
    assert await _counts(settings, 2) == (5, 5, 5)
    assert await _counts(settings, 1) == (1, 1, 1)


async def test_a_health_checks_issue_is_not_merged_nor_ignored_until_a_condition(
    settings: Settings, actions: IssueActions
) -> None:
    await query(
        settings.database_url.get_secret_value(),
        """INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
               first_seen, last_seen, kind)
           VALUES ('api', 'health:x', 'check x is down', 'error', 4, now(), now(), 'health')""",
    )
    with pytest.raises(ConfigError, match="health check's"):
        await actions.merge(RITA, 2, 1)
    with pytest.raises(ConfigError, match="health check's"):
        await actions.ignore(RITA, 2, IgnoreCondition(events=3))
    assert await actions.ignore(RITA, 2) is True  # forever: its check's alerts stop


async def test_next_release_after_a_hotfix_of_an_older_line(
    settings: Settings, actions: IssueActions
) -> None:
    await ingest(settings, issue_events(range(1), per_issue=1, release="2.0.0"))
    # A hotfix of the old line ships later (first seen after 2.0.0).
    await ingest(settings, issue_events(range(1, 2), per_issue=1, release="1.9.1"))
    await actions.resolve(RITA, 1, in_next_release=True)
    # 2.0.0 is still deployed: its event cannot hold the fix, and does not reopen the issue.
    await ingest(settings, issue_events(range(1), per_issue=1, release="2.0.0"))
    issue = await _issue(settings)
    assert (issue["status"], issue["resolved_in_release"]) == ("resolved", "2.0.0")
