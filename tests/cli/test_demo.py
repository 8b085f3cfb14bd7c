"""The demo's pieces: its routing file, its screen, its settle test, and its fixes (its fix
policy and git repository, in which the shop's bug is proposed, approved and applied)."""

from __future__ import annotations

import io
import os
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping import culprit, title
from mendline.analyzers.policy import FixCandidate, alert_labels, decide, load_policy
from mendline.analyzers.rootcause import HeuristicAnalyser
from mendline.cli._demo_fix import SOURCE_ROOT, FixSetup, fix_setup, keep_lines
from mendline.cli.demo import SLACK_WEBHOOK_ENV, Progress, demo_routes
from mendline.cli.output import Screen
from mendline.sample_app.shop import gift_wrap_fee
from mendline.schemas.finding import Finding, IssueContext, IssueSummary
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import FindingStore, connect_findings, connect_fixes
from mendline.sinks.routing import check_secrets, load_routes
from mendline.stages.heal import Healer, check
from tests.analyzers.event_helpers import event_of
from tests.cli_helpers import cli, json_object
from tests.db_helpers import query, store_events
from tests.git_helpers import git


def receivers_for(path: Path, severity: str) -> list[str]:
    table = load_routes(path)
    return [name for _, name in table.route(alert_labels(severity=severity, kind="new_issue"))]


def test_the_demo_routes_send_errors_to_slack_and_everything_from_warning_to_email(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(demo_routes(2525))
    assert receivers_for(path, "critical") == ["demo-slack", "demo-email"]
    assert receivers_for(path, "error") == ["demo-slack", "demo-email"]
    assert receivers_for(path, "warning") == ["demo-email"]
    assert receivers_for(path, "info") == []
    table = load_routes(path)
    assert table.receivers["demo-email"].smtp_port == 2525  # type: ignore[union-attr]
    # The only secret is the stand-in's webhook URL, which the demo sets itself.
    assert check_secrets(table, {}) and not check_secrets(table, {SLACK_WEBHOOK_ENV: "http://x"})


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real pseudo-terminal: (the stream the screen writes to, the fd to read it from)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    reader, writer = os.openpty()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def read_all(fd: int) -> str:
    """Everything written so far: a terminal may hand it over in several pieces."""
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_a_terminal_gets_colours_and_one_status_line_redrawn_under_the_story(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, reader = terminal
    screen = Screen(stream, interactive=True)
    screen.status("events 1", 0.1)
    screen.status("events 2", 0.2)
    screen.say("  slack  new issue", "cyan")
    screen.say("plain")
    screen.end_status()
    out = read_all(reader)
    # Each status redraws the line in place; a story line clears it, then the status returns.
    assert out.count("\r\x1b[K") == 4
    assert "\x1b[36m  slack  new issue\x1b[0m" in out  # styled as asked...
    assert "\x1b[K" + "plain" in out  # ...and a line without a style is left plain
    assert out.rstrip().endswith("events 2  (0.2 s)")


def test_no_colour_when_no_color_is_set(
    terminal: tuple[io.TextIOWrapper, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, reader = terminal
    monkeypatch.setenv("NO_COLOR", "1")
    Screen(stream, interactive=True).say("alert", "red")
    assert read_all(reader).replace("\r", "") == "alert\n"


def test_plain_output_prints_progress_when_it_changes_at_most_once_a_second() -> None:
    stream = io.StringIO()
    screen = Screen(stream, interactive=False)
    screen.status("events 1", 0.0)
    screen.status("events 3", 0.5)  # changed, but within a second of the last line: held...
    screen.status("events 4", 0.8)  # ...and replaced by a newer one...
    screen.status("events 4", 1.5)  # ...printed once a second has passed
    screen.status("events 4", 1.7)  # unchanged: not printed again
    screen.status("events 7", 2.0)  # within a second again: held...
    screen.end_status()  # ...and printed at the end, as the last one always is
    lines = stream.getvalue().splitlines()
    assert lines == ["  [  0.0 s] events 1", "  [  1.5 s] events 4", "  [  2.0 s] events 7"]
    assert "\x1b[" not in stream.getvalue()  # no colours, no redrawing


def test_a_reader_that_goes_away_ends_the_story_quietly() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    screen = Screen(Closed(), interactive=False)
    screen.say("one")  # no exception: the demo goes on to clean up
    screen.say("two")


@pytest.mark.parametrize(
    ("progress", "settled", "missing"),
    [
        (Progress(events=9, issues=2, findings=2), False, "only 9 of 10 events were stored"),
        (
            Progress(events=10, issues=2, findings=1),
            False,
            "only 1 of 2 issues have a finding",
        ),
        (
            Progress(events=10, issues=2, findings=2, unsettled=1),
            False,
            "1 alerts were still on their way",
        ),
        (
            Progress(events=10, issues=2, findings=2, pending=3),
            False,
            "3 alerts were still on their way",
        ),
        (Progress(events=10, issues=2, findings=2, delivered=4), True, None),
        (
            Progress(events=10, issues=2, findings=2, patches=1),
            False,
            "only 0 of 1 patches were proposed as fixes",
        ),
        (Progress(events=10, issues=2, findings=2, patches=1, fixes=1), True, None),
    ],
)
def test_the_pipeline_has_settled_only_when_every_stage_is_done(
    progress: Progress, settled: bool, missing: str | None
) -> None:
    assert progress.settled(10, fixing=True) is settled
    if missing is not None:
        assert progress.missing(10, fixing=True) == missing


def test_without_fixing_a_patch_waits_for_no_fix() -> None:
    progress = Progress(events=10, issues=2, findings=2, patches=1)
    assert progress.settled(10) and not progress.settled(10, fixing=True)


# -- the demo's fixes ------------------------------------------------------------------------


def shop_finding() -> tuple[dict[str, Any], Finding]:
    """The event of the shop's gift-wrapping bug, raised by the shop's own code, and the
    heuristic analyser's finding of it."""
    try:
        gift_wrap_fee({"sku": "tee-02", "qty": 1})  # an older mobile app's cart
    except KeyError as exc:
        event = event_of(exc, service="shop", logger="shop.http", message="request_failed")
    else:
        raise AssertionError("the shop's bug is gone")
    summary = IssueSummary(
        id=1, service="shop", title=title(event), culprit=culprit(event), level="error"
    )
    return event, HeuristicAnalyser().diagnose(IssueContext(issue=summary, events=[event]))


async def test_the_demo_policy_maps_the_shops_patch_into_its_repository_for_one_approver(
    tmp_path: Path,
) -> None:
    setup = await fix_setup(tmp_path)
    assert setup is not None
    _, finding = shop_finding()
    assert finding.fix_patch is not None and finding.fix_kind == "guard"
    policy = load_policy(setup.policy_file)
    (repository,) = policy.repositories
    assert (repository.path, repository.base_branch) == (setup.repository, "main")
    assert repository.delivery == "branch"  # nothing leaves the machine
    decision = decide(policy, FixCandidate.of(finding), {})
    assert (decision.verdict, decision.approvals_needed) == ("approval", 1), decision
    assert decision.repository == "shop"
    assert decision.reasons == [
        "fix kind guard is not one of [auto] kinds (style, formatting, import)"
    ]
    # The frame's path (the module's) is the repository's copy of the shop's source, whose
    # lines are the running code's: the patch's line is there, as it says.
    assert decision.mapped_patch is not None
    path = f"{SOURCE_ROOT}shop.py"
    assert decision.mapped_patch.startswith(f"--- a/{path}\n+++ b/{path}\n")
    removed = next(line for line in decision.mapped_patch.splitlines() if line.startswith("-    "))
    hunk = next(line for line in decision.mapped_patch.splitlines() if line.startswith("@@"))
    number = int(hunk.split()[1].removeprefix("-").split(",")[0])
    committed = git(setup.repository, "show", f"main:{path}").splitlines()
    assert committed[number - 1] == removed[1:]
    assert git(setup.repository, "status", "--porcelain") == ""  # all of it committed


def demo_user(url: str, setup: FixSetup) -> dict[str, str]:
    """The environment of a person using ``mendline fix`` on a kept demo, as the demo says:
    its database, its fix policy and work root, as the local OS user (an approver)."""
    return {
        "MENDLINE_DATABASE_URL": url,
        "MENDLINE_TOKEN": "",
        "MENDLINE_LOCAL_ROLE": "approver",
        **setup.environ,
    }


@pytest.mark.integration
async def test_the_heal_stage_proposes_the_shops_fix_and_an_approver_applies_it(
    fresh_db_url: str, tmp_path: Path
) -> None:
    setup = await fix_setup(tmp_path)
    assert setup is not None
    event, finding = shop_finding()
    await store_events(fresh_db_url, [event])
    settings = load_settings(
        database_url=fresh_db_url,
        fix_policy_file=setup.policy_file,
        fix_work_root=setup.work_root,
    )
    findings = await connect_findings(settings, 1)
    try:
        await findings.save(finding, issue_id=1, cache_key="demo")
    finally:
        await findings.pool.close()
    # The heal stage's proposing, as the demo's heal stage does it.
    fixes = await connect_fixes(settings)
    try:
        healer = Healer(settings, check(settings), fixes, FindingStore(fixes.pool))
        (fix,) = await healer.propose_new()
    finally:
        await fixes.pool.close()
    assert (fix.state, fix.decision.verdict, fix.approvals_needed) == ("proposed", "approval", 1)
    embedded = {"MENDLINE_DATABASE_URL": "postgresql://postgres@db/x", "PGPASSFILE": "/p"}
    lines = keep_lines([fix.as_json()], setup, embedded)
    assert f"  mendline fix approve {fix.id}" in lines
    assert all(f"{name}=" in lines[1] for name in [*embedded, *setup.environ])
    # An external database is the user's setting already: its URL is shown redacted.
    (export,) = [line for line in keep_lines([fix.as_json()], setup, {}) if "export" in line]
    assert "MENDLINE_DATABASE_URL" not in export and "MENDLINE_FIX_POLICY_FILE" in export

    # What the demo tells its user to do, with its settings.
    env = demo_user(fresh_db_url, setup)
    approved = await cli("fix", "approve", str(fix.id), env=env)
    assert approved.returncode == 0, approved.stderr
    applied = await cli("fix", "apply", str(fix.id), env=env)
    assert applied.returncode == 0, applied.stderr
    branch = f"mendline/fix-1-{fix.id}"
    assert applied.stdout.rstrip().endswith(f"on {branch}")
    shown = json_object(await cli("fix", "show", str(fix.id), "--json", env=env))
    assert shown["state"] == "applied" and shown["verification"]["passed"] is True
    (command,) = shown["verification"]["commands"]
    assert command["argv"][1:] == ["-m", "py_compile", f"./{SOURCE_ROOT}shop.py"]
    path = f"{SOURCE_ROOT}shop.py"
    fixed = git(setup.repository, "show", f"{branch}:{path}")
    assert 'return GIFT_WRAP_FEE if options.get("gift_wrap") else 0.0' in fixed
    assert 'options["gift_wrap"]' in git(setup.repository, "show", f"main:{path}")
    rows = await query(
        fresh_db_url,
        "SELECT action FROM mendline.audit_log WHERE target = $1 ORDER BY id",
        f"fix:{fix.id}",
    )
    assert [r["action"] for r in rows] == [
        "fix.propose",
        "fix.approve",
        "fix.apply",
        "fix.applied",
    ]


def test_the_demos_dashboard_takes_another_port_when_its_own_is_held() -> None:
    from mendline.cli._demo_web import dashboard_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        other = dashboard_port(taken)
        assert other != taken and other > 0
    assert dashboard_port(taken) == taken  # free again: its own port
