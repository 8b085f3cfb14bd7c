"""The remediation worker on the real PostgreSQL, with real processes and a real HTTP service on
loopback: a check goes down (its results recorded through the HealthStore as the monitor
records them, from real probes of the service), the policy's remediation runs (a Python script
that heals the service, or does not; an HTTP call with its header from the environment), the
check is run again, and a run that did not help reaches the alert path. The guardrails hold:
cooldown and runs per hour (one refused row, with its reason), approval by a person through
`mendline remediations approve`, dry runs, one run at a time per target across two workers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from mendline.analyzers.policy import parse_policy
from mendline.ingest.probes import run_check
from mendline.schemas.checks import Check
from mendline.schemas.remediation import RemediationRun
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import (
    AuditStore,
    HealthStore,
    RemediationStore,
    connect_alerts,
    connect_audit,
    connect_health,
    connect_remediations,
)
from mendline.sinks.routing import load_routes
from mendline.stages._remediation import RemediationWorker
from mendline.stages.alert import AlertWorker
from tests.channel_servers import FakeSlack
from tests.cli_helpers import cli, json_object
from tests.db_helpers import query
from tests.integration.stage_helpers import run_until_exit, wait_until
from tests.loopback import LoopbackHTTPServer, QuietHandler

pytestmark = pytest.mark.integration
CHECK: TypeAdapter[Check] = TypeAdapter(Check)
RESTART_TOKEN = "rst-4c1e9a7b2d5f8e03"

# Heals the service: writes the file its health depends on. Every run appends a line to the
# log given as the second argument.
HEALS = """
import pathlib, sys
pathlib.Path(sys.argv[1]).write_text("ok")
with open(sys.argv[2], "a") as log:
    log.write("healed\\n")
print("service restarted")
"""
# Runs, and changes nothing the check looks at.
DOES_NOT_HELP = """
import sys
with open(sys.argv[2], "a") as log:
    log.write("tried\\n")
print("restarted, for what it is worth")
"""
# Holds its target for as long as the test says: marks itself started (failing if another
# run holds the target already), waits for the "go" file, appends to its log.
HOLDS = """
import os, pathlib, sys, time
folder = pathlib.Path(sys.argv[1])
try:
    os.close(os.open(folder / "held", os.O_CREAT | os.O_EXCL))
except FileExistsError:
    (folder / "overlap").write_text("two runs at once")
    sys.exit(1)
(folder / "started").write_text("")
for _ in range(600):
    if (folder / "go").exists():
        break
    time.sleep(0.1)
with open(folder / "log", "a") as log:
    log.write(sys.argv[2] + "\\n")
os.remove(folder / "held")
"""


@dataclass
class Service:
    """A service on loopback: /healthz answers 200 once its health file exists, 503 before;
    POST /restart with the right token writes the file. ``restarts`` has each restart call's
    Authorization header."""

    server: LoopbackHTTPServer
    health_file: Path
    restarts: list[str]

    @property
    def url(self) -> str:
        return f"{self.server.base}/healthz"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    health_file = tmp_path / "healthy"
    restarts: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            status = 200 if health_file.exists() else 503
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def do_POST(self) -> None:
            given = self.headers.get("Authorization", "")
            restarts.append(given)
            ok = given == f"Bearer {RESTART_TOKEN}"
            if ok:
                health_file.write_text("ok")
            body = f"restarted; you sent {given}".encode() if ok else b"who are you?"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = LoopbackHTTPServer(Handler)
    server.start()
    try:
        yield Service(server, health_file, restarts)
    finally:
        server.close()


@dataclass
class Stores:
    settings: Settings
    health: HealthStore
    runs: RemediationStore
    audit: AuditStore


@pytest.fixture
async def stores(fresh_db_url: str) -> AsyncIterator[Stores]:
    settings = load_settings(database_url=fresh_db_url)
    health = await connect_health(settings)
    runs = await connect_remediations(settings, origin="heal test", size=6)
    audit = await connect_audit(settings)
    try:
        yield Stores(settings, health, runs, audit)
    finally:
        await health.close()
        await runs.close()
        await audit.close()


def http_check(service: Service, name: str = "api", **fields: Any) -> Check:
    return CHECK.validate_python(
        {
            "name": name,
            "kind": "http",
            "url": service.url,
            "interval": 60,
            "timeout": 5,
            "conditions": ["[STATUS] == 200"],
            "tags": {"team": "platform"},
            "severity": "critical",
            **fields,
        }
    )


async def goes_down(stores: Stores, *checks: Check) -> None:
    """Run each check as the monitor does, three slots in a row (the service failing), and
    record the results through the health store: each check is down, with its issue and
    down trigger."""
    await stores.health.sync_checks(list(checks))
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    for check in checks:
        for slot in range(3):
            at = first + timedelta(seconds=slot * check.interval)
            result = await run_check(check, at, stores.settings, {})
            assert not result.success
            await stores.health.record(result, check, "monitor test", in_maintenance=False)
        state = await stores.health.state(check.name)
        assert state is not None and state.status == "down"


@pytest.fixture
async def api(stores: Stores, service: Service) -> Check:
    """The check "api" of the service, down."""
    check = http_check(service)
    await goes_down(stores, check)
    return check


def script(tmp_path: Path, code: str, *args: str) -> list[str]:
    path = tmp_path / "remediate.py"
    path.write_text(code)
    return [sys.executable, str(path), *args]


def policy_text(command: list[str], **fields: Any) -> str:
    """One remediation of check "api" as a policy file says it."""
    values = {
        "name": "restart-api",
        "when": {"check": "api"},
        "command": command,
        "requires_approval": False,
        **fields,
    }
    return "[[remediations]]\n" + "\n".join(f"{k} = {toml(v)}" for k, v in values.items())


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def worker(stores: Stores, text: str, *checks: Check, **options: Any) -> RemediationWorker:
    return RemediationWorker(
        stores.settings,
        stores.runs,
        policy=parse_policy(text, "policy.toml"),
        checks=checks,
        verify_delay=options.pop("verify_delay", 0.0),
        verify_attempts=options.pop("verify_attempts", 1),
        **options,
    )


async def runs_of(stores: Stores) -> list[RemediationRun]:
    return list(reversed(await stores.runs.list()))


async def actions(stores: Stores, run_id: int) -> list[tuple[str, str, Any]]:
    """(action, actor, after) of a run's audit rows, oldest first."""
    rows = await stores.audit.list(target=f"remediation:{run_id}")
    return [(r.action, r.actor.name, r.after) for r in reversed(rows)]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- a run, verified ------------------------------------------------------------------------


async def test_a_check_down_is_remediated_and_the_check_run_again_passes(
    stores: Stores, service: Service, tmp_path: Path, api: Check
) -> None:
    log = tmp_path / "runs.log"
    text = policy_text(script(tmp_path, HEALS, str(service.health_file), str(log)))
    heal = worker(stores, text, api)

    done = await heal.pass_once()

    assert (done.troubles, done.matched, done.started) == (1, 1, 1)
    assert (done.succeeded, done.helped, done.not_helped, done.escalated) == (1, 1, 0, 0)
    assert lines(log) == ["healed"]
    (run,) = await runs_of(stores)
    assert (run.name, run.target, run.subject, run.verdict) == (
        "restart-api",
        "restart-api",
        "check:api",
        "run",
    )
    assert (run.state, run.verified, run.escalated_at) == ("succeeded", True, None)
    assert run.trigger.startswith("check api is down since ")
    assert run.outcome is not None and run.outcome.output == "service restarted\n"
    assert run.owner == heal.owner and run.requested_by == "mendline"
    assert any("requires_approval = false" in reason for reason in run.reasons)
    # Every step audited as mendline itself, the decision's reasons on the request.
    steps = await actions(stores, run.id)
    assert [(action, actor) for action, actor, _ in steps] == [
        ("remediation.request", "mendline"),
        ("remediation.start", "mendline"),
        ("remediation.finish", "mendline"),
        ("remediation.verify", "mendline"),
    ]
    assert steps[0][2]["reasons"] == run.reasons and steps[0][2]["subject"] == "check:api"
    assert steps[2][2]["output"] == "service restarted\n"
    # The check helped and is still down until the monitor sees it up: nothing more is done.
    again = await heal.pass_once()
    assert (again.matched, again.unchanged, again.refused, again.started) == (1, 1, 0, 0)
    assert len(await runs_of(stores)) == 1


async def test_an_http_remediation_sends_its_header_from_the_environment_and_never_shows_it(
    stores: Stores, service: Service, api: Check
) -> None:
    text = (
        '[[remediations]]\nname = "restart-api"\nwhen = { check = "api" }\n'
        "requires_approval = false\n"
        f'http = {{ url = "{service.server.base}/restart", headers_env = {{ Authorization ='
        ' "TEST_RESTART_TOKEN" } }\n'
    )
    environ = {"TEST_RESTART_TOKEN": f"Bearer {RESTART_TOKEN}"}
    done = await worker(stores, text, api, environ=environ).pass_once()

    assert (done.succeeded, done.helped) == (1, 1)
    assert service.restarts == [f"Bearer {RESTART_TOKEN}"]
    (run,) = await runs_of(stores)
    assert run.outcome is not None and run.outcome.http_status == 200
    assert run.outcome.ran == f"POST {service.server.base}/restart"
    # The service echoed the token back: filtered from the run and from its audit rows.
    assert RESTART_TOKEN not in run.outcome.output and "restarted; you sent" in run.outcome.output
    rows = await query(
        stores.settings.database_url.get_secret_value(),
        "SELECT after::text AS after FROM mendline.audit_log",
    )
    assert rows and not any(RESTART_TOKEN in row["after"] for row in rows)


# -- not helped: the alert path ----------------------------------------------------------------

ROUTES = """
[receivers.ops]
type = "slack"
webhook_url_env = "TEST_SLACK_WEBHOOK"

[[routes]]
match = { kind = "remediation_failed", "tag:team" = "platform" }
receivers = ["ops"]
group_wait = "0s"
"""


async def test_a_remediation_that_did_not_help_is_escalated_to_the_people_on_call(
    stores: Stores, service: Service, tmp_path: Path, slack: FakeSlack, api: Check
) -> None:
    log = tmp_path / "runs.log"
    text = policy_text(script(tmp_path, DOES_NOT_HELP, "-", str(log)))
    done = await worker(stores, text, api, verify_attempts=2).pass_once()

    assert (done.succeeded, done.helped, done.not_helped, done.escalated) == (1, 0, 1, 1)
    (run,) = await runs_of(stores)
    assert (run.state, run.verified) == ("not_helped", False)
    assert run.escalated_at is not None
    url = stores.settings.database_url.get_secret_value()
    (trigger,) = await query(
        url,
        """SELECT t.kind, t.environment, t.tags::text AS tags, t.details::text AS details,
                  s.issue_id = t.issue_id AS on_its_issue
           FROM mendline.triggers t, mendline.check_state s
           WHERE s.check_name = 'api' AND t.kind = 'remediation_failed'""",
    )
    assert trigger["on_its_issue"] and trigger["environment"] == "production"
    assert json.loads(trigger["tags"]) == {"team": "platform", "check": "api", "check_kind": "http"}
    details = json.loads(trigger["details"])
    assert (details["remediation"], details["run_id"], details["verified"]) == (
        "restart-api",
        run.id,
        False,
    )
    # What the alert stage delivers of it: routed by its kind and the check's tags.
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES)
    table = load_routes(path)
    channels = {
        name: make_channel(name, receiver, {"TEST_SLACK_WEBHOOK": slack.webhook_url("ops")})
        for name, receiver in table.receivers.items()
    }
    alerting = AlertWorker(stores.settings, await connect_alerts(stores.settings), table, channels)
    try:
        async with run_until_exit([alerting]):
            await wait_until(lambda: slack.requests, 60, "the escalation's Slack message")
    finally:
        for channel in channels.values():
            await channel.aclose()
        await alerting.store.pool.close()
    (message,) = slack.requests
    said = json.dumps(message.body)
    assert "remediation did not help" in said and "CRITICAL" in said
    assert "*Remediation*\\nrestart-api" in said
    assert f"*Run*\\n{run.id} (not_helped)" in said
    assert "api still failed after the run" in said
    assert "analysis pending" not in said
    escalated = (await actions(stores, run.id))[-1]
    assert escalated[0] == "remediation.escalate" and escalated[2]["trigger_id"] is not None


async def test_a_command_that_fails_is_escalated_without_running_the_check_again(
    stores: Stores, service: Service, tmp_path: Path, api: Check
) -> None:
    text = policy_text(script(tmp_path, "import sys; print('no such unit'); sys.exit(5)"))
    done = await worker(stores, text, api).pass_once()

    assert (done.failed, done.helped, done.not_helped, done.escalated) == (1, 0, 0, 1)
    (run,) = await runs_of(stores)
    assert (run.state, run.verified) == ("failed", None)
    assert run.outcome is not None and run.outcome.exit_code == 5
    (trigger,) = await query(
        stores.settings.database_url.get_secret_value(),
        "SELECT details::text AS details FROM mendline.triggers WHERE kind = 'remediation_failed'",
    )
    assert json.loads(trigger["details"])["detail"] == "exited with status 5"


# -- guardrails ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guardrails", "reason"),
    [
        (
            {"cooldown": "30m", "max_runs_per_hour": 5},
            "within its cooldown of 30m",
        ),
        (
            {"cooldown": "0s", "max_runs_per_hour": 1},
            "1 runs in the last hour: max_runs_per_hour is 1",
        ),
    ],
    ids=["cooldown", "max_runs_per_hour"],
)
async def test_a_guardrail_holds_back_a_second_run_with_its_reason_stored_once(
    stores: Stores,
    service: Service,
    tmp_path: Path,
    guardrails: dict[str, Any],
    reason: str,
    api: Check,
) -> None:
    log = tmp_path / "runs.log"
    text = policy_text(script(tmp_path, DOES_NOT_HELP, "-", str(log)), **guardrails)
    heal = worker(stores, text, api)

    first = await heal.pass_once()
    second = await heal.pass_once()
    third = await heal.pass_once()

    assert (first.started, first.not_helped) == (1, 1)
    assert (second.started, second.refused) == (0, 1)
    assert (third.started, third.refused, third.unchanged) == (0, 0, 1)
    assert lines(log) == ["tried"]
    ran, refused = await runs_of(stores)
    assert (ran.state, refused.state, refused.verdict) == ("not_helped", "refused", "refused")
    assert refused.subject == "check:api" and refused.episode_at == ran.episode_at
    assert any(reason in said for said in refused.reasons), refused.reasons
    steps = await actions(stores, refused.id)
    assert [(action, actor) for action, actor, _ in steps] == [("remediation.refuse", "mendline")]
    assert steps[0][2]["reasons"] == refused.reasons
    # An hour and a half on, with the check still down, the guardrails let it run again.
    later = await heal.pass_once(datetime.now(UTC) + timedelta(minutes=90))
    assert (later.started, later.not_helped) == (1, 1)
    assert lines(log) == ["tried", "tried"]


async def test_a_run_that_needs_approval_waits_for_a_person_then_runs(
    stores: Stores, service: Service, tmp_path: Path, api: Check
) -> None:
    log = tmp_path / "runs.log"
    command = script(tmp_path, HEALS, str(service.health_file), str(log))
    heal = worker(stores, policy_text(command, requires_approval=True), api, poll_interval=3600)

    first = await heal.pass_once()
    second = await heal.pass_once()
    assert (first.requested, first.started, second.unchanged, second.requested) == (1, 0, 1, 0)
    (run,) = await runs_of(stores)
    assert (run.state, run.verdict) == ("requested", "needs_approval")
    assert lines(log) == []

    # The worker runs on its own, polling once an hour: the approval's NOTIFY wakes it.
    async with run_until_exit([heal]):
        await wait_until(lambda: heal.stats.unchanged >= 2, 60, "the worker's first pass")
        env = {
            "MENDLINE_DATABASE_URL": stores.settings.database_url.get_secret_value(),
            "MENDLINE_TOKEN": "",
            "MENDLINE_LOCAL_ROLE": "approver",
        }
        approved = json_object(await cli("remediations", "approve", str(run.id), "--json", env=env))
        assert approved["state"] == "approved"

        async def verified() -> bool:
            return (await stores.runs.get(run.id)).verified is not None

        await wait_until(verified, 60, "the approved run to run and be verified")
    done = await stores.runs.get(run.id)
    assert (done.state, done.verified, done.approved_by) == (
        "succeeded",
        True,
        approved["approved_by"],
    )
    assert lines(log) == ["healed"]
    steps = [(action, actor) for action, actor, _ in await actions(stores, run.id)]
    assert steps == [
        ("remediation.request", "mendline"),
        ("remediation.approve", approved["approved_by"]),
        ("remediation.start", "mendline"),
        ("remediation.finish", "mendline"),
        ("remediation.verify", "mendline"),
    ]


async def test_a_request_is_withdrawn_once_the_check_is_up_again(
    stores: Stores, service: Service, tmp_path: Path, api: Check
) -> None:
    command = script(tmp_path, HEALS, str(service.health_file), str(tmp_path / "runs.log"))
    heal = worker(stores, policy_text(command, requires_approval=True), api)
    assert (await heal.pass_once()).requested == 1
    # Someone fixed it by hand: the monitor records it up.
    service.health_file.write_text("ok")
    later = datetime.now(UTC).replace(microsecond=0)
    for slot in range(2):
        at = later + timedelta(seconds=slot * api.interval)
        result = await run_check(api, at, stores.settings, {})
        await stores.health.record(result, api, "monitor test", in_maintenance=False)

    done = await heal.pass_once()

    assert (done.troubles, done.withdrawn) == (0, 1)
    (run,) = await runs_of(stores)
    assert run.state == "refused"
    assert run.reasons[-1].startswith("declined by mendline: the check is no longer down")


async def test_a_dry_run_runs_nothing_and_says_what_would_have_run(
    stores: Stores, service: Service, tmp_path: Path, api: Check
) -> None:
    log = tmp_path / "runs.log"
    command = script(tmp_path, HEALS, str(service.health_file), str(log))
    done = await worker(stores, policy_text(command, dry_run=True), api).pass_once()

    assert (done.started, done.dry_runs, done.helped, done.not_helped, done.escalated) == (
        1,
        1,
        0,
        0,
        0,
    )
    assert lines(log) == [] and not service.health_file.exists()
    (run,) = await runs_of(stores)
    assert (run.state, run.verified, run.escalated_at) == ("dry_run", None, None)
    assert run.outcome is not None and run.outcome.detail.startswith("dry run: would run ")
    assert any("dry_run = true" in reason for reason in run.reasons)


async def test_one_run_at_a_time_on_a_target_across_two_workers(
    stores: Stores, service: Service, tmp_path: Path
) -> None:
    """Two checks down, each with a remediation on the same target, two workers at once:
    one run holds the target, the other remediation is refused (once) while it does, and
    each check is asked for once whatever the number of workers."""
    one, two = http_check(service, "api"), http_check(service, "worker")
    await goes_down(stores, one, two)
    holds = tmp_path / "holds.py"
    holds.write_text(HOLDS)
    text = "\n".join(
        f'[[remediations]]\nname = "restart-{name}"\nwhen = {{ check = "{name}" }}\n'
        f'target = "shared-host"\nrequires_approval = false\nverify = false\n'
        f"command = {json.dumps([sys.executable, str(holds), str(tmp_path), name])}\n"
        for name in ("api", "worker")
    )
    first, second = worker(stores, text, one, two), worker(stores, text, one, two)
    passes = [asyncio.create_task(w.pass_once()) for w in (first, second)]
    try:
        # The run has begun (all of its worker's asking is done), and the other worker's
        # pass is over: every decision was taken while the target was held.
        await wait_until(
            lambda: (tmp_path / "started").exists() and any(p.done() for p in passes),
            60,
            "one run started and the other worker's pass over",
        )
        (tmp_path / "go").write_text("")
        done = await asyncio.wait_for(asyncio.gather(*passes), 60)
    finally:
        (tmp_path / "go").write_text("")
    assert not (tmp_path / "overlap").exists()
    assert sum(d.started for d in done) == 1 and sum(d.refused for d in done) == 1
    assert sum(d.succeeded for d in done) == 1
    assert len(lines(tmp_path / "log")) == 1
    ran, refused = await runs_of(stores)
    assert (ran.state, refused.state) == ("succeeded", "refused")
    assert ran.target == refused.target == "shared-host"
    assert refused.name != ran.name
    assert any("a run on shared-host is in progress: one at a time" in r for r in refused.reasons)


# -- issues ------------------------------------------------------------------------------------


async def test_an_active_issue_matching_a_category_and_labels_gets_its_remediation(
    stores: Stores, tmp_path: Path
) -> None:
    """An error issue (as the consumer and the analyser write it: its trigger with the
    event's environment and tags, its finding's category) matches on category and labels;
    a run that fails is escalated on the issue itself."""
    url = stores.settings.database_url.get_secret_value()
    (issue,) = await query(
        url,
        """INSERT INTO mendline.issues (service, primary_hash, title, level, level_rank,
                                        first_seen, last_seen, times_seen, environments)
           VALUES ('orders', 'h-orders-pool', 'PoolTimeout: no connection', 'error', 4,
                   now() - interval '5 minutes', now(), 40, '{production}')
           RETURNING id""",
    )
    issue_id = issue["id"]
    (trigger,) = await query(
        url,
        """INSERT INTO mendline.triggers (issue_id, kind, dedup_key, environment, tags)
           VALUES ($1, 'new_issue', 'new:orders-pool', 'production', '{"team": "orders"}')
           RETURNING id""",
        issue_id,
    )
    await query(
        url,
        """INSERT INTO mendline.findings (issue_id, trigger_id, cache_key, analyser,
                                          root_cause, confidence, category, severity,
                                          suggested_fix)
           VALUES ($1, $2, 'k', 'heuristic', 'the pool is exhausted', 0.9,
                   'resource_exhaustion', 'high', 'raise the pool size')""",
        issue_id,
        trigger["id"],
    )
    command = script(tmp_path, "import sys; sys.exit(3)")
    text = (
        '[[remediations]]\nname = "recycle-orders-pool"\n'
        'when = { category = "resource_exhaustion", labels = { "tag:team" = "orders",'
        ' environment = "production" } }\n'
        f"command = {json.dumps(command)}\nrequires_approval = false\nverify = false\n"
        # Another team's remediation does not match.
        '\n[[remediations]]\nname = "flush-payments-cache"\n'
        'when = { labels = { "tag:team" = "payments" } }\n'
        f"command = {json.dumps(command)}\nrequires_approval = false\nverify = false\n"
    )
    done = await worker(stores, text).pass_once()

    assert (done.troubles, done.matched, done.started, done.failed, done.escalated) == (
        1,
        1,
        1,
        1,
        1,
    )
    (run,) = await runs_of(stores)
    assert (run.name, run.subject, run.state) == (
        "recycle-orders-pool",
        f"issue:{issue_id}",
        "failed",
    )
    assert run.trigger == (
        f"issue {issue_id} matched category = resource_exhaustion, environment = production,"
        " tag:team = orders"
    )
    (escalation,) = await query(
        url,
        """SELECT issue_id, environment, tags::text AS tags FROM mendline.triggers
           WHERE kind = 'remediation_failed'""",
    )
    assert (escalation["issue_id"], escalation["environment"]) == (issue_id, "production")
    assert json.loads(escalation["tags"]) == {"team": "orders"}
