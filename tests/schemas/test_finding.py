"""Finding: a fallback code never comes without its reason, nor a reason without its code;
the evidence of a health check, read leniently."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mendline.schemas.finding import FALLBACK_CODES, Finding, HealthEvidence


def finding(**fields: Any) -> Finding:
    return Finding(
        analyser="heuristic",
        root_cause="the quantity is not a number",
        confidence=0.5,
        category="bad_input",
        severity="medium",
        suggested_fix="validate it",
        **fields,
    )


def test_a_finding_that_did_not_fall_back_has_neither() -> None:
    plain = finding()
    assert (plain.fallback_code, plain.fallback_reason) == (None, None)


@pytest.mark.parametrize("code", FALLBACK_CODES)
def test_every_code_is_taken_with_a_reason(code: str) -> None:
    found = finding(fallback_code=code, fallback_reason="why, in words")
    assert found.fallback_code == code


@pytest.mark.parametrize(
    "fields",
    [
        {"fallback_code": "llm_timeout"},
        {"fallback_reason": "the LLM call timed out"},
        {"fallback_code": "gremlins", "fallback_reason": "why"},
    ],
    ids=["code-without-reason", "reason-without-code", "unknown-code"],
)
def test_a_code_without_a_reason_or_a_reason_without_a_code_is_refused(
    fields: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        finding(**fields)


def test_as_fallback_sets_both_and_validates_again_when_read_back() -> None:
    fell_back = finding().as_fallback("budget_spent", "the daily LLM budget is spent" + "!" * 2000)
    assert fell_back.fallback_code == "budget_spent"
    assert fell_back.fallback_reason is not None and len(fell_back.fallback_reason) == 1000
    # As it comes back from JSON or the database: the pair holds.
    assert Finding.model_validate(fell_back.model_dump()) == fell_back


def test_as_fallback_refuses_a_code_outside_the_set_where_it_is_made() -> None:
    with pytest.raises(ValidationError):
        finding().as_fallback("gremlins", "something odd")  # type: ignore[arg-type]


def test_health_evidence_is_read_leniently_and_without_control_characters() -> None:
    evidence = HealthEvidence.of(
        {
            "check": "api\x1b[2J",
            "target": "https://api.example/\x00health",
            "failures": 3,
            "status": 503,  # a number where text is expected: read as text
            "timings": {"total": "slow"},  # malformed: left out, the rest kept
            "conditions": [
                {"condition": "[STATUS] == 200", "success": False, "observed": 503},
                {"condition": "[BODY] == ok", "success": True, "observed": "ok\r\nBcc: x"},
            ],
            "reasons": ["up -> down\x07"],
            "unknown": "ignored",
        }
    )
    assert (evidence.check, evidence.target) == ("api[2J", "https://api.example/health")
    assert (evidence.status, evidence.failures, evidence.timings) == ("503", 3, {})
    assert [c.observed for c in evidence.conditions] == ["503", "ok\nBcc: x"]
    assert [c.condition for c in evidence.failing] == ["[STATUS] == 200"]
    assert evidence.reasons == ["up -> down"]
    assert HealthEvidence.of({}) == HealthEvidence()
