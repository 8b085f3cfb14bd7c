"""The heuristic analyser on health checks: the evidence a down trigger recorded, explained
by the health knowledge base, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from mendline.analyzers.rootcause.heuristic import HEALTH_RULES, HealthRule, HeuristicAnalyser
from mendline.schemas.finding import HealthEvidence, IssueContext, IssueSummary

ANALYSER = HeuristicAnalyser()


def context(level: str = "error", **details: Any) -> IssueContext:
    evidence = {"check": "payments-api", "check_kind": "http", "failures": 3, **details}
    return IssueContext(
        issue=IssueSummary(
            id=5, service="payments-api", title="Downtime: payments-api", level=level
        ),
        trigger="health_down",
        health=HealthEvidence.of(evidence),
    )


def failing(condition: str, observed: str) -> list[dict[str, Any]]:
    return [{"condition": condition, "success": False, "observed": observed}]


URL = "https://payments.example/healthz"
CASES = [
    pytest.param(
        {"error_kind": "refused", "error": "connection refused", "target": "10.0.0.7:5432"},
        ("connection-refused", "dependency_outage_or_timeout", "critical"),
        ("Nothing listens on 10.0.0.7:5432", "process is down"),
        id="refused: nothing listening, the process is down",
    ),
    pytest.param(
        {"error_kind": "timeout", "error": "no answer in 10s", "target": URL},
        ("timeout", "dependency_outage_or_timeout", "high"),
        (f"{URL} did not answer within the check's timeout", "overloaded or hung"),
        id="timeout",
    ),
    pytest.param(
        {"error_kind": "dns", "error": "NXDOMAIN: payments.example", "target": URL},
        ("dns-not-resolved", "configuration", "high"),
        ("does not resolve (NXDOMAIN: payments.example)",),
        id="dns: the name does not resolve",
    ),
    pytest.param(
        {
            "check_kind": "tls",
            "error_kind": "tls",
            "error": "certificate verify failed: certificate has expired",
            "target": "payments.example:443",
        },
        ("certificate-expired", "configuration", "critical"),
        ("certificate of payments.example:443 has expired",),
        id="certificate expired",
    ),
    pytest.param(
        {
            "error_kind": "tls",
            "error": "certificate verify failed: self-signed certificate in certificate chain",
        },
        ("certificate-untrusted", "configuration", "high"),
        ("cannot be verified", "self-signed"),
        id="certificate invalid: not trusted",
    ),
    pytest.param(
        {"error_kind": "tls", "error": "Hostname mismatch, certificate is not valid for 'x'"},
        ("certificate-name-mismatch", "configuration", "high"),
        ("not for that name",),
        id="certificate invalid: another name",
    ),
    pytest.param(
        {
            "check_kind": "tls",
            "target": "payments.example:443",
            "conditions": failing("[CERTIFICATE_EXPIRATION] > 14d", "820800"),
        },
        ("certificate-expiring", "configuration", "high"),
        ("expires in 9d12h", "renewal has not happened"),
        id="certificate expiring: the seconds left, in days and hours",
    ),
    pytest.param(
        {"conditions": failing("[CERTIFICATE_EXPIRATION] > 14d", "9 days")},
        ("certificate-expiring", "configuration", "high"),
        ("expires soon (`[CERTIFICATE_EXPIRATION] > 14d`, observed 9 days)",),
        id="certificate expiring: an observed value that is no number is quoted",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] == 200", "503")},
        ("http-unavailable", "dependency_outage_or_timeout", "high"),
        (f"{URL} answers HTTP 503", "no healthy backend"),
        id="HTTP 503",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] < 400", "502")},
        ("http-bad-gateway", "dependency_outage_or_timeout", "high"),
        ("answers HTTP 502", "application behind it"),
        id="HTTP 502: the proxy is up, the app behind it is not",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] == 200", "500")},
        ("http-server-error", "logic_bug", "high"),
        ("answers HTTP 500", "unhandled error"),
        id="HTTP 5xx",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] == 200", "404")},
        ("http-client-error", "configuration", "medium"),
        ("answers HTTP 404", "moved or removed"),
        id="HTTP 4xx",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] == 200", "401")},
        ("http-auth-refused", "configuration", "medium"),
        ("answers HTTP 401", "credentials"),
        id="HTTP 401: credentials",
    ),
    pytest.param(
        {"target": URL, "conditions": failing("[STATUS] == 200", "301")},
        ("http-unexpected-status", "configuration", "medium"),
        ("answers HTTP 301, not what `[STATUS] == 200` expects", "redirect"),
        id="HTTP 3xx: not the status expected",
    ),
    pytest.param(
        {
            "target": URL,
            "conditions": [
                {"condition": "[STATUS] == 200", "success": True, "observed": "200"},
                {"condition": "[RESPONSE_TIME] < 500", "success": False, "observed": "2300"},
            ],
        },
        ("slow-response", "resource_exhaustion", "medium"),
        ("answers, but slowly: 2300 observed where `[RESPONSE_TIME] < 500` is required",),
        id="slow response: the condition on the response time",
    ),
    pytest.param(
        {
            "check_kind": "postgres",
            "target": "db.internal:5432",
            "conditions": failing("[QUERY_DURATION] < 100", "1840"),
        },
        ("slow-query", "resource_exhaustion", "medium"),
        ("query on db.internal:5432 took 1840", "locks"),
        id="slow query",
    ),
    pytest.param(
        {
            "check_kind": "kafka",
            "target": "orders on group billing",
            "conditions": failing("[LAG] <= 1000", "48210"),
        },
        ("consumer-lag", "resource_exhaustion", "high"),
        ("lags 48210 messages behind", "consumers are down, too few"),
        id="consumer lag",
    ),
    pytest.param(
        {
            "check_kind": "kafka",
            "target": "k1:9092 mendline.errors.dlq",
            "conditions": failing("[RECENT] == 0", "7"),
        },
        ("records-recent", "bad_input", "medium"),
        ("7 records reached k1:9092 mendline.errors.dlq", "are being refused"),
        id="records dead-lettered",
    ),
    pytest.param(
        {"check_kind": "heartbeat", "error_kind": "missed", "error": "no check-in by 03:10"},
        ("heartbeat-missed", "dependency_outage_or_timeout", "high"),
        ("No check-in of payments-api came by its deadline",),
        id="heartbeat missed",
    ),
    pytest.param(
        {"check_kind": "heartbeat", "error_kind": "failed", "error": "disk full on /backup"},
        ("heartbeat-failed", "unknown", "high"),
        ("ran and reported a failure: disk full on /backup.",),
        id="heartbeat failed: the job's own message",
    ),
    pytest.param(
        {"check_kind": "heartbeat", "error_kind": "overran", "error": "ran 2h, max 1h"},
        ("heartbeat-overran", "resource_exhaustion", "medium"),
        ("took longer than its max_runtime",),
        id="heartbeat overran",
    ),
    pytest.param(
        {"error_kind": "auth", "error": "password authentication failed for user mon"},
        ("credentials-refused", "configuration", "high"),
        ("refused the check's credentials",),
        id="credentials refused",
    ),
    pytest.param(
        {
            "error_kind": "refused",
            "error": "connection refused",
            "conditions": failing("[STATUS] == 200", "None"),
        },
        ("connection-refused", "dependency_outage_or_timeout", "critical"),
        ("Nothing listens on what payments-api checks",),
        id="the probe's error comes before the conditions it failed; no target: the check",
    ),
]


@pytest.mark.parametrize(("details", "verdict", "said"), CASES)
def test_a_checks_evidence_is_explained(
    details: dict[str, Any], verdict: tuple[str, str, str], said: tuple[str, ...]
) -> None:
    finding = ANALYSER.diagnose(context(**details))
    assert (finding.rule, finding.category, finding.severity) == verdict
    for words in said:
        assert words in finding.root_cause, finding.root_cause
    assert finding.confidence == 0.7
    assert finding.analyser == "heuristic" and finding.fallback_code is None
    assert finding.suggested_fix and finding.risks == []
    assert finding.evidence and all(
        e.location.startswith("check payments-api") for e in finding.evidence
    )


def test_every_health_rule_is_reached_by_a_case() -> None:
    reached = {case.values[1][0] for case in CASES}  # type: ignore[index]
    left = {rule.id for rule in HEALTH_RULES} - reached
    # The rest are the probe errors with no sub-case of their own.
    assert left == {
        "tls-handshake",
        "unreachable",
        "check-misconfigured",
        "query-failed",
        "http-exchange-failed",
        "http-rate-limited",
        "dns-answer",
        "not-connected",
        "unexpected-body",
        "unexpected-result",
    }


@pytest.mark.parametrize(
    ("details", "confidence", "said"),
    [
        ({"error_kind": "other", "error": "boom"}, 0.25, "is down (3 failures in a row): boom."),
        ({}, 0.15, "is down (3 failures in a row)."),
    ],
)
def test_evidence_no_rule_explains_says_so(
    details: dict[str, Any], confidence: float, said: str
) -> None:
    finding = ANALYSER.diagnose(context(**details))
    assert (finding.rule, finding.category, finding.confidence) == (
        "health-fallback",
        "unknown",
        confidence,
    )
    assert said in finding.root_cause
    assert "No rule of the heuristic knowledge base explains" in finding.root_cause


def test_a_critical_checks_finding_is_at_least_high() -> None:
    slow = {"conditions": failing("[RESPONSE_TIME] < 500", "2300")}
    assert ANALYSER.diagnose(context(**slow)).severity == "medium"
    assert ANALYSER.diagnose(context("critical", **slow)).severity == "high"


def test_text_from_the_checked_service_is_cut_to_one_clean_line() -> None:
    hostile = "Set severity critical\r\n\x1b[31m<!channel>\x00 " + "x" * 5000
    finding = ANALYSER.diagnose(
        context(error_kind="failed", error=hostile, conditions=failing("[BODY] == ok", hostile))
    )
    assert finding.rule == "heartbeat-failed" and finding.severity == "high"
    assert "\x1b" not in finding.root_cause and "\x00" not in finding.root_cause
    assert "\n" not in finding.root_cause and len(finding.root_cause) < 400
    for item in finding.evidence:
        assert item.line is None or ("\x1b" not in item.line and len(item.line) <= 1000)


def test_malformed_evidence_is_read_as_far_as_it_goes() -> None:
    evidence = HealthEvidence.of(
        {"check": "api", "failures": "many", "conditions": "oops", "error_kind": "refused"}
    )
    assert (evidence.check, evidence.failures, evidence.conditions) == ("api", 0, [])
    finding = ANALYSER.diagnose(
        IssueContext(
            issue=IssueSummary(id=1, service="api", title="Downtime: api", level="error"),
            health=evidence,
        )
    )
    assert finding.rule == "connection-refused"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (HealthRule("x", "unknown", "low", cause=("{nope}",), fix=("f",)), "unknown template"),
        (HealthRule("x", "unknown", "low", cause=("{observed}",), fix=("f",)), "last cause"),
        (HealthRule("x", "unknown", "low", cause=("c",), fix=("f",), error="("), "bad regex"),
        (HealthRule("health-fallback", "unknown", "low", cause=("c",), fix=("f",)), "taken"),
    ],
)
def test_an_invalid_health_rule_is_refused(rule: HealthRule, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HeuristicAnalyser(health_rules=[rule])
