"""The dashboard's search line read into filters, cursors to the page before, an issue's
state in words and the end of a while: pure functions over tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mendline.schemas.ending import ends_at
from mendline.schemas.errors import ConfigError, UsageError
from mendline.schemas.issue import describe_state
from mendline.schemas.issue_query import IssueCursor, IssueQuery, IssueSearch

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "filters"),
    [
        ("", {}),
        ("checkout failed", {"text": "checkout failed"}),
        ("  spaced   words ", {"text": "spaced words"}),
        (
            "timeout service:api release:1.2.0 env:prod",
            {"text": "timeout", "service": "api", "release": "1.2.0", "environment": "prod"},
        ),
        (
            "environment:staging assigned:user:ada",
            {"environment": "staging", "assignee": "user:ada"},
        ),
        ("region:eu plan:pro", {"tags": (("region", "eu"), ("plan", "pro"))}),
        ("region:eu region:eu", {"tags": (("region", "eu"),)}),
        (
            'browser:"Mobile Safari" crash',
            {"text": "crash", "tags": (("browser", "Mobile Safari"),)},
        ),
        ('"http://shop/cart" 500', {"text": "http://shop/cart 500"}),
        (r'note:"say \"hi\"" x', {"text": "x", "tags": (("note", 'say "hi"'),)}),
        ('user:"a \\\\ b"', {"tags": (("user", "a \\ b"),)}),
        ("key: spaced", {"text": "key: spaced"}),  # no value: words
        (":odd 1:2", {"text": ":odd 1:2"}),  # a key starts with a letter
        ('k:"unterminated value', {"tags": (("k", "unterminated value"),)}),
        ("Service:api", {"service": "api"}),  # the keys of filters in any case
    ],
)
def test_the_search_line_is_read_as_sentry_s(line: str, filters: dict[str, Any]) -> None:
    assert IssueSearch.parse(line).filters() == filters


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("service:a service:b", "two values of service"),
        ("env:a environment:b", "two values of environment"),
        ("x" * 1001, "at most 1000 characters"),
    ],
)
def test_a_search_line_that_says_two_things_is_refused(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IssueSearch.parse(line)


def test_the_search_makes_a_query_and_contradicting_tags_match_nothing() -> None:
    query = IssueQuery(**IssueSearch.parse("region:eu service:api boom").filters())  # type: ignore[arg-type]
    assert (query.service, query.text, query.tag_filter) == ("api", "boom", {"region": "eu"})
    assert IssueQuery(tags=(("region", "eu"), ("region", "us"))).tag_filter is None
    assert IssueQuery().tag_filter == {}


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize(
    ("sort", "value"),
    [("last_seen", NOW), ("events", 12), ("trend", -3), ("events_1h", 0)],
)
def test_cursors_go_both_ways(sort: str, value: Any, backward: bool) -> None:
    cursor = IssueCursor(sort=sort, value=value, id=7, backward=backward)  # type: ignore[arg-type]
    assert IssueCursor.parse(cursor.token()) == cursor


@pytest.mark.parametrize(
    "parts",
    [
        '["i", "events", 1, 2, "forward"]',
        '["i", "events", true, 2]',
        '["i", "trend", 1.5, 2]',
        '["i", "events", 1, 2, "back", 3]',
    ],
)
def test_a_cursor_that_is_not_one_is_refused(parts: str) -> None:
    import base64

    token = base64.urlsafe_b64encode(parts.encode()).decode().rstrip("=")
    with pytest.raises(ConfigError, match="is not a cursor of issues"):
        IssueCursor.parse(token)


@pytest.mark.parametrize(
    ("issue", "said"),
    [
        ({"status": "unresolved"}, "unresolved"),
        ({"status": "unresolved", "substatus": "regressed"}, "unresolved (regressed)"),
        ({"status": "resolved", "resolution": "now", "resolved_by": "ada"}, "resolved by ada"),
        (
            {"status": "resolved", "resolution": "next_release", "resolved_in_release": "1.4"},
            "resolved in the next release (after 1.4)",
        ),
        ({"status": "resolved", "resolution": "fix"}, "resolved by a fix"),
        ({"status": "ignored"}, "ignored forever"),
        (
            {
                "status": "ignored",
                "ignore_until_seen": 110,
                "times_seen": 100,
                "ignore_per_hour": 5,
            },
            "ignored until 10 more events or until 5 events in an hour",
        ),
        (
            {"status": "ignored", "ignore_until": NOW},
            "ignored until 2026-12-01 12:00 UTC",
        ),
        ({"status": "merged", "merged_into": 12}, "merged into issue #12"),
    ],
)
def test_an_issue_s_state_in_words(issue: dict[str, Any], said: str) -> None:
    assert describe_state(issue) == said


def test_the_end_of_a_while_names_the_fields_it_was_given_as() -> None:
    assert ends_at("2h", None, NOW, zone_required=True) == NOW + timedelta(hours=2)
    assert ends_at(None, None, NOW, zone_required=True) is None
    with pytest.raises(UsageError, match=r"^give for or until, not both$"):
        ends_at("1h", "2026-12-02T00:00Z", NOW, zone_required=True, names=("for", "until"))
    with pytest.raises(UsageError, match=r"^--until needs its time zone"):
        ends_at(None, "2026-12-02T00:00", NOW, zone_required=True)
    with pytest.raises(UsageError, match=r"^for takes more than 0s and at most 3650d$"):
        ends_at("4000d", None, NOW, zone_required=True, names=("for", "until"))
