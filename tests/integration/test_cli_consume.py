"""CLI commands around consuming: fingerprint, migrate, issues merge, events prune, dlq."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from mendline.sinks.postgres import available_migrations
from tests.cli_helpers import cli, cli_env, failure, json_lines, json_object, run, usage_error
from tests.db_helpers import query

from .event_factory import encode, make_event
from .kafka_helpers import produce, unique_topic
from .stage_helpers import consume_settings, running_consumer, wait_until

pytestmark = pytest.mark.integration

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:9/x"
UNREACHABLE_KAFKA = "127.0.0.1:9"


def fingerprint(stdin: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mendline", "fingerprint", *args],
        input=stdin.decode("utf-8", "surrogateescape"),
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=60,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of stderr, which must hold no traceback."""
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


async def partitions(url: str) -> set[str]:
    rows = await query(
        url,
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'mendline.events'::regclass""",
    )
    return {r["relname"] for r in rows}


async def partition_of_day(url: str, days_ago: int) -> str:
    """Create the events partition of ``days_ago`` days back; returns its name."""
    rows = await query(
        url,
        """SELECT mendline.ensure_event_partitions(current_date - $1::integer, 1),
                  'events_' || to_char(current_date - $1, 'YYYYMMDD') AS name""",
        days_ago,
    )
    return str(rows[0]["name"])


def migrate(url: str) -> None:
    result = run("migrate", env={"MENDLINE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr


# -- mendline fingerprint -----------------------------------------------------------------


def test_fingerprint_groups_events_of_one_bug_and_reports_bad_lines_by_number() -> None:
    first, again, other = make_event(1, 0), make_event(1, 7), make_event(2, 0)
    stdin = b"".join(
        [
            encode(first) + b"\r\n",  # line 1, as a Windows program writes it
            b"\n",  # line 2, blank: skipped
            encode(again) + b"\n",  # line 3
            b"{this is not json\n",  # line 4
            b"   \n",  # line 5, blank
            encode({**make_event(3), "level": "fatal"}) + b"\n",  # line 6, not an ErrorEvent
            encode(other) + b"\n",  # line 7
        ]
    )
    result = fingerprint(stdin)
    assert result.returncode == 1
    printed = [line.split(" ") for line in result.stdout.splitlines()]
    assert [event_id for event_id, _ in printed] == [
        first["event_id"],
        again["event_id"],
        other["event_id"],
    ]
    hashes = [fp for _, fp in printed]
    assert hashes[0] == hashes[1] != hashes[2]
    assert all(fp for fp in hashes)
    errors = error_lines(result)
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("line 4: not_json: ")
    assert errors[1].startswith("line 6: invalid: level")


def test_fingerprint_of_good_lines_exits_0_and_is_stable_across_runs() -> None:
    events = [make_event(issue, n) for n in range(3) for issue in (4, 5)]
    stdin = b"".join(encode(e) + b"\n" for e in events)
    first, second = fingerprint(stdin), fingerprint(stdin)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout == second.stdout
    by_issue: dict[int, set[str]] = {4: set(), 5: set()}
    for n, line in enumerate(first.stdout.splitlines()):
        by_issue[4 if n % 2 == 0 else 5].add(line.split(" ")[1])
    assert len(by_issue[4]) == len(by_issue[5]) == 1
    assert by_issue[4] != by_issue[5]


def test_fingerprint_json_is_one_object_a_good_line() -> None:
    first, again = make_event(1, 0), make_event(1, 7)
    stdin = encode(first) + b"\n{not json\n" + encode(again) + b"\n"
    result = fingerprint(stdin, "--json")
    assert result.returncode == 1
    (error,) = error_lines(result)
    assert error.startswith("line 2: not_json: ")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["event_id"] for row in rows] == [first["event_id"], again["event_id"]]
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]
    plain = fingerprint(encode(first) + b"\n").stdout.split()
    assert plain == [first["event_id"], rows[0]["fingerprint"]]
    assert rows[0]["basis"] == "stacktrace"
    assert rows[0]["title"].startswith("ValueError: invalid literal for int()")
    assert rows[0]["culprit"] == "app.module9.handler_1"


def test_fingerprint_of_empty_input_prints_nothing() -> None:
    result = fingerprint(b"\n\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_fingerprint_of_a_timestamp_out_of_range_is_a_bad_line_not_the_end() -> None:
    good = make_event(1, 0)
    stdin = (
        encode({**make_event(1, 1), "timestamp": "9999-12-31T23:59:59-05:00"})
        + b"\n"
        + encode(good)
        + b"\n"
    )
    result = fingerprint(stdin)
    assert result.returncode == 1
    assert error_lines(result)[0].startswith("line 1: invalid: timestamp")
    assert result.stdout.split(" ")[0] == good["event_id"]


def test_fingerprint_reports_nan_as_not_json() -> None:
    line = encode(make_event(1, 0)).replace(b'"attempt":1', b'"attempt":NaN')
    result = fingerprint(line + b"\n")
    assert result.returncode == 1
    assert error_lines(result)[0].startswith("line 1: not_json: ")


# -- mendline migrate ---------------------------------------------------------------------


async def test_migrate_applies_the_migrations_once(empty_db_url: str) -> None:
    env = {"MENDLINE_DATABASE_URL": empty_db_url}
    versions = [version for version, _ in available_migrations()]
    first = await cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"applied {', '.join(versions)}\n"
    second = await cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "the database is up to date\n"
    rows = await query(
        empty_db_url,
        """SELECT to_regnamespace('mendline') IS NOT NULL AS schema,
                  array(SELECT version FROM mendline.schema_migrations ORDER BY 1) AS versions""",
    )
    assert rows[0]["schema"] is True
    assert rows[0]["versions"] == versions


async def test_migrate_json_lists_the_migrations_it_applied(empty_db_url: str) -> None:
    env = {"MENDLINE_DATABASE_URL": empty_db_url}
    versions = [version for version, _ in available_migrations()]
    assert json_object(await cli("migrate", "--json", env=env)) == {"applied": versions}
    assert json_object(await cli("migrate", "--json", env=env)) == {"applied": []}


def test_migrate_with_the_database_unreachable_is_one_clear_error() -> None:
    error, hint = failure(
        run("migrate", "--json", env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    )
    assert error.startswith("cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:9/x: ")
    assert "Connect call failed ('127.0.0.1', 9)" in error
    assert "MENDLINE_DATABASE_URL" in hint


@pytest.mark.parametrize(
    "args",
    [
        ("issues", "list"),
        ("issues", "show", "1"),
        ("findings", "list"),
        ("events", "prune"),
        ("analyze", "--issue", "1"),
    ],
)
async def test_a_database_without_the_tables_says_to_migrate(
    empty_db_url: str, args: tuple[str, ...]
) -> None:
    result = await cli(*args, "--json", env={"MENDLINE_DATABASE_URL": empty_db_url})
    assert failure(result) == (
        "the database has no mendline tables yet",
        "run `mendline migrate` (`mendline consume` also applies them when it starts)",
    )


# -- mendline issues merge ----------------------------------------------------------------


async def test_issues_merge_moves_the_counts_and_later_events_to_the_target(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    env = cli_env(settings)
    events = [
        make_event(issue, n) for issue, times in ((1, 3), (2, 2), (3, 1)) for n in range(times)
    ]
    await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
    async with running_consumer(settings) as consumer:
        await wait_until(lambda: consumer.stats.stored == 6, 30, "the 6 events")
        issues = await query(
            fresh_db_url, "SELECT id, times_seen FROM mendline.issues ORDER BY times_seen DESC"
        )
        assert [r["times_seen"] for r in issues] == [3, 2, 1]
        target, source, third = (r["id"] for r in issues)

        merged = await cli("issues", "merge", str(target), str(source), env=env)
        assert merged.returncode == 0, merged.stderr
        assert merged.stdout == (
            f"merged issue {source} into issue {target} (undo: mendline issues unmerge {source})\n"
        )
        as_json = await cli("issues", "merge", str(target), str(third), "--json", env=env)
        assert json_object(as_json) == {"issue": third, "status": "merged", "merged_into": target}

        # A later event of the source's bug counts on the target.
        await produce(kafka_bootstrap, settings.errors_topic, [encode(make_event(2, 9))])
        await wait_until(lambda: consumer.stats.stored == 7, 30, "the later event")

    rows = await query(
        fresh_db_url,
        """SELECT id, status, merged_into, times_seen,
                  (SELECT count(*) FROM mendline.events e WHERE e.issue_id = i.id) AS events
           FROM mendline.issues i ORDER BY id""",
    )
    by_id = {r["id"]: r for r in rows}
    for merged_away in (source, third):
        assert by_id[merged_away]["status"] == "merged"
        assert by_id[merged_away]["merged_into"] == target
        assert by_id[merged_away]["events"] == 0
    assert by_id[target]["status"] != "merged"
    assert by_id[target]["times_seen"] == 7
    assert by_id[target]["events"] == 7

    again = await cli("issues", "merge", str(target), str(source), env=env)
    error, hint = failure(again)
    assert error == f"issue {source} was merged into {target} already"
    assert hint == "`mendline issues list --status all` shows the issues and their ids"


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (("1", "2"), "there is no issue 1"),
        (("3", "3"), "cannot merge issue 3 into itself"),
    ],
)
def test_issues_merge_of_a_missing_issue_is_one_clear_error(
    fresh_db_url: str, ids: tuple[str, str], message: str
) -> None:
    migrate(fresh_db_url)
    result = run("issues", "merge", *ids, env={"MENDLINE_DATABASE_URL": fresh_db_url})
    error, hint = failure(result)
    assert error == message
    assert "`mendline issues list --status all`" in hint


# -- mendline events prune ----------------------------------------------------------------


async def test_events_prune_drops_the_days_older_than_the_retention(fresh_db_url: str) -> None:
    migrate(fresh_db_url)
    old = await partition_of_day(fresh_db_url, 40)
    recent = await partition_of_day(fresh_db_url, 5)
    env = {"MENDLINE_DATABASE_URL": fresh_db_url, "MENDLINE_RETENTION_DAYS": "30"}

    kept = await cli("events", "prune", "--days", "50", env=env)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout == "dropped 0 day(s) of events older than 50 days\n"
    assert {old, recent} <= await partitions(fresh_db_url)

    pruned = await cli("events", "prune", "--json", env=env)  # the setting's 30 days
    assert json_object(pruned) == {"days": 30, "dropped": [old]}
    left = await partitions(fresh_db_url)
    assert old not in left
    assert recent in left


@pytest.mark.parametrize(
    "days",
    [
        pytest.param("0"),
        pytest.param("-1"),
    ],
)
async def test_events_prune_refuses_days_below_1(fresh_db_url: str, days: str) -> None:
    migrate(fresh_db_url)
    today = await partition_of_day(fresh_db_url, 0)
    env = {"MENDLINE_DATABASE_URL": fresh_db_url}
    result = await cli("events", "prune", "--days", days, env=env)
    assert usage_error(result).startswith("argument --days: ")
    assert today in await partitions(fresh_db_url)


@pytest.mark.parametrize(
    "args",
    [
        ("events", "prune", "--days", "many"),
        ("issues", "merge", "1", "two"),
        ("issues", "merge", "1"),
    ],
)
def test_bad_arguments_are_a_usage_error(args: tuple[str, ...]) -> None:
    result = run(*args, env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    assert usage_error(result)
    assert result.stderr.splitlines()[-1].startswith(f"mendline {args[0]} {args[1]}: error: ")


# -- mendline dlq -------------------------------------------------------------------------


async def test_dlq_list_shows_the_rejected_record_and_redrive_sends_it_again(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    env = cli_env(settings)
    await produce(
        kafka_bootstrap, settings.errors_topic, [b"this is not json", encode(make_event(8, 0))]
    )
    async with running_consumer(settings) as consumer:
        await wait_until(
            lambda: consumer.stats.stored == 1 and consumer.stats.dead_lettered == {"not_json": 1},
            30,
            "the bad record dead-lettered",
        )

        listed = await cli("dlq", "list", "--json", env=env)
        letters = json_lines(listed)
        assert listed.stderr == ""
        assert len(letters) == 1
        letter = letters[0]
        assert letter["reason"] == "not_json"
        assert letter["source"].startswith(f"{settings.errors_topic}[")
        assert letter["value"] == "this is not json"
        assert letter["message"]
        assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
        datetime.fromisoformat(letter["timestamp"])

        plain = await cli("dlq", "list", env=env)
        assert plain.returncode == 0, plain.stderr
        header, row = plain.stdout.splitlines()
        assert header.split() == ["RECORD", "REASON", "SOURCE", "MESSAGE", "VALUE"]
        record = f"{letter['partition']}@{letter['offset']}"
        assert row.split()[:3] == [record, "not_json", letter["source"]]
        assert row.endswith("  this is not json")
        assert header.index("REASON") == row.index("not_json")  # aligned
        assert plain.stderr == "1 record(s)\n"

        other = await cli("dlq", "list", "--reason", "invalid", env=env)
        assert other.returncode == 0, other.stderr
        assert other.stdout == ""
        assert other.stderr == "0 record(s)\n"

        redriven = await cli("dlq", "redrive", "--json", env=env)
        assert json_object(redriven) == {"redriven": 1, "topic": settings.errors_topic}
        # It came through the errors topic again, and was rejected again.
        await wait_until(
            lambda: consumer.stats.dead_lettered == {"not_json": 2}, 30, "the re-driven record"
        )

        # Progress was saved: only the newly rejected record goes this time.
        again = await cli("dlq", "redrive", env=env)
        assert again.stdout == f"re-drove 1 record(s) to {settings.errors_topic}\n"


async def test_dlq_list_shows_the_newest_first_and_oldest_on_asking(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = consume_settings(kafka_bootstrap, fresh_db_url)
    env = cli_env(settings)
    await produce(kafka_bootstrap, settings.errors_topic, [b"first bad", b"second bad"])
    async with running_consumer(settings) as consumer:
        await wait_until(
            lambda: consumer.stats.dead_lettered == {"not_json": 2}, 30, "both dead-lettered"
        )
    newest = json_lines(await cli("dlq", "list", "--json", env=env))
    assert [d["value"] for d in newest] == ["second bad", "first bad"]
    oldest = json_lines(await cli("dlq", "list", "--oldest", "--json", env=env))
    assert [d["value"] for d in oldest] == ["first bad", "second bad"]
    latest = json_lines(await cli("dlq", "list", "--limit", "1", "--json", env=env))
    assert [d["value"] for d in latest] == ["second bad"]


@pytest.mark.parametrize("command", ["list", "redrive"])
def test_dlq_without_its_topic_is_one_clear_error(kafka_bootstrap: str, command: str) -> None:
    topic = unique_topic("no-dlq")
    result = run(
        "dlq",
        command,
        env={"MENDLINE_KAFKA_BOOTSTRAP": kafka_bootstrap, "MENDLINE_DLQ_TOPIC": topic},
    )
    error, hint = failure(result)
    assert error == f"the DLQ topic {topic} does not exist"
    assert "`mendline topics ensure`" in hint and "MENDLINE_DLQ_TOPIC" in hint


@pytest.mark.parametrize("command", ["list", "redrive"])
def test_dlq_with_kafka_unreachable_is_one_clear_error(command: str) -> None:
    result = run("dlq", command, "--json", env={"MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA})
    error, hint = failure(result)
    assert error == f"cannot reach Kafka at {UNREACHABLE_KAFKA}"
    assert "MENDLINE_KAFKA_BOOTSTRAP" in hint and "`mendline doctor`" in hint


def test_dlq_list_refuses_a_negative_limit() -> None:
    result = run(
        "dlq", "list", "--limit", "-1", env={"MENDLINE_KAFKA_BOOTSTRAP": UNREACHABLE_KAFKA}
    )
    assert usage_error(result).startswith("argument --limit: ")
