"""``mendline remediations`` on the real PostgreSQL, as token users: runs listed (escaped),
approved by an approver and refused to a viewer in one clear line, each approval audited
under the token's user."""

from __future__ import annotations

import pytest

from mendline.schemas.people import SYSTEM_ACTOR
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import append_audit, connect_remediations
from tests.cli_helpers import (
    cli,
    failure,
    json_lines,
    json_object,
    migrated_env,
    token_of,
    usage_error,
)
from tests.db_helpers import query


@pytest.fixture
async def env(fresh_db_url: str) -> dict[str, str]:
    return await migrated_env(fresh_db_url)


async def requested_runs(url: str, *triggers: str) -> list[int]:
    """Runs waiting for a person, as the stage that watches the checks would ask for them."""
    store = await connect_remediations(load_settings(database_url=url), append_audit, "test")
    try:
        runs = [
            await store.request(
                SYSTEM_ACTOR, "restart-api", "check:api", trigger, ["needs approval"], True
            )
            for trigger in triggers
        ]
    finally:
        await store.close()
    return [run.id for run in runs]


async def test_an_approver_approves_a_run_a_viewer_only_sees_it(
    env: dict[str, str], fresh_db_url: str
) -> None:
    (run_id,) = await requested_runs(fresh_db_url, "check api is down")
    viewer = await token_of(env, "vic", "viewer")
    approver = await token_of(env, "ann", "approver")

    (listed,) = json_lines(await cli("remediations", "list", "--json", env=viewer))
    assert (listed["id"], listed["state"], listed["name"], listed["target"]) == (
        run_id,
        "requested",
        "restart-api",
        "check:api",
    )
    shown = await cli("remediations", "list", env=viewer)
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "NAME", "TARGET"]
    assert row.split()[:4] == [str(run_id), "requested", "restart-api", "check:api"]
    assert row.endswith("check api is down: needs approval")

    message, hint = failure(await cli("remediations", "approve", str(run_id), env=viewer))
    assert message == "vic (viewer) may not remediation.run: it needs the role approver"
    assert "set-role" in hint

    approved = json_object(
        await cli("remediations", "approve", str(run_id), "--json", env=approver)
    )
    assert (approved["state"], approved["approved_by"]) == ("approved", "ann")
    again = await cli("remediations", "approve", str(run_id), env=approver)
    message, _ = failure(again)
    assert message.startswith("a remediation run that is approved cannot become approved")
    message, hint = failure(await cli("remediations", "approve", "999", env=approver))
    assert message == "there is no remediation run 999" and "remediations list" in hint

    (audited,) = await query(
        fresh_db_url,
        """SELECT actor_name, actor_auth, actor_token_id, origin FROM mendline.audit_log
           WHERE action = 'remediation.approve'""",
    )
    assert (audited["actor_name"], audited["actor_auth"]) == ("ann", "token")
    assert audited["actor_token_id"] == approver["MENDLINE_TOKEN"][:12]
    assert audited["origin"].startswith("cli@")
    states = json_lines(await cli("remediations", "list", "--json", env=viewer))
    assert [run["state"] for run in states] == ["approved"]


async def test_a_run_is_declined_with_a_reason_and_listed_by_state(
    env: dict[str, str], fresh_db_url: str
) -> None:
    first, second = await requested_runs(fresh_db_url, "check api is down", "again")
    approver = await token_of(env, "ann", "approver")
    declined = await cli(
        "remediations", "decline", str(first), "--reason", "deploy in progress", env=approver
    )
    assert declined.returncode == 0, declined.stderr
    assert declined.stdout == f"declined remediation run {first} (restart-api on check:api)\n"
    waiting = json_lines(
        await cli("remediations", "list", "--state", "requested", "--json", env=approver)
    )
    assert [run["id"] for run in waiting] == [second]
    (refused,) = json_lines(
        await cli("remediations", "list", "--state", "refused", "--json", env=approver)
    )
    assert refused["reasons"][-1] == "declined by ann: deploy in progress"
    assert usage_error(await cli("remediations", "list", "--state", "done", env=approver))


async def test_what_a_run_says_reaches_the_terminal_escaped(
    env: dict[str, str], fresh_db_url: str
) -> None:
    await requested_runs(fresh_db_url, "issue 12: \x1b]0;owned\x07\x1b[2Jdown")
    shown = await cli("remediations", "list", env={**env, "MENDLINE_LOCAL_ROLE": "viewer"})
    assert shown.returncode == 0 and "restart-api" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
