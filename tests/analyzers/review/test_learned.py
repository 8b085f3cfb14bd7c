"""Learned rules, pure: the shape of a culprit line, the culprit line of an event, and the
comments a changed file earns by writing a learned shape again."""

from __future__ import annotations

import ast
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from mendline.analyzers.review._learned import (
    culprit_line,
    learned_comments,
    learned_review_rule,
    shape_of,
)
from mendline.schemas.review import LearnedRule, ReviewComment

CREATED = datetime(2025, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "shape"),
    [
        ('n = int(request.args["n"])', "int(request.args['n'])"),
        ('    return int(request.args["n"])  # the page', "int(request.args['n'])"),
        ("return order.customer.email", "_.customer.email"),
        ("ratio = self.total / self.count", "_.total / _.count"),
        ('total = data.get("qty") * price', "_.get('qty') * _"),
        ('url = os.environ["DATABASE_URL"]', "os.environ['DATABASE_URL']"),
        ('when = datetime.strptime(row["when"], fmt)', "datetime.strptime(_['when'], _)"),
        ('user = User.objects.get(pk=data["id"])', "User.objects.get(pk=_['id'])"),
        ("resp = requests.get(self.url, timeout=None)", "requests.get(_.url, timeout=None)"),
        ('total += item["price"] * item["qty"]', "_ + _['price'] * _['qty']"),
        ('print(str(int(request.args["n"])))', "int(request.args['n'])"),  # past safe calls
        ('host = CONFIG["db"]["host"]', "CONFIG['db']['host']"),
        ('last = float(rows[-1]["amount"])', "float(_[-1]['amount'])"),
        # fragments and block headers
        ('if int(request.args["n"]) > 3:', "int(request.args['n']) > _n"),
        ('elif int(request.args["n"]) > 3:', "int(request.args['n']) > _n"),
        ('while jobs.pop()["attempts"] < limit:', "_.pop()['attempts'] < _"),
        ('for line in json.loads(body)["lines"]:', "json.loads(_)['lines']"),
        ("with open(os.environ['LOG']) as out:", "open(os.environ['LOG'])"),
        ('"amount": Decimal(payload["amount"]),', "Decimal(_['amount'])"),
        ("json.loads(request.body),", "json.loads(request.body)"),
        ('amount=Decimal(payload["amount"]),', "Decimal(_['amount'])"),
        ("data = await resp.json(content_type=None)", "_.json(content_type=None)"),
        ("return a.price * b.quantity", "_.price * _.quantity"),
    ],
)
def test_a_culprit_line_has_its_shape(line: str, shape: str) -> None:
    assert shape_of(line) == shape


@pytest.mark.parametrize(
    "line",
    [
        "return x",
        "x = y",
        "f(x)",
        "return int(x)",  # int() of anything: too common to be a rule
        "payload = json.loads(body)",  # json.loads() of anything: its input is not told
        "resp = requests.get(url)",
        "user = User.objects.get(pk=user_id)",
        'when = datetime.strptime(text, "%Y-%m-%d")',
        "return jobs.pop()",
        "return a / b",
        "ratio = total / len(items)",
        'if data["x"] > 3:',
        'for item in data["items"]:',
        "count = self.count + 1",
        'return payload.get("x")',  # a dict's get cannot fail
        "with open(path) as f:",
        'raise ValueError(f"bad {x}")',  # raised on purpose
        'assert data["x"] > 3',
        "def handler(request, order_id=None):",
        "else:",
        "except KeyError as exc:",
        "total = compute(",  # its arguments are on the next lines
        ").strip()",
        "@app.route('/orders')",
        "",
        "const total = order.items.reduce((a, b) => a + b);",  # not Python
        "SELECT * FROM orders WHERE id = 1",
        "print 'hello'",
        "x = int(q[3])",
        "x = 1; y = int(request.args['n'])",
    ],
)
def test_a_line_that_is_not_python_or_too_common_has_no_shape(line: str) -> None:
    assert shape_of(line) is None


@pytest.mark.parametrize(
    ("taught", "written"),
    [
        ('n = int(request.args["n"])', 'page = int(request.args["n"]) + 1'),
        ("return order.customer.email", "send(invoice.customer.email)"),
        ('total = data.get("qty") * price', 'cost = row.get("qty") * unit'),
        ("ratio = self.total / self.count", "avg = stats.total / stats.count"),
        ('"amount": Decimal(payload["amount"]),', 'value = Decimal(body["amount"])'),
        ('total += item["price"] * item["qty"]', 'sum_ = sum_ + line["price"] * line["qty"]'),
        ('user = User.objects.get(pk=data["id"])', 'owner = User.objects.get(pk=body["id"])'),
    ],
)
def test_the_same_shape_with_other_names_fires(taught: str, written: str) -> None:
    assert _fires(taught, written)


@pytest.mark.parametrize(
    ("taught", "written"),
    [
        ('n = int(request.args["n"])', 'n = float(request.args["n"])'),  # another call
        ('n = int(request.args["n"])', 'n = int(request.args["page"])'),  # another key
        ('n = int(request.args["n"])', 'n = int(request.form["n"])'),  # another attribute
        ("data = json.loads(request.body)", "data = yaml.loads(request.body)"),  # module
        ("ratio = self.total / self.count", "ratio = self.total * self.count"),  # operator
        ('total = data.get("qty") * price', 'total = data.get("qty") * 3'),  # a constant
        ("data = json.loads(request.body)", "data = json.loads(request.data)"),
        ("r = requests.get(self.url, timeout=None)", "r = requests.get(self.url, timeout=5)"),
    ],
)
def test_another_target_key_or_operator_does_not_fire(taught: str, written: str) -> None:
    assert not _fires(taught, written)


def _fires(taught: str, written: str) -> bool:
    """Whether the rule ``taught``'s shape makes flags the line ``written``."""
    shape = shape_of(taught)
    assert shape is not None
    tree = ast.parse(written)
    return bool(learned_comments([_rule(1, shape)], "a.py", tree, [written], frozenset({1})))


def _rule(number: int, shape: str, **fields: Any) -> LearnedRule:
    values: dict[str, Any] = {
        "number": number,
        "shape": shape,
        "example": 'n = int(request.args["n"])',
        "title": "ValueError: invalid literal for int() with base 10: 'x'",
        "issue_id": 14,
        "finding_id": 3,
        "created_at": CREATED,
        "link": "https://mendline.example/issues/14",
    }
    return LearnedRule(**(values | fields))


SOURCE = textwrap.dedent(
    """\
    import json

    def page(request):
        n = int(request.args["n"])
        total = (
            3
            + int(
                request.args["n"]
            )
        )
        try:
            m = int(request.args["n"])
        except ValueError:
            m = 0
        return n, m, int(request.args["page"])

    def show(order):
        return order.customer.email
    """
)
LINES = SOURCE.splitlines()
INT_RULE = _rule(12, "int(request.args['n'])")
EMAIL_RULE = _rule(13, "_.customer.email", title="AttributeError:\x1b[31m 'NoneType'\nboom")


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({4}, [("MRL12", 4, 9)]),  # a one-line statement
        ({1, 2, 3}, []),  # lines without the shape
        ({8}, [("MRL12", 8, None)]),  # a line inside the expression of a longer statement
        ({6}, []),  # a changed line of the statement, outside the expression
        ({12}, []),  # guarded by a try with a handler
        ({15}, []),  # another key
        ({4, 7, 8, 18}, [("MRL12", 4, 9), ("MRL12", 7, 11), ("MRL13", 18, 12)]),
    ],
)
def test_changed_lines_with_a_learned_shape_are_flagged(
    changed: set[int], expected: list[tuple[str, int, int | None]]
) -> None:
    comments = learned_comments(
        [INT_RULE, EMAIL_RULE], "app/views.py", ast.parse(SOURCE), LINES, frozenset(changed)
    )
    assert [(c.rule_id, c.line, c.column) for c in comments] == expected


def test_a_comment_names_the_issue_that_taught_it_on_one_printable_line() -> None:
    (comment,) = learned_comments(
        [EMAIL_RULE], "app/views.py", ast.parse(SOURCE), LINES, frozenset({18})
    )
    assert comment == ReviewComment(
        rule_id="MRL13",
        source="learned",
        severity="warning",
        path="app/views.py",
        line=18,
        message='this is the shape of the line that caused issue #14 "AttributeError:\\x1b[31m'
        " 'NoneType' boom\" in production (_.customer.email; learned rule MRL13)",
        code="return order.customer.email",
        column=12,
        suggestion="check that the object is not None before reading its attribute",
        issue_id=14,
        link="https://mendline.example/issues/14",
    )


@pytest.mark.parametrize(
    ("rule", "suggestion"),
    [
        (_rule(1, "_['a']['b']"), "check that the key or index is there first"),
        (_rule(1, "_.total / _.count"), "check that the divisor is not zero"),
        (_rule(1, "_.get('qty') * _"), "check that the operands are not None"),
        (_rule(1, "json.loads(_)"), "validate what the call is given"),
        (_rule(1, "json.loads(_)", fix="wrapped it in\ntry/except"), "issue #14 was fixed so:"),
    ],
)
def test_the_suggestion_is_the_fix_if_known_else_a_guard(
    rule: LearnedRule, suggestion: str
) -> None:
    tree = ast.parse("x = d['a']['b'] + o.total / o.count + e.get('qty') * p + json.loads(b)")
    comments = learned_comments([rule], "a.py", tree, ["x"], frozenset({1}))
    assert [c.suggestion and c.suggestion.startswith(suggestion) for c in comments] == [True]
    assert "\n" not in (comments[0].suggestion or "")


def test_disabled_rules_are_not_applied_and_one_comment_a_rule_and_line() -> None:
    tree = ast.parse("x = int(request.args['n']) + int(request.args['n'])")
    rules = [INT_RULE, _rule(14, "int(request.args['n'])", disabled_at=CREATED)]
    comments = learned_comments(rules, "a.py", tree, ["x"], frozenset({1}))
    assert [(c.rule_id, c.column) for c in comments] == [("MRL12", 5)]
    assert learned_comments(rules[1:], "a.py", tree, ["x"], frozenset({1})) == []


def test_a_learned_rule_has_its_metadata_for_outputs() -> None:
    rule = learned_review_rule(EMAIL_RULE)
    assert (rule.id, rule.name, rule.severity, rule.source) == (
        "MRL13",
        "learned-rule-13",
        "warning",
        "learned",
    )
    assert rule.summary == (
        "the shape of the line that caused issue #14 \"AttributeError:\\x1b[31m 'NoneType' boom\""
    )
    assert "`mendline review rules disable MRL13`" in rule.help and "\n" not in rule.help


def _event(*exceptions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"exceptions": [{"type": "E", "value": "", "frames": f} for f in exceptions]}


def _frame(line: str | None, *, in_app: bool = True, filename: str = "/app/a.py") -> dict[str, Any]:
    return {"filename": filename, "function": "f", "in_app": in_app, "context_line": line}


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            _event([_frame("outer()"), _frame("  inner()  "), _frame("lib()", in_app=False)]),
            "inner()",
        ),
        # root cause first: its frame, not the one of the exception raised from it
        (_event([_frame("d['k']")], [_frame("raise Wrapped() from exc")]), "d['k']"),
        (_event([], [_frame("d['k']")]), "d['k']"),  # a cause that was never raised
        (_event([_frame("lib()", in_app=False)], [_frame("x.y")]), "x.y"),
        (_event([_frame("x.y", filename="app.js")]), None),
        (_event([_frame(None)]), None),
        (_event([_frame("lib()", in_app=False)]), None),
        ({"exceptions": []}, None),
        ({}, None),
    ],
)
def test_the_culprit_line_is_the_innermost_in_app_frame_of_the_root_cause(
    event: dict[str, Any], line: str | None
) -> None:
    assert culprit_line(event) == line
