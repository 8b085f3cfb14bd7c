"""Gatus-style conditions: parsing with messages for people, judging observations (every
operator, placeholder, JSON paths, pat, any, len, has, durations), the kinds' defaults, and
hostile observed values shown safely."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from mendline.analyzers.health import (
    NOT_OBSERVED,
    Condition,
    default_conditions,
    evaluate,
    parse_condition,
)
from mendline.schemas.checks import Check, Observation

BODY = json.dumps(
    {
        "status": "UP",
        "version": "1.4.2",
        "count": 42,
        "ratio": 0.5,
        "ok": True,
        "nothing": None,
        "data": {"name": "john", "items": [{"id": 1}, {"id": 2, "tags": ["a", "b"]}]},
        "empty": [],
    }
)
SEEN = Observation(
    values={
        "STATUS": 200,
        "RESPONSE_TIME": 250.0,
        "BODY": BODY,
        "HEADERS": {"Content-Type": "application/json; charset=utf-8", "X-Request-Id": "r-1"},
        "CONNECTED": True,
        "IP": "127.0.0.1",
        "DNS_RCODE": "NOERROR",
        "DNS_ANSWER": ["10.0.0.1", "10.0.0.2"],
        "CERTIFICATE_EXPIRATION": 20 * 86400,
        "QUERY_DURATION": 12.0,
        "ROWS": 1,
        "RESULT": "1",
        "LAG": 7,
    }
)


def judged(condition: str, observation: Observation = SEEN) -> tuple[bool, str]:
    (result,) = evaluate([condition], observation)
    assert result.condition == condition
    return result.success, result.observed


@pytest.mark.parametrize(
    ("condition", "success", "observed"),
    [
        # each operator, on numbers
        ("[STATUS] == 200", True, "200"),
        ("[STATUS] == 201", False, "200"),
        ("[STATUS] != 500", True, "200"),
        ("[STATUS] != 200", False, "200"),
        ("[STATUS] < 400", True, "200"),
        ("[STATUS] < 200", False, "200"),
        ("[STATUS] <= 200", True, "200"),
        ("[STATUS] > 199", True, "200"),
        ("[STATUS] > 200", False, "200"),
        ("[STATUS] >= 200", True, "200"),
        ("[STATUS] >= 201", False, "200"),
        ("[STATUS]==200", True, "200"),  # spaces are optional
        ('[STATUS] == "200"', True, "200"),  # quotes are optional
        # any() and pat()
        ("[STATUS] == any(200, 204)", True, "200"),
        ("[STATUS] == any(201, 204)", False, "200"),
        ("[STATUS] != any(500, 503)", True, "200"),
        ("[STATUS] == pat(2*)", True, "200"),
        ("[STATUS] == pat(4*)", False, "200"),
        ("[BODY] == pat(*UP*)", True, None),
        ("[BODY] == pat(*DOWN*)", False, None),
        ("[BODY] != pat(*DOWN*)", True, None),
        ("[BODY].status == pat(U?)", False, "UP"),  # only * is a wildcard
        # response time: ms, or a duration converted to ms
        ("[RESPONSE_TIME] < 500", True, "250 ms"),
        ("[RESPONSE_TIME] < 500ms", True, "250 ms"),
        ("[RESPONSE_TIME] < 1s", True, "250 ms"),
        ("[RESPONSE_TIME] < 200ms", False, "250 ms"),
        ("[RESPONSE_TIME] > 0.2s", True, "250 ms"),
        # JSON paths into the body
        ("[BODY].status == UP", True, "UP"),
        ("[BODY].status == DOWN", False, "UP"),
        ("[BODY].version == 1.4.2", True, "1.4.2"),
        ("[BODY].count == 42", True, "42"),
        ("[BODY].count > 40", True, "42"),
        ("[BODY].count >= 43", False, "42"),
        ("[BODY].ratio < 1", True, "0.5"),
        ("[BODY].ok == true", True, "true"),
        ("[BODY].ok == false", False, "true"),
        ("[BODY].nothing == null", True, "null"),
        ("[BODY].data.name == john", True, "john"),
        ("[BODY].data.items[1].id == 2", True, "2"),
        ("[BODY].data.items[1].tags[0] == a", True, "a"),
        ("[BODY].data.items[5].id == 2", False, "(no .data.items[5] in the body)"),
        ("[BODY].data.missing == x", False, "(no .data.missing in the body)"),
        ("[BODY].status.deeper == x", False, "(no .status.deeper in the body)"),
        ("[BODY].data[0] == x", False, "(no .data[0] in the body)"),
        ("[BODY].data.items[0] == pat(*id*)", True, '{"id": 1}'),
        # len() and has()
        ("len([BODY].data.items) == 2", True, "2"),
        ("len([BODY].data.name) == 4", True, "4"),
        ("len([BODY].empty) > 0", False, "0"),
        ("len([BODY].count) == 2", True, "2"),
        ("len([DNS_ANSWER]) > 0", True, "2"),
        ("len([HEADERS]) == 2", True, "2"),
        ("len([BODY].missing) == 0", False, "(no .missing in the body)"),
        ("has([BODY].status) == true", True, "true"),
        ("has([BODY].errors) == false", True, "false"),
        ("has([BODY].errors) == true", False, "false"),
        ("has([BODY].nothing) == true", False, "false"),
        ("has([BODY].data.items[1].tags) != false", True, "true"),
        ("has([HEADERS].X-Request-Id) == true", True, "true"),
        ("has([HEADERS].Retry-After) == true", False, "false"),
        # headers, case-insensitive names
        ("[HEADERS].content-type == pat(application/json*)", True, None),
        ("[HEADERS].X-REQUEST-ID == r-1", True, "r-1"),
        ("[HEADERS].Location == /login", False, "(no header Location)"),
        # the other placeholders
        ("[CONNECTED] == true", True, "true"),
        ("[CONNECTED] == false", False, "true"),
        ("[IP] == 127.0.0.1", True, "127.0.0.1"),
        ("[IP] == pat(127.*)", True, "127.0.0.1"),
        ("[DNS_RCODE] == NOERROR", True, "NOERROR"),
        ("[DNS_RCODE] == NXDOMAIN", False, "NOERROR"),
        ("[DNS_ANSWER] == 10.0.0.2", True, '["10.0.0.1", "10.0.0.2"]'),
        ("[DNS_ANSWER] == 10.0.0.3", False, '["10.0.0.1", "10.0.0.2"]'),
        ("[DNS_ANSWER] == pat(10.0.0.*)", True, '["10.0.0.1", "10.0.0.2"]'),
        ("[CERTIFICATE_EXPIRATION] > 14d", True, "1728000 s (20d)"),
        ("[CERTIFICATE_EXPIRATION] > 48h", True, "1728000 s (20d)"),
        ("[CERTIFICATE_EXPIRATION] > 30d", False, "1728000 s (20d)"),
        ("[CERTIFICATE_EXPIRATION] > 1209600", True, "1728000 s (20d)"),
        ("[QUERY_DURATION] < 100ms", True, "12 ms"),
        ("[QUERY_DURATION] <= 10", False, "12 ms"),
        ("[ROWS] == 1", True, "1"),
        ("[ROWS] <= 1000", True, "1"),  # the limit itself can be compared with
        ("[RESULT] == 1", True, "1"),  # a text that is a number compares as one
        ("[RESULT] > 0", True, "1"),
        ("[LAG] <= 10", True, "7"),
        ("[LAG] <= 5", False, "7"),
    ],
)
def test_a_condition_on_an_observation(condition: str, success: bool, observed: str | None) -> None:
    held, shown = judged(condition)
    assert held is success
    if observed is not None:
        assert shown == observed


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("UP", "UP", True),
        ("UP", "UPS", False),
        ("*", "", True),
        ("*UP*", "status: UP!", True),
        ("a*b*c", "a-b-c", True),
        ("a*b*c", "a-c-b", False),
        ("ab*ba", "aba", False),  # the prefix and suffix may not overlap
        ("ab*ba", "abba", True),
        ("*[error]*", "an [error] here", True),  # brackets are text, not a class
        ("*.*", "abc", False),  # a dot is a dot
        ("*a*a*a*a*a*a*a*b", "a" * 50_000, False),  # no backtracking blow-up
    ],
)
def test_pat_matches_with_star_only(pattern: str, text: str, matches: bool) -> None:
    seen = Observation(values={"BODY": text})
    assert judged(f"[BODY] == pat({pattern})", seen)[0] is matches


def test_a_dns_answer_matches_without_the_final_dot_and_case() -> None:
    seen = Observation(values={"DNS_ANSWER": ["Mail.Example.com."]})
    assert judged("[DNS_ANSWER] == mail.example.com", seen)[0] is True


@pytest.mark.parametrize(
    "condition",
    ["[STATUS] == 200", "[LAG] < 10", "len([DNS_ANSWER]) > 0", "[BODY].status == UP"],
)
def test_a_placeholder_not_observed_fails_and_says_so(condition: str) -> None:
    assert judged(condition, Observation()) == (False, NOT_OBSERVED)


def test_has_of_a_placeholder_not_observed_is_false() -> None:
    assert judged("has([BODY].x) == false", Observation()) == (True, "false")


@pytest.mark.parametrize(
    ("body", "observed"),
    [("<html>down</html>", "(the body is not JSON)"), ("", "(the body is not JSON)")],
)
def test_a_path_into_a_body_that_is_not_json(body: str, observed: str) -> None:
    seen = Observation(values={"BODY": body})
    assert judged("[BODY].status == UP", seen) == (False, observed)


def test_an_ordering_on_text_fails_without_raising() -> None:
    seen = Observation(values={"BODY": json.dumps({"count": "many"})})
    assert judged("[BODY].count > 1", seen) == (False, "many")


def test_conditions_still_judge_what_was_observed_after_an_error() -> None:
    seen = Observation(
        values={"CONNECTED": False, "RESPONSE_TIME": 10_000.0},
        error="no answer within 10s",
        error_kind="timeout",
    )
    results = evaluate(["[CONNECTED] == true", "[RESPONSE_TIME] < 1s", "[STATUS] < 400"], seen)
    assert [(r.success, r.observed) for r in results] == [
        (False, "false"),
        (False, "10000 ms"),
        (False, NOT_OBSERVED),
    ]


def test_parsed_and_text_conditions_evaluate_alike_in_order() -> None:
    parsed = parse_condition("[STATUS] == 200")
    results = evaluate([parsed, "[LAG] > 100"], SEEN)
    assert [(r.condition, r.success) for r in results] == [
        ("[STATUS] == 200", True),
        ("[LAG] > 100", False),
    ]


def test_a_condition_that_does_not_parse_fails_with_its_reason() -> None:
    (result,) = evaluate(["[STATSU] == 200"], SEEN)
    assert result.success is False
    assert result.observed == "unknown placeholder [STATSU]; did you mean [STATUS]?"


# -- hostile values ------------------------------------------------------------------------


def test_control_characters_in_a_body_are_escaped() -> None:
    seen = Observation(values={"BODY": "\x1b[31mDOWN\x1b[0m\r\nfake line\u202e"})
    held, observed = judged("[BODY] == pat(*UP*)", seen)
    assert held is False
    assert observed == "\\x1b[31mDOWN\\x1b[0m\\r\\nfake line\\u202e"
    assert "\x1b" not in observed and "\n" not in observed


def test_a_huge_body_is_shortened() -> None:
    seen = Observation(values={"BODY": "x" * 1_000_000 + "UP"})
    held, observed = judged("[BODY] == pat(*UP)", seen)
    assert held is True  # judged on the whole body, shown short
    assert len(observed) == 200 and observed.endswith("…")


def test_a_hostile_json_field_is_escaped_and_shortened() -> None:
    seen = Observation(values={"BODY": json.dumps({"status": "\x1b]0;owned\x07" + "y" * 500})})
    held, observed = judged("[BODY].status == UP", seen)
    assert held is False
    assert observed.startswith("\\x1b]0;owned\\x07yyy") and len(observed) == 200


def test_a_deeply_nested_or_huge_number_body_does_not_raise() -> None:
    seen = Observation(values={"BODY": "[" * 100_000 + "]" * 100_000})
    assert judged("[BODY][0] == x", seen)[0] is False
    seen = Observation(values={"BODY": '{"n": ' + "9" * 5000 + "}"})
    assert judged("[BODY].n > 1", seen)[0] is False


# -- parsing -------------------------------------------------------------------------------


def test_a_parsed_condition() -> None:
    assert parse_condition("  len([BODY].data.items[0].tags) >= 1 ") == Condition(
        text="len([BODY].data.items[0].tags) >= 1",
        placeholder="BODY",
        path=("data", "items", 0, "tags"),
        function="len",
        operator=">=",
        right_kind="value",
        right=("1",),
    )
    parsed = parse_condition("[STATUS] == any(200, 204)")
    assert (parsed.right_kind, parsed.right) == ("any", ("200", "204"))
    assert str(parsed) == "[STATUS] == any(200, 204)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'a condition is "<placeholder> <operator> <value>", e.g. [STATUS] == 200'),
        ("[STATSU] == 200", "unknown placeholder [STATSU]; did you mean [STATUS]?"),
        ("[status] == 200", "unknown placeholder [status]; did you mean [STATUS]?"),
        ("[HEADER].X == 1", "unknown placeholder [HEADER]; did you mean [HEADERS]?"),
        ("[ZZZ] == 1", "unknown placeholder [ZZZ] (use [STATUS], [RESPONSE_TIME], [BODY],"),
        ("STATUS == 200", '"STATUS == 200" does not start with a placeholder such as [STATUS]'),
        ("200 == [STATUS]", '"200 == [STATUS]" does not start with a placeholder'),
        ("[STATUS] 200", 'no operator after the placeholder in "[STATUS] 200": write'),
        ("[STATUS] =~ 200", "no operator after the placeholder"),
        ("[STATUS] ==", 'nothing to compare with after == in "[STATUS] =="'),
        ("[STATUS] < abc", '< compares numbers: "abc" is not a number'),
        ("[STATUS] < 5m", '< compares numbers: "5m" is not a number'),
        (
            "[RESPONSE_TIME] < fast",
            '< compares numbers: "fast" is not a number or a duration (500ms, 2s, 14d)',
        ),
        ("len([BODY]) < 1s", '< compares numbers: "1s" is not a number'),
        ("[STATUS].code == 200", "[STATUS] has no fields: only [BODY] (a JSON path)"),
        ("[HEADERS] == x", "name one header: [HEADERS].Content-Type"),
        ("has([BODY].x) == yes", "has(...) is compared with true or false"),
        ("has([BODY].x) > 1", "has(...) is compared with true or false"),
        ("len([BODY] == 1", 'len( is not closed in "len([BODY] == 1"'),
        ("[BODY] == pat(*UP*", "pat( is not closed"),
        ("[STATUS] < any(1, 2)", "any() goes with == or !=, not <"),
        ("[BODY] > pat(*UP*)", "pat() goes with == or !=, not >"),
        ("[STATUS] == any(200,,204)", "any() needs values separated by commas"),
        ("[CONNECTED] == yes", "[CONNECTED] is true or false: [CONNECTED] == true"),
        ("[ROWS] <= 5000", "[ROWS] counts up to 1000 rows (a query returning more is 1001)"),
        ("[ROWS] == any(0, 1001)", "[ROWS] counts up to 1000 rows"),
        ("[ROWS] != 1e6", "[ROWS] counts up to 1000 rows"),
    ],
)
def test_bad_conditions_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_condition(text)
    assert str(raised.value).startswith(message)


# -- what each kind runs -------------------------------------------------------------------

CHECK: TypeAdapter[Any] = TypeAdapter(Check)


def check(**fields: Any) -> Any:
    return CHECK.validate_python({"name": "c", **fields})


@pytest.mark.parametrize(
    ("fields", "conditions"),
    [
        ({"kind": "http", "url": "https://a.example"}, ["[STATUS] < 400"]),
        (
            {"kind": "http", "url": "https://a", "expected_status": [200, 204]},
            ["[STATUS] == any(200, 204)"],
        ),
        ({"kind": "http", "url": "https://a", "expected_status": [200]}, ["[STATUS] == 200"]),
        (
            {"kind": "http", "url": "https://a", "conditions": ["[BODY].ok == true"]},
            ["[BODY].ok == true"],
        ),
        (
            {
                "kind": "http",
                "url": "https://a",
                "conditions": ["[RESPONSE_TIME] < 1s"],
                "expected_status": [200],
            },
            ["[RESPONSE_TIME] < 1s", "[STATUS] == 200"],
        ),
        ({"kind": "tcp", "host": "db", "port": 5432}, ["[CONNECTED] == true"]),
        (
            {"kind": "dns", "query": "example.com"},
            ["[DNS_RCODE] == NOERROR", "len([DNS_ANSWER]) > 0"],
        ),
        (
            {"kind": "dns", "query": "example.com", "expected": ["10.0.0.1", "10.0.0.2"]},
            ["[DNS_ANSWER] == 10.0.0.1", "[DNS_ANSWER] == 10.0.0.2"],
        ),
        ({"kind": "tls", "host": "example.com"}, ["[CERTIFICATE_EXPIRATION] > 14d"]),
        ({"kind": "postgres", "dsn_env": "DB_URL"}, ["[CONNECTED] == true"]),
        ({"kind": "kafka"}, ["[CONNECTED] == true"]),
        (
            {"kind": "kafka", "group": "g", "topic": "t", "max_lag": 1000},
            ["[LAG] <= 1000"],
        ),
        ({"kind": "heartbeat", "every": "1h"}, []),
    ],
)
def test_the_conditions_a_check_runs(fields: dict[str, Any], conditions: list[str]) -> None:
    ran = default_conditions(check(**fields))
    assert ran == conditions
    for condition in ran:
        parse_condition(condition)  # every default parses
