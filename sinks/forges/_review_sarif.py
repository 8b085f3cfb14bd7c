"""A review as SARIF 2.1.0, for GitHub code scanning and any SARIF viewer: one run, every
rule the review can report, one result per comment with a fingerprint that survives lines
moving."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from mendline.schemas.printable import printable
from mendline.schemas.review import Review, ReviewComment, ReviewRule, ReviewSeverity
from mendline.sinks.forges._review_output import occurrence_fingerprints, replacement, web_link

__all__ = ["SARIF_SCHEMA", "review_sarif", "sarif_text", "sarif_uri"]

#: The OASIS schema (2.1.0 with Errata 01) a log says it follows.
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_TOOL = "mendline review"
_HOME = "https://github.com/mendline/mendline"
_ROOT = "%SRCROOT%"
_FINGERPRINT = "mendline/v1"
_LEVEL: dict[ReviewSeverity, str] = {"info": "note", "warning": "warning", "error": "error"}
# SARIF 3.11.6: "[text](target)" in a plain text message is a link; a literal bracket is
# written with a backslash, and so is a backslash before one.
_BRACKET = re.compile(r"(\\*)([\[\]])")


def sarif_text(text: str) -> str:
    """``text`` as a SARIF plain text message: lines kept, other control characters made
    visible, brackets escaped so that no embedded link forms."""
    text = printable(text.replace("\r\n", "\n"), lines=True)
    return _BRACKET.sub(lambda m: "\\" * (2 * len(m[1]) + 1) + m[2], text)


def sarif_uri(path: str) -> str:
    """A repository path as a relative URI reference: every character but the unreserved
    ones and ``/`` percent-encoded (UTF-8), so spaces, ``%``, ``:``, ``#`` and non-ASCII
    names stay part of the path."""
    return quote(path.lstrip("/"), safe="/")


def review_sarif(review: Review, *, tool_version: str) -> dict[str, Any]:
    """The review as a SARIF 2.1.0 log (a dict to write as JSON).

    ``tool.driver.rules`` lists every rule in ``review.rules`` (and any rule a comment names
    that is not there); each comment is a result with its rule's id and index, its level
    (info is ``note``), its message (and suggestion), its place (a path relative to
    ``%SRCROOT%``, lines and column), ``partialFingerprints["mendline/v1"]`` (the comment's
    fingerprint and ``:n`` for the same text again in the file: what code scanning matches
    alerts across pushes by) and its source, confidence and issue as properties. The notes
    and skipped files are the invocation's notifications."""
    rules = _rules(review)
    index = {rule["id"]: number for number, rule in enumerate(rules)}
    fingerprints = occurrence_fingerprints(review.comments)
    results = [
        _result(comment, index[comment.rule_id], fingerprint)
        for comment, fingerprint in zip(review.comments, fingerprints, strict=True)
    ]
    properties: dict[str, Any] = {"base": review.base, "head": review.head}
    if review.made_at is not None:
        properties["madeAt"] = review.made_at.isoformat()
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": _TOOL,
                "informationUri": _HOME,
                "version": tool_version,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {
            _ROOT: {"description": {"text": "The root of the repository reviewed."}}
        },
        "invocations": [_invocation(review)],
        "results": results,
        "properties": properties,
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _rules(review: Review) -> list[dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for rule in review.rules:
        rules.setdefault(rule.id, _rule(rule))
    for comment in review.comments:  # a comment whose rule the review did not list
        if comment.rule_id not in rules:
            unlisted = ReviewRule(
                comment.rule_id, comment.rule_id, comment.severity, "", "", comment.source
            )
            rules[comment.rule_id] = _rule(unlisted)
    return list(rules.values())


def _rule(rule: ReviewRule) -> dict[str, Any]:
    described: dict[str, Any] = {"id": rule.id, "name": rule.name}
    if rule.summary:
        described["shortDescription"] = {"text": sarif_text(rule.summary)}
    if rule.help:
        described["fullDescription"] = {"text": sarif_text(rule.help)}
        described["help"] = {"text": sarif_text(rule.help)}
    described["defaultConfiguration"] = {"level": _LEVEL[rule.severity]}
    described["properties"] = {"source": rule.source, "tags": ["mendline", rule.source]}
    return described


def _location(path: str) -> dict[str, Any]:
    return {"uri": sarif_uri(path), "uriBaseId": _ROOT}


def _result(comment: ReviewComment, rule_index: int, fingerprint: str) -> dict[str, Any]:
    first = max(1, comment.line)
    region: dict[str, Any] = {"startLine": first, "endLine": max(first, comment.last_line)}
    if comment.column and comment.column > 0:
        region["startColumn"] = comment.column
    message = comment.message
    if comment.suggestion:
        message += "\n\nSuggestion:\n" + comment.suggestion
    result: dict[str, Any] = {
        "ruleId": comment.rule_id,
        "ruleIndex": rule_index,
        "level": _LEVEL[comment.severity],
        "message": {"text": sarif_text(message)},
        "locations": [
            {"physicalLocation": {"artifactLocation": _location(comment.path), "region": region}}
        ],
        "partialFingerprints": {_FINGERPRINT: fingerprint},
        "properties": _properties(comment),
    }
    change = replacement(comment)
    if change is not None:
        lines = {"startLine": first, "endLine": region["endLine"]}
        result["fixes"] = [
            {
                "description": {"text": "The suggested change."},
                "artifactChanges": [
                    {
                        "artifactLocation": _location(comment.path),
                        "replacements": [
                            {"deletedRegion": lines, "insertedContent": {"text": change}}
                        ],
                    }
                ],
            }
        ]
    return result


def _properties(comment: ReviewComment) -> dict[str, Any]:
    properties: dict[str, Any] = {"source": comment.source}
    if comment.confidence is not None:
        properties["confidence"] = comment.confidence
    if comment.issue_id is not None:
        properties["issueId"] = comment.issue_id
    if link := web_link(comment.link):
        properties["issueUrl"] = link
    return properties


def _invocation(review: Review) -> dict[str, Any]:
    notifications: list[dict[str, Any]] = [
        {"level": "warning", "message": {"text": sarif_text(note)}} for note in review.notes
    ]
    notifications += [
        {
            "level": "note",
            "message": {"text": sarif_text(f"Not reviewed: {skipped.reason}")},
            "locations": [{"physicalLocation": {"artifactLocation": _location(skipped.path)}}],
        }
        for skipped in review.skipped
    ]
    return {"executionSuccessful": True, "toolExecutionNotifications": notifications}
