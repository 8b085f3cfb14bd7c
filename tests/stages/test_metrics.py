"""The metrics registry and what the stages tell it: the Prometheus text format (parsed by
Prometheus' own parser), the conventions of the names, counters kept across restarts, and
the readiness /readyz reports."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mendline.ingest import ConsumerStats
from mendline.schemas.checks import CheckResult
from mendline.schemas.finding import LLMCall
from mendline.stages import Metrics, Telemetry, consume
from mendline.stages.alert import METRICS as ALERT_METRICS
from mendline.stages.alert import AlertStats
from mendline.stages.analyze import LLM_METRICS, LLMUsage
from mendline.stages.analyze import METRICS as ANALYZE_METRICS


def parsed(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Family name -> {(sample name, sorted labels): value}, by Prometheus' parser."""
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_counters_gauges_and_histograms_render_as_prometheus_parses_them() -> None:
    metrics = Metrics()
    events = metrics.counter("mendline_x_events_total", "Events.", ("reason",))
    events.inc(reason="invalid")
    events.inc(2, reason="invalid")
    events.inc(reason='a "quoted"\\ value\nwith a newline')
    metrics.gauge("mendline_x_lag", "Lag.", ("topic",)).set(7, topic="errors")
    took = metrics.histogram("mendline_x_seconds", "Seconds.", buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        took.observe(seconds)

    families = parsed(metrics.render())

    assert families["mendline_x_events"] == {
        ("mendline_x_events_total", (("reason", "invalid"),)): 3.0,
        ("mendline_x_events_total", (("reason", 'a "quoted"\\ value\nwith a newline'),)): 1.0,
    }
    assert families["mendline_x_lag"] == {("mendline_x_lag", (("topic", "errors"),)): 7.0}
    histogram = families["mendline_x_seconds"]
    buckets = {dict(k[1])["le"]: v for k, v in histogram.items() if k[0].endswith("_bucket")}
    assert buckets == {"0.1": 2.0, "1.0": 3.0, "+Inf": 4.0}  # cumulative; 0.1 is in le=0.1
    assert histogram[("mendline_x_seconds_count", ())] == 4.0
    assert math.isclose(histogram[("mendline_x_seconds_sum", ())], 3.65)


def test_each_family_has_help_and_type_lines_and_the_text_ends_with_a_newline() -> None:
    metrics = Metrics()
    metrics.counter("mendline_a_total", "A line\nand a second.").inc()
    text = metrics.render()
    assert text.endswith("\n")
    assert text.splitlines()[:3] == [
        "# HELP mendline_a_total A line\\nand a second.",
        "# TYPE mendline_a_total counter",
        "mendline_a_total 1",
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: m.counter("mendline_events", "no _total"), "ends in _total"),
        (lambda m: m.counter("mendline-events_total", "a dash"), "not a Prometheus"),
        (lambda m: m.gauge("mendline_g", "bad label", ("le-x",)), "not a Prometheus"),
        (lambda m: m.histogram("mendline_h", "unsorted", buckets=(1.0, 0.5)), "increasing"),
        (lambda m: m.histogram("mendline_h", "le taken", ("le",)), "buckets"),
    ],
)
def test_names_that_break_the_conventions_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(Metrics())  # type: ignore[operator]


def test_a_family_asked_for_again_is_the_same_and_its_labels_are_checked() -> None:
    metrics = Metrics()
    first = metrics.counter("mendline_b_total", "B.", ("kind",))
    assert metrics.counter("mendline_b_total", "B.", ("kind",)) is first
    with pytest.raises(ValueError, match="already a counter"):
        metrics.gauge("mendline_b_total", "B.", ("kind",))
    with pytest.raises(ValueError, match="takes the labels"):
        first.inc(other="x")
    with pytest.raises(ValueError, match="does not go down"):
        first.inc(-1, kind="x")
    metrics.histogram("mendline_h_seconds", "H.", buckets=(1.0, 2.0))
    with pytest.raises(ValueError, match="has the buckets"):
        metrics.histogram("mendline_h_seconds", "H.", buckets=(1.0, 5.0))


def test_a_reader_that_fails_leaves_the_rest_of_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()

    def broken() -> dict[tuple[str, ...], float]:
        raise RuntimeError("a bug")

    metrics.gauge("mendline_broken", "Broken.").set_function(broken)
    metrics.counter("mendline_fine_total", "Fine.").read_from(lambda: {(): 3})
    families = parsed(metrics.render())
    assert families["mendline_fine"] == {("mendline_fine_total", ()): 3}
    assert families["mendline_broken"] == {}
    assert "reading mendline_broken failed" in caplog.text


def test_a_restarted_stage_counts_on_from_where_it_was() -> None:
    context = Telemetry().stage("consume")
    first = ConsumerStats(received=5, stored=4, dead_lettered={"invalid": 1})
    context.watch(first, consume.METRICS)
    first.received += 1  # read at scrape time, not when watched
    second = ConsumerStats(received=2, stored=2, dead_lettered={"invalid": 1, "not_json": 1})
    context.watch(second, consume.METRICS)  # the stage's next run, after a failure

    families = parsed(context.metrics.render())

    assert families["mendline_events_received"] == {("mendline_events_received_total", ()): 8}
    assert families["mendline_events_stored"] == {("mendline_events_stored_total", ()): 6}
    assert families["mendline_events_dead_lettered"] == {
        ("mendline_events_dead_lettered_total", (("reason", "invalid"),)): 2,
        ("mendline_events_dead_lettered_total", (("reason", "not_json"),)): 1,
    }


def test_every_stage_metric_follows_the_naming_conventions() -> None:
    telemetry = Telemetry()
    telemetry.stage("consume").watch(ConsumerStats(), consume.METRICS)
    telemetry.stage("analyze").watch(LLMUsage(), LLM_METRICS)
    telemetry.stage("alert").watch(AlertStats(), ALERT_METRICS)
    from mendline.stages.analyze import AnalyzeStats

    telemetry.stage("analyze").watch(AnalyzeStats(), ANALYZE_METRICS)
    text = telemetry.metrics.render()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("mendline_"), family.name
        assert family.documentation, family.name
        if family.type == "counter":  # the parser drops the suffix; the text has it
            assert f"# TYPE {family.name}_total counter" in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {
        "mendline_events_received_total",
        "mendline_events_stored_total",
        "mendline_events_duplicate_total",
        "mendline_events_dead_lettered_total",
        "mendline_triggers_total",
        "mendline_findings_total",
        "mendline_llm_requests_total",
        "mendline_llm_tokens_total",
        "mendline_llm_cost_usd_total",
        "mendline_deliveries_total",
        "mendline_stage_ready",
    } <= names


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        ("ok", "ok"),
        ("invalid", "invalid"),
        ("http_429", "http_429"),
        ("http_503", "http_5xx"),
        ("http_404", "http_4xx"),
        ("a new code", "other"),
    ],
)
def test_llm_call_outcomes_become_a_small_fixed_set_of_labels(outcome: str, label: str) -> None:
    usage = LLMUsage()
    usage.count(LLMCall(1, "m", outcome, 10, 5, 0.25, 100))
    assert usage.calls == {label: 1}
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (10, 5, 0.25)


def _result(check: str, success: bool, error_kind: str | None, duration: float) -> CheckResult:
    now = datetime.now(UTC)
    return CheckResult.model_validate(
        {
            "check": check,
            "kind": "http",
            "scheduled_at": now,
            "started_at": now,
            "duration": duration,
            "success": success,
            "error_kind": error_kind,
        }
    )


def test_check_results_are_counted_by_check_and_result_with_their_durations() -> None:
    context = Telemetry().stage("monitor")
    context.count_check(_result("shop", True, None, 0.02))
    context.count_check(_result("shop", False, "timeout", 10.0))
    context.count_check(_result("shop", False, None, 0.03))  # a condition failed
    context.count_check(_result("db", True, None, 0.5))

    families = parsed(context.metrics.render())

    results = {
        dict(labels)["check"] + ":" + dict(labels)["result"]: value
        for (_, labels), value in families["mendline_check_results"].items()
    }
    assert results == {"shop:success": 1, "shop:timeout": 1, "shop:condition": 1, "db:success": 1}
    durations = families["mendline_check_duration_seconds"]
    assert durations[("mendline_check_duration_seconds_count", (("check", "shop"),))] == 3
    assert durations[("mendline_check_duration_seconds_sum", (("check", "db"),))] == 0.5


def test_the_monitors_triggers_add_to_those_the_consumer_made() -> None:
    telemetry = Telemetry()
    telemetry.stage("consume").watch(ConsumerStats(trigger_kinds={"new_issue": 2}), consume.METRICS)
    monitor = telemetry.stage("monitor")
    monitor.count_triggers("health_down")
    monitor.count_triggers("new_issue", 3)  # whoever made them, one count per kind
    triggers = parsed(telemetry.metrics.render())["mendline_triggers"]
    assert triggers == {
        ("mendline_triggers_total", (("kind", "health_down"),)): 1,
        ("mendline_triggers_total", (("kind", "new_issue"),)): 5,
    }


def test_ready_only_when_every_stage_is_and_each_says_why_not() -> None:
    telemetry = Telemetry()
    assert not telemetry.ready()  # no stage: nothing is ready
    consume_context, alert_context = telemetry.stage("consume"), telemetry.stage("alert")
    assert telemetry.readiness() == {"alert": "starting", "consume": "starting"}
    consume_context.ready()
    alert_context.not_ready("connecting to PostgreSQL")
    assert not telemetry.ready()
    waiting: list[str | None] = ["connecting to Kafka"]
    alert_context.ready_when(lambda: waiting[0])  # asked at each probe
    assert telemetry.readiness()["alert"] == "connecting to Kafka"
    waiting[0] = None
    assert telemetry.ready()
    families = parsed(telemetry.metrics.render())
    assert families["mendline_stage_ready"] == {
        ("mendline_stage_ready", (("stage", "alert"),)): 1,
        ("mendline_stage_ready", (("stage", "consume"),)): 1,
    }


def test_a_readiness_that_cannot_be_read_is_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()

    def broken() -> str | None:
        raise RuntimeError("a bug")

    telemetry.stage("consume").ready_when(broken)
    assert telemetry.readiness() == {"consume": "readiness unknown"}
    assert not telemetry.ready()
    assert "the consume stage's readiness could not be read" in caplog.text
