"""The analysis stage against real PostgreSQL and a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mendline.devstack import EmbeddedPostgres
from mendline.sinks.postgres import TRIGGERS_CHANNEL
from mendline.stages.analyze import AnalyzeStats
from tests.db_helpers import RESPONDER, issue_actions, query
from tests.llm_server import FakeLLM, Reply

from .event_factory import encode
from .kafka_helpers import produce
from .stage_helpers import (
    analyze_settings,
    consume_settings,
    ingest,
    issue_events,
    running_consumer,
    wait_until,
    workers,
)

pytestmark = pytest.mark.integration


def analysed(url: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await query(url, "SELECT count(*) AS n FROM mendline.findings")
        return rows[0]["n"] >= n

    return check


async def test_every_new_issue_gets_one_llm_finding(fresh_db_url: str, llm: FakeLLM) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(5)))
    async with workers(settings) as (worker,):
        await wait_until(analysed(fresh_db_url, 5), 30, "5 findings")
        await asyncio.sleep(0.5)  # nothing more should come
    rows = await query(
        fresh_db_url,
        """SELECT t.id, t.analysed_at, f.analyser, f.model, f.prompt_tokens, f.root_cause
           FROM mendline.triggers t JOIN mendline.findings f ON f.trigger_id = t.id""",
    )
    assert len(rows) == 5
    assert all(r["analysed_at"] is not None and r["analyser"] == "llm" for r in rows)
    assert {r["model"] for r in rows} == {"test-model-1"}
    assert len(llm.requests) == 5  # one call per trigger, never per event
    view = await query(fresh_db_url, "SELECT * FROM mendline.issue_findings")
    assert len(view) == 5 and all(v["analyser"] == "llm" for v in view)
    usage = await query(fresh_db_url, "SELECT calls, tokens FROM mendline.llm_usage_daily")
    assert [(u["calls"], u["tokens"]) for u in usage] == [(5, 5 * 160)]
    assert worker.stats.analysed == 5 and worker.stats.fallbacks == 0


async def test_without_an_llm_the_heuristic_analyser_answers(fresh_db_url: str) -> None:
    settings = analyze_settings(fresh_db_url)
    await ingest(settings, issue_events(range(3)))
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 3), 30, "3 findings")
    rows = await query(fresh_db_url, "SELECT analyser, category, root_cause FROM mendline.findings")
    assert {r["analyser"] for r in rows} == {"heuristic"}
    assert {r["category"] for r in rows} == {"bad_input"}  # int('x0') in every one


async def test_two_workers_share_the_queue_without_analysing_anything_twice(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    llm.default = Reply.finding()
    llm.default.delay = 0.2
    settings = analyze_settings(fresh_db_url, llm, llm_concurrency=3)
    await ingest(settings, issue_events(range(20), per_issue=1))
    async with workers(settings, 2) as pair:
        await wait_until(analysed(fresh_db_url, 20), 60, "20 findings")
        await asyncio.sleep(0.5)
    assert len(llm.requests) == 20
    issues = [json.loads(r["raw"])["messages"][1]["content"].split(",")[0] for r in llm.requests]
    assert len(set(issues)) == 20  # no issue was sent twice
    rows = await query(
        fresh_db_url, "SELECT count(*) AS n, count(DISTINCT trigger_id) AS t FROM mendline.findings"
    )
    assert (rows[0]["n"], rows[0]["t"]) == (20, 20)
    assert all(w.stats.analysed > 0 for w in pair)  # both took part


async def test_a_regression_of_the_same_release_is_served_from_the_stored_finding(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(1), release="1.0.0"))
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 1), 30, "the first finding")
        async with issue_actions(fresh_db_url) as actions:
            await actions.resolve(RESPONDER, 1, "fixed the parser")
            await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))
            await wait_until(analysed(fresh_db_url, 2), 30, "the regression's finding")
            assert len(llm.requests) == 1  # served from the stored finding

            await actions.resolve(RESPONDER, 1, None)
            await ingest(settings, issue_events(range(1), per_issue=1, release="2.0.0"))
            await wait_until(analysed(fresh_db_url, 3), 30, "the new release's finding")
    assert len(llm.requests) == 2  # a new release is analysed again
    rows = await query(
        fresh_db_url,
        """SELECT t.kind, f.cached_from, f.prompt_tokens FROM mendline.findings f
           JOIN mendline.triggers t ON t.id = f.trigger_id ORDER BY f.id""",
    )
    assert [r["kind"] for r in rows] == ["new_issue", "regression", "regression"]
    assert rows[1]["cached_from"] is not None and rows[1]["prompt_tokens"] is None
    assert rows[2]["cached_from"] is None


async def test_verdicts_and_resolution_notes_reach_later_similar_issues(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(2)))
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 2), 30, "two findings")
        (first,) = await query(fresh_db_url, "SELECT min(id) AS id FROM mendline.findings")
        async with issue_actions(fresh_db_url) as actions:
            note = "the mobile client sends 'x' for an empty cart"
            await actions.mark_finding(RESPONDER, first["id"], "wrong", note)
            await actions.resolve(RESPONDER, 2, "rejected non-numeric quantities with a 400")
        await ingest(settings, issue_events(range(2, 3)))
        await wait_until(analysed(fresh_db_url, 3), 30, "the third finding")
    prompt = llm.bodies()[-1]["messages"][1]["content"]
    assert "Similar past issues" in prompt
    assert "marked this finding WRONG: the mobile client sends 'x' for an empty cart" in prompt
    assert "rejected non-numeric quantities with a 400" in prompt
    stored = await query(
        fresh_db_url, "SELECT prompt FROM mendline.findings ORDER BY id DESC LIMIT 1"
    )
    assert json.loads(stored[0]["prompt"])[1]["content"] == prompt  # kept for audit


async def test_the_daily_budget_holds_across_workers(fresh_db_url: str, llm: FakeLLM) -> None:
    settings = analyze_settings(fresh_db_url, llm, llm_daily_token_budget=200, llm_concurrency=1)
    await ingest(settings, issue_events(range(3), per_issue=1))
    async with workers(settings, 2):
        await wait_until(analysed(fresh_db_url, 3), 30, "3 findings")
    rows = await query(
        fresh_db_url, "SELECT analyser, fallback_code FROM mendline.findings ORDER BY id"
    )
    # 160 tokens a call: the first (or the first two, started together) spend the budget.
    assert 1 <= len(llm.requests) <= 2
    fallbacks = [r for r in rows if r["analyser"] == "heuristic"]
    assert len(fallbacks) == 3 - len(llm.requests)
    assert {r["fallback_code"] for r in fallbacks} == {"budget_spent"}


async def test_a_worker_killed_mid_call_leaves_its_trigger_to_be_retried(
    fresh_db_url: str, llm: FakeLLM, tmp_path: Any
) -> None:
    settings = analyze_settings(fresh_db_url, llm, analyze_lease=2.0)
    await ingest(settings, issue_events(range(1), per_issue=1))
    llm.default = Reply.finding()
    llm.default.delay = 60  # the call never ends while the worker lives
    env = {
        **os.environ,
        "MENDLINE_DATABASE_URL": fresh_db_url,
        "MENDLINE_LLM_BASE_URL": llm.url,
        "MENDLINE_ANALYZE_LEASE": "2",
        "MENDLINE_ANALYZE_POLL_INTERVAL": "0.2",
    }
    with (tmp_path / "analyze.log").open("wb") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 - started once, killed below
            [sys.executable, "-m", "mendline", "analyze"], env=env, stderr=log
        )
        try:
            assert await asyncio.to_thread(llm.received.wait, 30), "the worker made no call"
            await asyncio.sleep(3)  # longer than the lease: the worker renews it while alive
            rows = await query(
                fresh_db_url, "SELECT analysis_lease_until > now() AS held FROM mendline.triggers"
            )
            assert rows[0]["held"]
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
    llm.default = Reply.finding()
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 1), 30, "the finding after the kill")
    rows = await query(
        fresh_db_url,
        """SELECT t.analysis_attempts, f.analyser FROM mendline.triggers t
           JOIN mendline.findings f ON f.trigger_id = t.id""",
    )
    assert [(r["analysis_attempts"], r["analyser"]) for r in rows] == [(2, "llm")]
    assert len(llm.requests) == 2


async def test_stats_count_what_a_worker_did(fresh_db_url: str, llm: FakeLLM) -> None:
    llm.default = Reply.error(500)
    settings = analyze_settings(fresh_db_url, llm, llm_max_retries=0)
    await ingest(settings, issue_events(range(2), per_issue=1))
    async with workers(settings) as (worker,):
        await wait_until(analysed(fresh_db_url, 2), 30, "2 findings")
    stats: AnalyzeStats = worker.stats
    assert (stats.claimed, stats.analysed, stats.fallbacks, stats.errors) == (2, 2, 2, 0)
    assert stats.fallback_codes == {"llm_http_error": 2}
    view = await query(fresh_db_url, "SELECT fallback_code FROM mendline.issue_findings")
    assert [r["fallback_code"] for r in view] == ["llm_http_error"] * 2


async def test_a_trigger_claimed_too_often_gets_the_heuristic_finding_without_a_call(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(1), per_issue=1))
    # As workers killed mid-call five times would have left it.
    await query(fresh_db_url, "UPDATE mendline.triggers SET analysis_attempts = 5")
    async with workers(settings) as (worker,):
        await wait_until(analysed(fresh_db_url, 1), 30, "the finding")
    rows = await query(fresh_db_url, "SELECT analyser, fallback_code FROM mendline.findings")
    assert [tuple(r) for r in rows] == [("heuristic", "abandoned_claim")]
    assert llm.requests == []
    assert worker.stats.fallback_codes == {"abandoned_claim": 1}


async def test_a_finding_postgres_refuses_is_replaced_by_the_heuristic_one(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(1), per_issue=1))
    # PostgreSQL refusing the LLM's finding, as it would one it cannot hold.
    await query(
        fresh_db_url,
        "ALTER TABLE mendline.findings ADD CONSTRAINT no_llm CHECK (analyser <> 'llm')",
    )
    async with workers(settings) as (worker,):
        await wait_until(analysed(fresh_db_url, 1), 30, "the finding")
    rows = await query(fresh_db_url, "SELECT analyser, fallback_code FROM mendline.findings")
    assert [tuple(r) for r in rows] == [("heuristic", "unstorable")]
    assert len(llm.requests) == 1  # not asked again and again
    assert worker.stats.fallback_codes == {"unstorable": 1}


async def test_postgres_down_pauses_the_worker_and_keeps_the_finding_in_flight(
    postgres_factory: Callable[..., EmbeddedPostgres], llm: FakeLLM
) -> None:
    server = postgres_factory()
    settings = analyze_settings(server.url, llm).model_copy(update={"analyze_poll_interval": 60.0})
    await ingest(settings, issue_events(range(1), per_issue=1))
    llm.default = Reply.finding()
    llm.default.delay = 1.5  # the database goes down while the LLM is thinking
    async with workers(settings) as (worker,):
        assert await asyncio.to_thread(llm.received.wait, 30)
        server.stop()
        await asyncio.sleep(3)  # the answer came back meanwhile; the claim loop failed too
        server.start()
        await wait_until(analysed(server.url, 1), 60, "the finding kept through the outage")
        llm.default = Reply.finding()
        await wait_until(lambda: listening(server.url), 20, "the worker listening again")
        await ingest(settings, issue_events(range(1, 3), per_issue=1))
        # Woken by a NOTIFY on the new LISTEN connection, not by the 60 s poll.
        await wait_until(analysed(server.url, 3), 20, "work after the outage")
    assert len(llm.requests) == 3  # the answer was not thrown away and asked for again
    assert worker.stats.analysed == 3
    calls = await query(server.url, "SELECT count(*) AS n FROM mendline.llm_calls")
    assert calls[0]["n"] == 3  # the call made during the outage was recorded afterwards


async def listening(url: str) -> bool:
    """Whether a session on the database LISTENs for new triggers (its last statement)."""
    rows = await query(
        url,
        "SELECT count(*) AS n FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
        TRIGGERS_CHANNEL,
    )
    return rows[0]["n"] > 0


async def test_from_kafka_to_findings(
    kafka_bootstrap: str, fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = consume_settings(
        kafka_bootstrap, fresh_db_url, llm_base_url=llm.url, analyze_poll_interval=60.0
    )
    events = issue_events(range(4), per_issue=5)
    async with running_consumer(settings), workers(settings):
        await produce(kafka_bootstrap, settings.errors_topic, [encode(e) for e in events])
        # Woken by the ingest's NOTIFY: the 60 s poll would not find them in time.
        await wait_until(analysed(fresh_db_url, 4), 30, "a finding per issue")
    rows = await query(
        fresh_db_url,
        "SELECT issue_id, times_seen, analyser FROM mendline.issue_findings ORDER BY issue_id",
    )
    assert [(r["times_seen"], r["analyser"]) for r in rows] == [(5, "llm")] * 4
    assert len(llm.requests) == 4


async def test_a_trigger_of_a_merged_issue_is_analysed_as_the_issue_it_went_into(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(2), per_issue=2))
    async with issue_actions(fresh_db_url) as actions:
        await actions.merge(RESPONDER, 1, 2)  # before any analysis: issue 2's trigger is pending
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 2), 30, "both triggers analysed")
    rows = await query(
        fresh_db_url, "SELECT issue_id, cached_from FROM mendline.findings ORDER BY id"
    )
    assert {r["issue_id"] for r in rows} == {1}  # never the merged one, with no events
    assert len(llm.requests) == 1  # the second was served: same fingerprint and release
    assert "exception_chain_root_cause_first" in llm.bodies()[0]["messages"][1]["content"]


async def test_a_served_finding_marked_wrong_is_not_served_again(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    settings = analyze_settings(fresh_db_url, llm)
    events = issue_events(range(1), per_issue=1, release="1.0.0")
    await ingest(settings, events)
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 1), 30, "the first finding")
        async with issue_actions(fresh_db_url) as actions:
            await actions.resolve(RESPONDER, 1, None)
            await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))
            await wait_until(analysed(fresh_db_url, 2), 30, "the served one")
            (served,) = await query(fresh_db_url, "SELECT max(id) AS id FROM mendline.findings")
            note = "not a parsing problem at all"
            await actions.mark_finding(RESPONDER, served["id"], "wrong", note)
            await actions.resolve(RESPONDER, 1, None)
            await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))
            await wait_until(analysed(fresh_db_url, 3), 30, "a fresh analysis")
    assert len(llm.requests) == 2
    rows = await query(
        fresh_db_url, "SELECT cached_from, verdict FROM mendline.findings ORDER BY id"
    )
    assert [(r["cached_from"], r["verdict"]) for r in rows] == [
        (None, "wrong"),  # the verdict holds for the answer it was served from
        (1, "wrong"),
        (None, None),
    ]


async def test_an_answer_postgres_would_refuse_is_stored_cleaned(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    llm.default = Reply.finding(root_cause="a NUL \u0000 in the answer", evidence=[])
    llm.default.usage = (2**40, 7)  # a server reporting nonsense
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(1), per_issue=1))
    async with workers(settings):
        await wait_until(analysed(fresh_db_url, 1), 30, "the finding")
    rows = await query(
        fresh_db_url, "SELECT analyser, root_cause, prompt_tokens FROM mendline.findings"
    )
    assert rows[0]["analyser"] == "llm"
    assert rows[0]["root_cause"] == "a NUL \ufffd in the answer"
    assert rows[0]["prompt_tokens"] == 2**31 - 1
    assert len(llm.requests) == 1
    calls = await query(fresh_db_url, "SELECT prompt_tokens FROM mendline.llm_calls")
    assert [c["prompt_tokens"] for c in calls] == [2**31 - 1]


async def test_a_clean_stop_gives_back_what_is_unfinished(fresh_db_url: str, llm: FakeLLM) -> None:
    llm.default = Reply.finding()
    llm.default.delay = 5
    settings = analyze_settings(fresh_db_url, llm)
    await ingest(settings, issue_events(range(1), per_issue=1))
    async with workers(settings, grace=0.5):
        assert await asyncio.to_thread(llm.received.wait, 30)
    rows = await query(
        fresh_db_url,
        "SELECT analysed_at, analysis_owner, analysis_lease_until, analysis_attempts"
        " FROM mendline.triggers",
    )
    assert [tuple(r) for r in rows] == [(None, None, None, 0)]  # at once claimable again
    calls = await query(fresh_db_url, "SELECT outcome, prompt_tokens FROM mendline.llm_calls")
    assert [c["outcome"] for c in calls] == ["cancelled"]  # the abandoned call is counted
    assert calls[0]["prompt_tokens"] > 0


async def test_two_workers_ask_the_llm_once_for_one_fingerprint_and_release(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    llm.default = Reply.finding()
    llm.default.delay = 1.0  # both triggers are claimed while the first call runs
    settings = analyze_settings(fresh_db_url, llm, llm_concurrency=1)
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))
    async with issue_actions(fresh_db_url) as actions:
        await actions.resolve(RESPONDER, 1, None)
    await ingest(settings, issue_events(range(1), per_issue=1, release="1.0.0"))  # a regression
    kinds = await query(fresh_db_url, "SELECT kind FROM mendline.triggers ORDER BY id")
    assert [r["kind"] for r in kinds] == ["new_issue", "resolved", "regression"]
    async with workers(settings, 2) as pair:
        await wait_until(analysed(fresh_db_url, 2), 30, "2 findings")
        await asyncio.sleep(0.5)
    assert len(llm.requests) == 1
    assert sorted(w.stats.claimed for w in pair) == [1, 1]  # one trigger each, at once
    rows = await query(
        fresh_db_url, "SELECT analyser, cached_from FROM mendline.findings ORDER BY id"
    )
    assert [r["analyser"] for r in rows] == ["llm", "llm"]
    assert [r["cached_from"] is None for r in rows] == [True, False]  # the second was served
    left = await query(fresh_db_url, "SELECT count(*) AS n FROM mendline.analyses_in_flight")
    assert left[0]["n"] == 0


async def test_concurrent_workers_stay_within_the_daily_budget(
    fresh_db_url: str, llm: FakeLLM
) -> None:
    llm.default = Reply.finding()
    llm.default.delay = 0.5
    # 160 tokens a call: room for 2 calls, asked for by 3 workers of 2 calls at once each.
    settings = analyze_settings(
        fresh_db_url, llm, llm_daily_token_budget=2 * 160, llm_concurrency=2
    )
    await ingest(settings, issue_events(range(8), per_issue=1))
    async with workers(settings, 3):
        await wait_until(analysed(fresh_db_url, 8), 60, "8 findings")
    assert 1 <= len(llm.requests) <= 2
    assert llm.max_in_flight == 1  # a call's reservation leaves no room for another
    rows = await query(fresh_db_url, "SELECT analyser, fallback_code FROM mendline.findings")
    fallbacks = [r for r in rows if r["analyser"] == "heuristic"]
    assert len(fallbacks) == 8 - len(llm.requests)
    assert {r["fallback_code"] for r in fallbacks} == {"budget_spent"}
    spent = await query(fresh_db_url, "SELECT tokens FROM mendline.llm_usage_daily")
    assert spent[0]["tokens"] <= 2 * 160
    left = await query(fresh_db_url, "SELECT count(*) AS n FROM mendline.llm_reservations")
    assert left[0]["n"] == 0  # every reservation settled


async def test_an_outage_is_one_warning_and_one_line_when_it_is_over(
    postgres_factory: Callable[..., EmbeddedPostgres], caplog: pytest.LogCaptureFixture
) -> None:
    server = postgres_factory()
    settings = analyze_settings(server.url).model_copy(update={"analyze_poll_interval": 0.2})
    await ingest(settings, issue_events(range(1), per_issue=1))
    caplog.set_level(logging.INFO, logger="mendline")
    async with workers(settings):
        await wait_until(analysed(server.url, 1), 30, "the first finding")
        server.stop()
        # Several retries: 0.5 s, then a second each (outage_retry_max).
        await asyncio.sleep(3 * settings.outage_retry_max)
        server.start()
        await ingest(settings, issue_events(range(1, 2), per_issue=1))
        await wait_until(analysed(server.url, 2), 60, "work after the outage")
    said = [r for r in caplog.records if r.name == "mendline.analyze" and r.levelno >= 30]
    down = [r for r in said if "PostgreSQL unavailable" in r.getMessage()]
    back = [r for r in said if "PostgreSQL is back after" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1, [r.getMessage() for r in said]
    assert all(r.exc_info is None for r in said)  # no traceback for an outage
