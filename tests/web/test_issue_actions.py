"""The issue page's actions through the served dashboard: each one done for a responder from
the page (303 back), from htmx (its fragment) and from the API (JSON), with its audit row;
refused to a viewer (403, nothing changed, no button shown) and in read-only mode; the
finding's verdict and the re-analysis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.db_helpers import query
from tests.web.issues_helpers import (
    audit_rows,
    element,
    seed_issue_page,
    seed_issues,
)
from tests.web.web_helpers import ServedWeb, served_web

pytestmark = pytest.mark.integration

ORIGIN = "web@127.0.0.1"
#: Every button of the issue page that changes something, by its id.
ACTION_BUTTONS = (
    "action-resolve",
    "action-resolve-next",
    "action-ignore",
    "action-merge",
    "action-reanalyse",
    "action-assign",
    "action-comment",
    "verdict-right",
    "verdict-wrong",
)


async def issue_row(url: str, issue_id: int) -> dict[str, Any]:
    rows = await query(
        url,
        """SELECT status, substatus, resolution, resolution_note, resolved_in_release,
                  ignore_until, ignore_until_seen, ignore_per_hour, assignee, merged_into,
                  times_seen
           FROM mendline.issues WHERE id = $1""",
        issue_id,
    )
    return dict(rows[0])


async def test_a_responder_resolves_ignores_and_reopens_from_the_page(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 2)
    async with web.client("responder") as client:
        page = (await client.get("/issues/1")).text
        for button in ("action-resolve", "action-ignore", "action-merge", "action-reanalyse"):
            assert element(page, button) is not None, button
        resolved = await client.post("/issues/1/resolve", data={"note": "fixed the parser"})
        assert resolved.status_code == 303 and resolved.headers["location"] == "/issues/1"
        row = await issue_row(web.database_url, 1)
        assert (row["status"], row["resolution"], row["resolution_note"]) == (
            "resolved",
            "now",
            "fixed the parser",
        )
        shown = (await client.get("/issues/1")).text
        assert 'id="issue-state">resolved by responder' in shown
        assert element(shown, "action-resolve") is None  # resolved: reopen instead
        next_release = await client.post("/issues/2/resolve", data={"in_next_release": "1"})
        assert next_release.status_code == 303
        row = await issue_row(web.database_url, 2)
        assert (row["resolution"], row["resolved_in_release"]) == ("next_release", "1.0")
        ignored = await client.post(
            "/issues/1/ignore", data={"for": "", "until_events": "10", "until_rate": ""}
        )
        assert ignored.status_code == 303
        row = await issue_row(web.database_url, 1)
        assert (row["status"], row["ignore_until_seen"]) == ("ignored", row["times_seen"] + 10)
        shown = (await client.get("/issues/1")).text
        assert 'id="issue-state">ignored until 10 more events' in shown
        timed = await client.post("/api/v1/issues/1/ignore", json={"for": "2h"})
        assert timed.status_code == 200
        assert timed.json()["changed"] is True and timed.json()["until"].startswith("until ")
        assert timed.json()["issue"]["ignore_until"] is not None
        reopened = await client.post("/issues/1/reopen")
        assert reopened.status_code == 303
        assert (await issue_row(web.database_url, 1))["status"] == "unresolved"
        again = await client.post("/api/v1/issues/1/reopen", json={})
        assert again.json()["changed"] is False
    assert [
        (r["action"], r["target"], r["actor_name"], r["origin"])
        for r in await audit_rows(web.database_url, "issue.resolve")
    ] == [
        ("issue.resolve", "issue:1", "responder", ORIGIN),
        ("issue.resolve", "issue:2", "responder", ORIGIN),
    ]
    ignores = await audit_rows(web.database_url, "issue.ignore")
    assert len(ignores) == 2
    assert json.loads(ignores[0]["after"])["until"] == "until 10 more events"
    assert len(await audit_rows(web.database_url, "issue.reopen")) == 1


async def test_a_responder_assigns_comments_merges_and_unmerges(web: ServedWeb) -> None:
    await seed_issues(web.database_url, 2)
    async with web.client("responder") as client:
        assigned = await client.post("/issues/1/assign", data={"assignee": "user:viewer"})
        assert assigned.status_code == 303
        assert (await issue_row(web.database_url, 1))["assignee"] == "user:viewer"
        nobody = await client.post("/api/v1/issues/1/assign", json={"assignee": "user:ghost"})
        assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "user_not_found"
        unassigned = await client.post("/api/v1/issues/1/unassign", json={})
        assert unassigned.json()["changed"] is True and unassigned.json()["assignee"] is None
        commented = await client.post("/issues/1/comment", data={"body": "on it <b>now</b>"})
        assert commented.status_code == 303
        empty = await client.post("/api/v1/issues/1/comment", json={"body": "   "})
        assert empty.status_code == 400
        page = (await client.get("/issues/1")).text
        assert "on it &lt;b&gt;now&lt;/b&gt;" in page
        merged = await client.post("/issues/2/merge", data={"into": "1"})
        assert merged.status_code == 303 and merged.headers["location"] == "/issues/1"
        row = await issue_row(web.database_url, 2)
        assert (row["status"], row["merged_into"]) == ("merged", 1)
        merged_page = (await client.get("/issues/2")).text
        assert 'id="issue-state">merged into issue #1' in merged_page
        assert element(merged_page, "action-resolve") is None
        self_merge = await client.post("/api/v1/issues/1/merge", json={"into": 1})
        assert self_merge.status_code == 404
        no_target = await client.post("/api/v1/issues/1/merge", json={})
        assert no_target.status_code == 400
        unmerged = await client.post("/api/v1/issues/2/unmerge", json={})
        assert unmerged.status_code == 200
        assert unmerged.json()["taken_from"] == 1 and unmerged.json()["events"] == 1
        assert (await issue_row(web.database_url, 2))["status"] == "unresolved"
    for action, target in (
        ("issue.assign", "issue:1"),
        ("issue.comment", "issue:1"),
        ("issue.merge", "issue:2"),
        ("issue.unmerge", "issue:2"),
    ):
        rows = await audit_rows(web.database_url, action)
        assert rows and all(
            (r["target"], r["actor_name"], r["origin"]) == (target, "responder", ORIGIN)
            for r in rows
        ), action
    assert len(await audit_rows(web.database_url, "issue.assign")) == 2


async def test_htmx_gets_the_fragment_its_action_changed(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    htmx = {"HX-Request": "true"}
    async with web.client("responder") as client:
        resolved = await client.post(f"/issues/{seed.issue_id}/resolve", data={}, headers=htmx)
        assert resolved.status_code == 200
        assert resolved.text.lstrip().startswith('<section class="card issue-header"')
        assert 'id="issue-status">resolved</span>' in resolved.text
        judged = await client.post(
            f"/findings/{seed.finding_ids[-1]}/verdict",
            data={"verdict": "wrong", "note": "it was the <cache>"},
            headers=htmx,
        )
        assert judged.status_code == 200
        assert judged.text.lstrip().startswith('<section class="card" id="finding"')
        assert "Judged <strong>wrong</strong>: it was the &lt;cache&gt;" in judged.text
        commented = await client.post(
            f"/issues/{seed.issue_id}/comment", data={"body": "second"}, headers=htmx
        )
        assert commented.text.lstrip().startswith('<div id="activity"')
        assert "second" in commented.text


async def test_verdicts_on_a_finding_from_the_page_and_the_api(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    finding = seed.finding_ids[-1]
    async with web.client("responder") as client:
        page = (await client.get(f"/issues/{seed.issue_id}")).text
        form = element(page, "verdict-form")
        assert form is not None and form["action"] == f"/findings/{finding}/verdict"
        assert element(page, "verdict-right") is not None
        right = await client.post(f"/findings/{finding}/verdict", data={"verdict": "right"})
        assert right.status_code == 303 and right.headers["location"] == f"/issues/{seed.issue_id}"
        assert (
            'id="verdict-given">Judged <strong>right</strong>'
            in (await client.get(f"/issues/{seed.issue_id}")).text
        )
        wrong = await client.post(
            f"/api/v1/findings/{finding}/verdict", json={"verdict": "wrong", "note": "no"}
        )
        assert wrong.status_code == 200
        assert wrong.json()["finding"]["verdict"] == "wrong"
        assert wrong.json()["finding"]["verdict_note"] == "no" and wrong.json()["changed"] is True
        bad = await client.post(f"/api/v1/findings/{finding}/verdict", json={"verdict": "maybe"})
        assert bad.status_code == 400
        missing = await client.post("/api/v1/findings/999/verdict", json={"verdict": "right"})
        assert missing.status_code == 404
    marks = await audit_rows(web.database_url, "finding.mark")
    assert [(r["target"], json.loads(r["after"])["verdict"], r["origin"]) for r in marks] == [
        (f"finding:{finding}", "right", ORIGIN),
        (f"finding:{finding}", "wrong", ORIGIN),
    ]


async def test_a_reanalysis_stores_a_fresh_finding_and_is_audited(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    async with web.client("responder") as client:
        asked = await client.post(f"/api/v1/issues/{seed.issue_id}/reanalyse", json={})
        assert asked.status_code == 202
        assert asked.json()["queued"] is True
        assert asked.json()["previous_finding"] == seed.finding_ids[-1]
        for _ in range(200):  # the heuristic analyser: well within a few seconds
            newest = await query(
                web.database_url,
                "SELECT id, analyser, trigger_id FROM mendline.findings WHERE issue_id = $1"
                " ORDER BY id DESC LIMIT 1",
                seed.issue_id,
            )
            if newest[0]["id"] != seed.finding_ids[-1]:
                break
            await asyncio.sleep(0.05)
        assert newest[0]["id"] > seed.finding_ids[-1]
        assert (newest[0]["analyser"], newest[0]["trigger_id"]) == ("heuristic", None)
        page = (await client.get(f"/issues/{seed.issue_id}")).text
        assert f'data-finding-id="{newest[0]["id"]}"' in page
        from_page = await client.post(f"/issues/{seed.issue_id}/reanalyse")
        assert from_page.status_code == 303
    rows = await audit_rows(web.database_url, "issue.reanalyse")
    assert [(r["target"], r["actor_name"], r["origin"]) for r in rows[:1]] == [
        (f"issue:{seed.issue_id}", "responder", ORIGIN)
    ]
    assert json.loads(rows[0]["before"]) == {"finding_id": seed.finding_ids[-1]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/issues/1/resolve", {"note": "x"}),
        ("/issues/1/ignore", {"for": "1h"}),
        ("/issues/1/reopen", {}),
        ("/issues/1/merge", {"into": "2"}),
        ("/issues/1/unmerge", {}),
        ("/issues/1/assign", {"assignee": "user:viewer"}),
        ("/issues/1/unassign", {}),
        ("/issues/1/comment", {"body": "hello"}),
        ("/issues/1/reanalyse", {}),
        ("/findings/2/verdict", {"verdict": "right"}),
    ],
)
async def test_a_viewer_is_refused_every_action_and_nothing_changes(
    web: ServedWeb, path: str, body: dict[str, str]
) -> None:
    seed = await seed_issue_page(web.database_url)
    before = await issue_row(web.database_url, seed.issue_id)
    findings = await query(
        web.database_url, "SELECT id, verdict FROM mendline.findings ORDER BY id"
    )
    audited = await query(web.database_url, "SELECT count(*) AS n FROM mendline.audit_log")
    async with web.client("viewer") as client:
        page = (await client.get(f"/issues/{seed.issue_id}")).text
        assert all(element(page, button) is None for button in ACTION_BUTTONS)
        form = await client.post(path, data=body)
        assert form.status_code == 403 and "needs the role responder" in form.text
        api = await client.post(f"/api/v1{path}", json=body)
        assert api.status_code == 403 and api.json()["error"]["code"] == "permission_denied"
    assert await issue_row(web.database_url, seed.issue_id) == before
    assert (
        await query(web.database_url, "SELECT id, verdict FROM mendline.findings ORDER BY id")
        == findings
    )
    assert await query(web.database_url, "SELECT count(*) AS n FROM mendline.audit_log") == audited


async def test_a_read_only_dashboard_shows_no_action_and_refuses_each(fresh_db_url: str) -> None:
    seed = await seed_issue_page(fresh_db_url)
    before = await issue_row(fresh_db_url, seed.issue_id)
    async with (
        served_web(fresh_db_url, web_read_only=True) as served,
        served.client("admin") as client,
    ):
        page = (await client.get(f"/issues/{seed.issue_id}")).text
        assert 'id="root-cause"' in page
        assert all(element(page, button) is None for button in ACTION_BUTTONS)
        for path, body in (
            (f"/issues/{seed.issue_id}/resolve", {}),
            (f"/issues/{seed.issue_id}/comment", {"body": "x"}),
            (f"/findings/{seed.finding_ids[-1]}/verdict", {"verdict": "right"}),
            (f"/issues/{seed.issue_id}/reanalyse", {}),
        ):
            refused = await client.post(f"/api/v1{path}", json=body)
            assert refused.status_code == 403, path
            assert "read-only" in refused.json()["error"]["message"]
    assert await issue_row(fresh_db_url, seed.issue_id) == before


async def test_re_analyses_beyond_the_processs_limit_are_answered_429(
    web: ServedWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mendline.web import _issues

    monkeypatch.setattr(_issues, "MAX_REANALYSES", 0)  # as if 20 were under way
    seed = await seed_issue_page(web.database_url)
    async with web.client("responder") as client:
        refused = await client.post(f"/api/v1/issues/{seed.issue_id}/reanalyse", json={})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert await audit_rows(web.database_url, "issue.reanalyse") == []  # nothing started
