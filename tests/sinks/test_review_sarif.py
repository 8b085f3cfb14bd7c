"""A review as SARIF 2.1.0: valid against the official OASIS schema (shipped as test data),
its results read back to the review's rules, places and fingerprints, fingerprints that stay
when lines move and differ for the same line twice, and paths written as URI references."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from jsonschema import Draft4Validator
from jsonschema.validators import validator_for

from mendline.schemas.review import (
    AI_RULE,
    REGRESSION_RULE,
    ChangedFile,
    Review,
    ReviewComment,
    ReviewRule,
    ReviewSeverity,
    SkippedFile,
)
from mendline.sinks.forges import review_sarif
from mendline.sinks.forges._review_sarif import SARIF_SCHEMA, sarif_text, sarif_uri

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "data" / "sarif-schema-2.1.0.json").read_text("utf-8")
)
PATHS = [
    "shop/orders.py",
    "docs/naïve file.py",
    "a:b/c,d.py",
    "100%/x#y?.py",
    "日本/テスト.py",
    "tab\there.py",
]


def _comment(
    rule_id: str, severity: ReviewSeverity, path: str, line: int, code: str, **more: Any
) -> ReviewComment:
    source = more.pop("source", "rule")
    message = more.pop("message", f"{rule_id} at {line} [x](javascript:y) \\[z]\n<b>")
    return ReviewComment(rule_id, source, severity, path, line, message, code=code, **more)


RULES = (
    ReviewRule("MR101", "int-on-input", "error", "int() on input", "Guard it [x](y).", "rule"),
    ReviewRule("MR105", "bare-except", "warning", "A bare except", "Name it.", "rule"),
    ReviewRule(REGRESSION_RULE, "regression", "error", "A culprit line again", "", "production"),
    ReviewRule(AI_RULE, "llm-review", "info", "The LLM's review", "", "llm"),
    ReviewRule("MR199", "never-fired", "warning", "Listed, not fired", "Help.", "rule"),
)


def sample(shift: int = 0) -> Review:
    """A review of several files; ``shift`` moves every line down (the same code)."""
    comments = [
        _comment(
            "MR101",
            "error",
            PATHS[0],
            12 + shift,
            "    qty = int(request.args['qty'])",
            column=11,
            suggestion="    qty = int(request.args.get('qty', '0'))",
        ),
        _comment("MR101", "error", PATHS[0], 40 + shift, "  qty = int(request.form['qty'])"),
        _comment("MR105", "warning", PATHS[1], 3 + shift, "except:", end_line=5 + shift),
        _comment(
            REGRESSION_RULE,
            "error",
            PATHS[2],
            7 + shift,
            "return t[k]",
            source="production",
            issue_id=9,
            link="https://mendline.example/issues/9",
        ),
        _comment(
            AI_RULE,
            "info",
            PATHS[3],
            1 + shift,
            "x = 1",
            source="llm",
            confidence=0.75,
            suggestion="Consider a constant.",
        ),
        _comment("MRL7", "warning", PATHS[4], 2 + shift, "y = d[k]", source="learned"),
        _comment("MR105", "warning", PATHS[5], 9 + shift, "except:"),
    ]
    return Review(
        base="main",
        head="HEAD",
        files=tuple(ChangedFile(p, None, "modified") for p in PATHS),
        skipped=(SkippedFile("img/logo .png", "binary"),),
        rules=RULES,
        comments=tuple(comments),
        notes=("no database: the production context was not read",),
        made_at=datetime(2026, 5, 1, tzinfo=UTC),
    )


def _results(log: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = log["runs"][0]["results"]
    return results


def test_the_log_validates_against_the_official_schema() -> None:
    log = review_sarif(sample(), tool_version="1.2.3")

    assert validator_for(SCHEMA) is Draft4Validator  # the draft the schema declares
    Draft4Validator.check_schema(SCHEMA)
    errors = list(Draft4Validator(SCHEMA).iter_errors(json.loads(json.dumps(log))))
    assert errors == []
    assert (log["$schema"], log["version"]) == (SARIF_SCHEMA, "2.1.0")
    assert SCHEMA["id"] == SARIF_SCHEMA
    log["runs"][0]["results"][0]["level"] = "info"  # the schema does catch a wrong level
    assert [e.validator for e in Draft4Validator(SCHEMA).iter_errors(log)] == ["enum"]


def test_an_empty_review_validates_too() -> None:
    empty = replace(sample(), comments=(), notes=(), skipped=(), rules=())
    log = review_sarif(empty, tool_version="0")

    assert list(Draft4Validator(SCHEMA).iter_errors(log)) == []
    assert _results(log) == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_rules_and_results_read_back_to_the_review() -> None:
    review = sample()
    run = review_sarif(review, tool_version="1.2.3")["runs"][0]
    driver = run["tool"]["driver"]

    assert (driver["name"], driver["version"]) == ("mendline review", "1.2.3")
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == [r.id for r in RULES] + ["MRL7"]  # a comment's unlisted rule is added
    by_id = {rule["id"]: rule for rule in driver["rules"]}
    assert by_id["MR101"]["shortDescription"] == {"text": "int() on input"}
    assert by_id["MR101"]["fullDescription"]["text"] == "Guard it \\[x\\](y)."
    assert by_id["MR101"]["defaultConfiguration"] == {"level": "error"}
    assert by_id[AI_RULE]["defaultConfiguration"] == {"level": "note"}
    assert by_id["MR199"]["name"] == "never-fired"
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for comment, result in zip(review.comments, run["results"], strict=True):
        assert result["ruleId"] == comment.rule_id
        assert driver["rules"][result["ruleIndex"]]["id"] == comment.rule_id
        assert result["level"] == levels[comment.severity]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert unquote(physical["artifactLocation"]["uri"]) == comment.path
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        region = physical["region"]
        assert (region["startLine"], region["endLine"]) == (comment.line, comment.last_line)
        assert region.get("startColumn") == comment.column
        assert result["partialFingerprints"] == {"mendline/v1": f"{comment.fingerprint()}:1"}
        assert result["properties"]["source"] == comment.source
    regression = run["results"][3]["properties"]
    assert regression == {
        "source": "production",
        "issueId": 9,
        "issueUrl": "https://mendline.example/issues/9",
    }
    assert run["results"][4]["properties"] == {"source": "llm", "confidence": 0.75}


def test_fingerprints_stay_when_lines_move_and_differ_for_a_repeat() -> None:
    def prints(review: Review) -> list[str]:
        results = _results(review_sarif(review, tool_version="0"))
        return [r["partialFingerprints"]["mendline/v1"] for r in results]

    before, after = prints(sample()), prints(sample(shift=25))
    assert before == after and len(set(before)) == len(before)
    # The same line text twice in one file (indentation aside): :1 and :2, in line order.
    review = sample()
    twin = replace(review.comments[1], code="    qty = int(request.args['qty'])")
    repeated = replace(review, comments=(review.comments[0], twin, *review.comments[2:]))
    first, second, *_ = prints(repeated)
    base = review.comments[0].fingerprint()
    assert (first, second) == (f"{base}:1", f"{base}:2")
    swapped = replace(repeated, comments=(twin, review.comments[0], *review.comments[2:]))
    assert prints(swapped)[:2] == [second, first]  # by line, not by list order
    changed = replace(review.comments[0], code="    qty = int(request.args['n'])")
    assert prints(replace(review, comments=(changed,)))[0] != before[0]


_URI_REFERENCE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*")


@pytest.mark.parametrize("path", [*PATHS, "/abs/x.py", "a b/ c.py", "%41.py"])
def test_paths_are_relative_uri_references(path: str) -> None:
    uri = sarif_uri(path)
    parts = urlsplit(uri)

    assert _URI_REFERENCE.fullmatch(uri) and uri.isascii()
    assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("", "", "", "")
    assert not uri.startswith("/") and ":" not in uri.split("/")[0]
    assert unquote(uri) == path.lstrip("/")


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("plain", "plain"),
        ("[a](b)", "\\[a\\](b)"),
        ("x\\[y]", "x\\\\\\[y\\]"),
        ("a\nb\r\nc", "a\nb\nc"),
        ("\x1b[0m", "\\x1b\\[0m"),
    ],
)
def test_messages_form_no_embedded_link(text: str, written: str) -> None:
    assert sarif_text(text) == written
    unescaped = re.sub(r"(\\+)([\[\]])", lambda m: "\\" * ((len(m[1]) - 1) // 2) + m[2], written)
    assert unescaped == text.replace("\r\n", "\n").replace("\x1b", "\\x1b")


def test_a_replacement_is_a_fix_and_advice_stays_in_the_message() -> None:
    results = _results(review_sarif(sample(), tool_version="0"))

    (fix,) = results[0]["fixes"]
    (change,) = fix["artifactChanges"]
    assert change["replacements"] == [
        {
            "deletedRegion": {"startLine": 12, "endLine": 12},
            "insertedContent": {"text": "    qty = int(request.args.get('qty', '0'))"},
        }
    ]
    assert "fixes" not in results[4]
    assert results[4]["message"]["text"].endswith("\n\nSuggestion:\nConsider a constant.")
    assert [r for r in results if "fixes" in r] == [results[0]]


def test_notes_and_skipped_files_are_notifications() -> None:
    (invocation,) = review_sarif(sample(), tool_version="0")["runs"][0]["invocations"]

    notes = invocation["toolExecutionNotifications"]
    assert invocation["executionSuccessful"] is True
    assert [n["level"] for n in notes] == ["warning", "note"]
    assert notes[0]["message"]["text"] == "no database: the production context was not read"
    location = notes[1]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "img/logo%20.png", "uriBaseId": "%SRCROOT%"}
