"""`mendline demo` end to end: a real web app's errors through the whole pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from mendline.analyzers.policy import load_policy
from mendline.sample_app import TRAFFIC
from mendline.schemas.settings import load_settings
from tests.cli_helpers import cli, json_object
from tests.git_helpers import git
from tests.sentry_helpers import init_sdk

from .stage_helpers import ingest, issue_events

pytestmark = pytest.mark.integration

_DEMO = (sys.executable, "-m", "mendline", "demo", "--no-interactive")

#: Secrets the sample app puts in its requests and logging context.
_SECRETS = ("hunter2", "eyJhbGciOiJIUzI1NiJ9", "4111 1111 1111 1111")


def demo_env(kafka_bootstrap: str | None = None, database_url: str | None = None) -> dict[str, str]:
    """The environment of a demo run: external servers where given, embedded ones otherwise,
    and settings in the shell that the demo must not take (a real pipeline's topic)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENDLINE_")}
    env["MENDLINE_ERRORS_TOPIC"] = "production.errors"  # never used by the demo
    if kafka_bootstrap is not None:
        env["MENDLINE_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    if database_url is not None:
        env["MENDLINE_DATABASE_URL"] = database_url
    return env


@asynccontextmanager
async def running_demo(
    *args: str, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The demo as a process, killed (with its children) if the test ends first."""
    process = await asyncio.create_subprocess_exec(
        *_DEMO,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()  # its app and servers die with it (PR_SET_PDEATHSIG)
            await process.wait()


def _send_with_sentry_sdk(dsn: str) -> str:
    """An error of a storefront app sent by the real Sentry SDK to ``dsn``; its event id."""
    import sentry_sdk

    init_sdk(dsn, release="storefront@3.1.0")
    try:
        try:
            _ = {"cart": {}}["cart"]["total"]
        except KeyError:
            event_id = sentry_sdk.capture_exception()
        sentry_sdk.flush(10)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: sends nothing
    assert event_id is not None
    return event_id


def failure_names() -> set[str]:
    return {spec.failure for spec in TRAFFIC if spec.failure is not None}


async def test_the_demo_turns_every_failure_into_an_issue_with_a_finding_and_alerts(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    async with running_demo("--json", env=demo_env(kafka_bootstrap, fresh_db_url)) as process:
        out, err = await asyncio.wait_for(process.communicate(), 240)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["complete"] is True and summary["problem"] is None
    assert summary["unexpected_answers"] == 0

    # What the summary says is what PostgreSQL holds.
    conn = await asyncpg.connect(fresh_db_url)
    try:
        issues = await conn.fetch(
            "SELECT i.id, i.service, i.times_seen, f.category, f.root_cause"
            " FROM mendline.issues i LEFT JOIN mendline.issue_findings f ON f.issue_id = i.id"
        )
        # occurrences: the shop's busiest failure repeats fast enough to be rolled up
        events = await conn.fetchval("SELECT sum(count) FROM mendline.events")
        deliveries = await conn.fetch(
            "SELECT receiver, kind, status, issue_id FROM mendline.alert_deliveries"
        )
        stored = await conn.fetchval("SELECT string_agg(e::text, ' ') FROM mendline.events e")
    finally:
        await conn.close()

    assert events == summary["events_logged"] == summary["progress"]["events"]
    assert summary["requests"] > summary["events_logged"] > 0  # some requests succeed
    # One issue per kind of failure, each with a specific root cause.
    assert len(issues) == len(failure_names()) == len(summary["issues"])
    assert {row["service"] for row in issues} == {"shop"}
    assert sum(row["times_seen"] for row in issues) == events
    assert all(row["root_cause"] for row in issues)
    assert not [row for row in issues if row["category"] == "unknown"]
    # Every new issue reached the Slack stand-in and the email one; a spike of an issue whose
    # first alert was still waiting added nothing.
    new = {(r["issue_id"], r["receiver"]) for r in deliveries if r["kind"] == "new_issue"}
    assert new == {(r["id"], name) for r in issues for name in ("demo-slack", "demo-email")}
    for row in deliveries:
        expected = "delivered" if row["kind"] == "new_issue" else "suppressed"
        assert (row["kind"], row["status"]) == (row["kind"], expected)
    assert summary["received"]["slack"] >= 1 and summary["received"]["email"] >= 1
    assert len(summary["deliveries"]) == len(deliveries)
    # The stand-ins showed what they received, as the people on call would see it.
    assert re.search(rf"^  slack  mendline: {len(issues)} issues", stderr, re.M), stderr
    assert re.search(r"^  email  to oncall@demo.invalid: ", stderr, re.M), stderr
    # Nothing the app was given in secret reached the database or the output.
    for secret in _SECRETS:
        assert secret not in stored
        assert secret not in stdout + stderr
    # It used a topic of its own, not the one of the shell's settings.
    assert re.search(r"topic mendline-demo-[0-9a-f]{8}$", stderr, re.M), stderr
    assert "production.errors" not in stderr
    assert "mendline.issue_findings" in stderr  # the SQL to explore

    # The heal stage proposed the fix of the one patched finding; it awaits one approver.
    (fix,) = summary["fixes"]
    assert (fix["state"], fix["decision"]["verdict"], fix["approvals_needed"]) == (
        "proposed",
        "approval",
        1,
    )
    assert fix["repository"] == "shop" and fix["decision"]["reasons"]
    assert fix["mapped_patch"].startswith("--- a/src/shop/shop.py\n")
    assert '+    return GIFT_WRAP_FEE if options.get("gift_wrap") else 0.0' in fix["mapped_patch"]
    patched = [issue for issue in summary["issues"] if issue["patch"]]
    assert [issue["id"] for issue in patched] == [fix["issue_id"]]
    assert patched[0]["title"] == "KeyError: 'gift_wrap'"
    assert f"fix {fix['id']} of issue {fix['issue_id']}: proposed (awaiting approval)" in stderr
    assert f"`mendline fix apply {fix['id']}`" in stderr


async def applied(fix_id: int, env: dict[str, str]) -> dict[str, Any]:
    """The fix as ``mendline fix show --json`` has it, once it is no longer waiting to be
    applied (or being applied): the demo's heal stage applies an approved fix by itself."""
    while True:
        shown: dict[str, Any] = json_object(
            await cli("fix", "show", str(fix_id), "--json", env=env)
        )
        if shown["state"] not in ("approved", "applying"):
            return shown
        await asyncio.sleep(0.5)


def pgpass(path: str) -> tuple[int, str]:
    """The permission bits of a one-line .pgpass file and the password in it."""
    file = Path(path)
    return file.stat().st_mode & 0o777, file.read_text().strip().rsplit(":", 1)[1]


async def test_keep_leaves_the_embedded_database_running_until_interrupted(
    kafka_bootstrap: str,
) -> None:
    # No database URL: the demo starts its own PostgreSQL.
    async with running_demo("--json", "--keep", env=demo_env(kafka_bootstrap)) as process:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 240)  # once all has settled
        summary: dict[str, Any] = json.loads(line)
        assert summary["complete"] is True
        url, passfile = summary["database_url"], summary["passfile"]
        assert url and url.startswith("postgresql://postgres@")  # the password is not in it
        mode, password = pgpass(passfile)
        assert mode == 0o600 and len(password) >= 24 and password.encode() not in line
        with pytest.raises(asyncpg.InvalidPasswordError):  # SCRAM, not trust
            await asyncpg.connect(url, password="not-the-password")
        conn = await asyncpg.connect(url, passfile=passfile)
        try:
            findings = await conn.fetchval("SELECT count(*) FROM mendline.issue_findings")
        finally:
            await conn.close()
        assert findings == len(summary["issues"]) == len(failure_names())
        (fix,) = summary["fixes"]
        # The dashboard, with the demo login it printed: the issues, and the proposed fix.
        dashboard = summary["dashboard"]
        assert dashboard["url"].startswith("http://127.0.0.1:") and dashboard["user"] == "demo"
        async with httpx.AsyncClient(base_url=dashboard["url"], timeout=10) as browser:
            logged_in = await browser.post(
                "/login",
                data={"name": dashboard["user"], "password": dashboard["password"]},
                headers={"Origin": dashboard["url"].rstrip("/")},
            )
            assert logged_in.status_code == 303, logged_in.text
            me = (await browser.get("/api/v1/me")).json()
            assert (me["name"], me["role"], me["auth"]) == ("demo", "admin", "session")
            listed = (await browser.get("/api/v1/issues")).json()
            assert len(listed["items"]) == len(failure_names())
            fix_page = await browser.get(f"/fixes/{fix['id']}")
            assert fix_page.status_code == 200 and 'id="fix-apply"' in fix_page.text
        # An approver approves the proposed fix as the demo says; its heal stage applies it.
        env = {
            "MENDLINE_DATABASE_URL": url,
            "PGPASSFILE": passfile,
            "MENDLINE_TOKEN": "",
            "MENDLINE_LOCAL_ROLE": "approver",
            **summary["fix_settings"],
        }
        approved = await cli("fix", "approve", str(fix["id"]), env=env)
        assert approved.returncode == 0, approved.stderr
        shown = await applied(fix["id"], env)
        assert shown["state"] == "applied" and shown["verification"]["passed"] is True, shown
        (repository,) = load_policy(
            Path(summary["fix_settings"]["MENDLINE_FIX_POLICY_FILE"])
        ).repositories
        fixed = git(repository.path, "show", f"{shown['branch']}:src/shop/shop.py")
        assert 'return GIFT_WRAP_FEE if options.get("gift_wrap") else 0.0' in fixed
        # The relay's DSN it printed: a real Sentry SDK's error becomes an issue of the demo's
        # storefront service, with a finding.
        event_id = await asyncio.to_thread(_send_with_sentry_sdk, summary["relay_dsn"])
        conn = await asyncpg.connect(url, passfile=passfile)
        try:
            for _ in range(120):
                found = await conn.fetchrow(
                    """SELECT i.service, i.title, count(f.issue_id) AS findings
                       FROM mendline.issues i
                       JOIN mendline.events e ON e.issue_id = i.id
                       LEFT JOIN mendline.issue_findings f ON f.issue_id = i.id
                       WHERE e.event_id = $1 GROUP BY i.id""",
                    event_id,
                )
                if found is not None and found["findings"]:
                    break
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        assert found is not None, "the SDK's event never became an issue"
        assert (found["service"], found["title"]) == ("storefront", "KeyError: 'total'")
        assert found["findings"] == 1
        assert process.returncode is None  # still running, as asked
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(url, passfile=passfile, timeout=5)  # the database went with it


async def test_ctrl_c_mid_run_stops_the_app_and_exits_130(kafka_bootstrap: str) -> None:
    async with running_demo(env=demo_env(kafka_bootstrap)) as process:
        assert process.stdout is not None
        app_url = None
        while app_url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            assert line, "the demo ended before starting the sample app"
            found = re.search(r"sample app +'shop' at (\S+)", line)
            app_url = found.group(1) if found else None
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(f"{app_url}/health")).status_code == 200
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 60)
        assert await asyncio.wait_for(process.wait(), 60) == 130
    assert b"not finished: stopped before the pipeline had settled" in rest
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{app_url}/health")  # the app went with it


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path (the database's socket path has a length limit)."""
    folder = Path(tempfile.mkdtemp(prefix="md-"))
    folder.chmod(0o755)  # as root, the database runs as a user of its own, which must get in
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def demo_folders(tmp: Path) -> list[str]:
    """The demo's work folders in ``tmp``."""
    return [folder.name for folder in tmp.glob("mendline-demo-*")]


async def test_a_second_ctrl_c_still_cleans_up_and_exits_130(
    kafka_bootstrap: str, short_tmp: Path
) -> None:
    # The second signal cancels the demo rather than ending the process at once (as the
    # stage commands do), so its clean-up still runs: its work folder is removed.
    env = demo_env(kafka_bootstrap) | {"TMPDIR": str(short_tmp)}
    async with running_demo(env=env) as process:
        assert process.stdout is not None
        app_url = None
        while app_url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            assert line, "the demo ended before starting the sample app"
            found = re.search(r"sample app +'shop' at (\S+)", line)
            app_url = found.group(1) if found else None
        assert demo_folders(short_tmp)  # its work folder
        process.send_signal(signal.SIGINT)
        # Two signals sent at once may arrive as one: the second goes only once the first
        # was seen (its summary says so), while the demo is cleaning up.
        while b"not finished" not in line.encode():
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, "the demo ended before saying it was stopped"
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.stdout.read(), 60)
        assert await asyncio.wait_for(process.wait(), 60) == 130
    assert not demo_folders(short_tmp)
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{app_url}/health")  # the app went with it


async def test_a_database_that_holds_issues_is_refused(
    kafka_bootstrap: str, fresh_db_url: str
) -> None:
    settings = load_settings(kafka_bootstrap=kafka_bootstrap, database_url=fresh_db_url)
    await ingest(settings, issue_events(range(1), per_issue=1))  # someone's real issue
    async with running_demo(env=demo_env(kafka_bootstrap, fresh_db_url)) as process:
        _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 1
    message, hint = err.decode().splitlines()[-2:]
    assert message.startswith("mendline: the database at postgresql://")
    assert message.endswith("already holds mendline issues")
    assert hint.startswith("hint: point MENDLINE_DATABASE_URL at an empty database")
    conn = await asyncpg.connect(fresh_db_url)
    try:  # and it was left as it was: no demo events, its trigger not routed
        assert await conn.fetchval("SELECT count(*) FROM mendline.events") == 1
        assert await conn.fetchval("SELECT count(*) FROM mendline.deliveries") == 0
    finally:
        await conn.close()
