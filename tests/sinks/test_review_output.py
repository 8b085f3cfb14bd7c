"""A review's outputs from hostile text (code, an LLM's words, issue titles from events): the
markdown comment renders (with a real CommonMark renderer and GFM's tables and bare-URL
links) no HTML, link, image or mention of its data and stays under its limit; workflow
annotations read back as GitHub's runner reads them and keep to GitHub's per-step caps;
rdjsonl and JSON lines parse with the right fields."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from markdown_it import MarkdownIt

from mendline.schemas.printable import printable
from mendline.schemas.review import (
    AI_RULE,
    LIKELY_FIX_RULE,
    PRODUCTION_RULE,
    REGRESSION_RULE,
    ChangedFile,
    ChangedFunction,
    FrameRef,
    FunctionContext,
    IssueRecord,
    Review,
    ReviewComment,
    ReviewRule,
    ReviewSeverity,
    ReviewUsage,
    SkippedFile,
)
from mendline.sinks.forges import (
    REVIEW_MARKER,
    review_annotations,
    review_json,
    review_markdown,
    review_rdjsonl,
)
from mendline.sinks.forges._review_output import escape_data, escape_property, replacement

_RENDER = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(
    ["linkify", "table", "strikethrough"]
)
# GFM links www. and scheme URLs, not bare names: "orders.py" (.py is a TLD) is no link there.
_RENDER.linkify.set({"fuzzy_link": False})
WHEN = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
LINK = "https://mendline.example/issues/14"
HOSTILE = [
    "a | b || c",
    "line one\nline two\r\nline three",
    "```\nfenced\n``` and `tick`",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "@alice and @org/team, fixes #12 and !3",
    "[click](javascript:alert(1)) ![pixel](https://evil.example/p.png)",
    "::error file=x.py,line=1::forged",
    "%0A::warning::forged %25",
    "see https://evil.example/bare and www.evil.example",
    "naïve — 日本語 \u202e \x1b[31mred",
    "<!-- mendline-review -->",
    "x" * 5000,
]


def _comment(
    rule_id: str,
    source: str,
    severity: ReviewSeverity,
    path: str,
    line: int,
    message: str,
    **more: Any,
) -> ReviewComment:
    return ReviewComment(rule_id, source, severity, path, line, message, **more)  # type: ignore[arg-type]


def _issue(issue_id: int, title: str, **more: Any) -> IssueRecord:
    values: dict[str, Any] = {
        "status": "open",
        "culprit": "shop.orders in create",
        "events_7d": 23,
        "times_seen": 140,
        "last_seen": WHEN,
        "resolved_at": None,
        "root_cause": "The sku is read with d[key] | crashes\nwhen <missing> @ops",
        "verdict": "right",
        "patch": None,
        "frames": (FrameRef("shop/orders.py", "shop.orders", "create", 12, "x = d[k]"),),
        "link": LINK,
    }
    return IssueRecord(issue_id, title, **{**values, **more})


RULES = (
    ReviewRule("MR101", "int-on-input", "error", "int() on request input", "Guard it.", "rule"),
    ReviewRule("MR105", "bare-except", "warning", "A bare except", "Name it | now", "rule"),
    ReviewRule(
        "MRL12", "learned-12", "warning", "Learned from #14 @team", "<b>Seen</b> [x](y)", "learned"
    ),
    ReviewRule(REGRESSION_RULE, "regression", "error", "A culprit line again", "", "production"),
    ReviewRule(PRODUCTION_RULE, "fails-in-production", "warning", "Fails now", "", "production"),
    ReviewRule(LIKELY_FIX_RULE, "likely-fix", "info", "Looks like the fix", "", "production"),
    ReviewRule(AI_RULE, "llm-review", "info", "The LLM's review", "", "llm"),
)


def hostile_review() -> Review:
    comments = [
        _comment(
            "MR101",
            "rule",
            "error",
            "shop/orders.py",
            12,
            HOSTILE[0] + " " + HOSTILE[3],
            code="        qty = int(request.args['qty'])",
            column=15,
            suggestion="        qty = int(request.args.get('qty', '0'))",
        ),
        _comment(
            "MR105",
            "rule",
            "warning",
            "shop/orders.py",
            20,
            HOSTILE[1],
            code="    except:",
            end_line=21,
            suggestion="Catch the exception you expect.\n@alice [x](javascript:y)",
        ),
        _comment(
            "MRL12",
            "learned",
            "warning",
            "odd, name: here.py",
            3,
            HOSTILE[4] + " " + HOSTILE[5],
            code="x = d[k]",
            issue_id=14,
            link=LINK,
        ),
        _comment(
            REGRESSION_RULE,
            "production",
            "error",
            "docs/naïve file.py",
            7,
            HOSTILE[6] + " " + HOSTILE[7],
            code="return table[key]",
            issue_id=9,
            link="javascript:alert(1)",
        ),
        _comment(
            PRODUCTION_RULE, "production", "warning", "shop/orders.py", 12, HOSTILE[8], issue_id=14
        ),
        _comment(
            LIKELY_FIX_RULE, "production", "info", "shop/orders.py", 13, HOSTILE[9], issue_id=14
        ),
        _comment(
            AI_RULE,
            "llm",
            "info",
            "a|b/`c`.py",
            1,
            HOSTILE[2] + " " + HOSTILE[10] + " " + HOSTILE[11],
            confidence=0.82,
            suggestion="```\n<script>\n```",
        ),
    ]
    function = ChangedFunction("shop/orders.py", "Orders.create", 8, 30, (12, 13, 20))
    return Review(
        base="a1b2c3d",
        head="e4f5`a6",
        files=(
            ChangedFile("shop/orders.py", None, "modified", frozenset({12, 13, 20}), ((8, 30),)),
            ChangedFile("odd, name: here.py", "old.py", "renamed", frozenset({3}), ((1, 5),)),
            ChangedFile("docs/naïve file.py", None, "added", frozenset({7}), ((1, 9),)),
            ChangedFile("a|b/`c`.py", None, "added", frozenset({1}), ((1, 1),)),
        ),
        skipped=(SkippedFile("logo.png", "binary"), SkippedFile("x|y.txt", "not Python <b>")),
        rules=RULES,
        comments=tuple(comments),
        functions=(
            FunctionContext(
                function,
                (
                    _issue(14, "KeyError: 'sku' | @alice <script>"),
                    _issue(
                        9,
                        "ValueError [x](javascript:1)",
                        status="resolved",
                        resolved_at=WHEN,
                        link="javascript:alert(1)",
                    ),
                ),
                likely_fixes=(14,),
            ),
            FunctionContext(ChangedFunction("shop/x.py", "quiet", 1, 2, (1,)), ()),
        ),
        notes=("no database: MENDLINE_DATABASE_URL is not set @ops",),
        llm=ReviewUsage(calls=2, prompt_tokens=1200, completion_tokens=300, comments=3, dropped=1),
        made_at=WHEN,
    )


def _outside_code(html: str) -> str:
    html = re.sub(r"<pre><code.*?</code></pre>", "", html, flags=re.DOTALL)
    return re.sub(r"<code>.*?</code>", "", html, flags=re.DOTALL)


def test_hostile_markdown_renders_no_html_link_image_or_mention_of_its_data() -> None:
    markdown = review_markdown(hostile_review())
    html = _RENDER.render(markdown)

    assert "<script" not in html and "<img" not in html
    assert re.findall(r'<a href="([^"]*)"', html) == [LINK, LINK]  # the issue links we made
    raw = [
        token.content.strip()
        for block in _RENDER.parse(markdown)
        for token in [block, *(block.children or [])]
        if token.type in ("html_block", "html_inline")
    ]
    assert raw == [  # only the HTML we write: the marker and two folded parts
        REVIEW_MARKER,
        "<details><summary>Suggested changes (3)</summary>",
        "</details>",
        "<details><summary>The rules that fired</summary>",
        "</details>",
    ]
    text = _outside_code(html).replace("&amp;", "").replace("&quot;", "").replace("&lt;", "")
    assert not re.search(r"[@#!](?=\w)", text)  # no mention or reference forms
    assert "www." not in text and "://" not in text.replace(f'"{LINK}"', "")
    assert markdown.startswith(REVIEW_MARKER + "\n") and markdown.count(REVIEW_MARKER) == 1


def _table_rows(markdown: str) -> list[list[str]]:
    tokens = _RENDER.parse(markdown)
    rows: list[list[str]] = []
    in_body = False
    for token in tokens:
        if token.type in ("tbody_open", "tbody_close"):
            in_body = token.type == "tbody_open"
        elif in_body and token.type == "tr_open":
            rows.append([])
        elif in_body and token.type == "inline":
            rows[-1].append(token.content)
    return rows


def test_every_comment_is_one_table_row_of_four_cells_the_most_severe_first() -> None:
    review = hostile_review()
    rows = _table_rows(review_markdown(review))

    assert len(rows) == len(review.comments)
    assert all(len(row) == 4 for row in rows)
    assert [row[0] for row in rows] == ["error"] * 2 + ["warning"] * 3 + ["info"] * 2
    html = _RENDER.render(review_markdown(review))
    assert "a|b/`c`.py:1" in html.replace("\u200b", "")  # pipes and backticks shown, not cut


def test_the_markdown_says_the_verdict_context_notes_and_usage() -> None:
    markdown = review_markdown(hostile_review())
    shown = _RENDER.render(markdown).replace("\u200b", "")

    assert "mendline review: 2 errors, 3 warnings, 2 info" in shown
    assert "<strong>likely fixes #14</strong>" in shown
    assert "<strong>likely regression</strong> (resolved 2026-05-01 12:30 UTC)" in shown
    assert "23 events in 7 days" in shown and "last seen 2026-05-01 12:30 UTC" in shown
    assert re.findall(r'href="([^"]*)"', shown) == [LINK, LINK]  # not the javascript: one
    assert "no database: MENDLINE_DATABASE_URL is not set @ops" in shown
    assert "logo.png" in shown and "not Python &lt;b&gt;" in shown
    assert "LLM review: 2 calls, 1,200 prompt and 300 completion tokens" in shown
    assert "quiet" not in shown  # a changed function with no issue is not listed
    assert "The rules that fired" in shown and "int-on-input" in shown


def test_a_replacement_is_a_python_block_and_advice_is_text() -> None:
    markdown = review_markdown(hostile_review())
    fences = [t for t in _RENDER.parse(markdown) if t.type == "fence"]

    assert [(t.info, t.content) for t in fences] == [
        ("python", "        qty = int(request.args.get('qty', '0'))\n")
    ]
    assert "Catch the exception you expect." in markdown


def _many(count: int) -> Review:
    comments = tuple(
        _comment(
            "MR101",
            "rule",
            ("error", "warning", "info")[i % 3],  # type: ignore[arg-type]
            f"pkg/m{i}.py",
            i + 1,
            f"message {i} | " + "long " * 40,
            suggestion="advice " * 20,
        )
        for i in range(count)
    )
    base = hostile_review()
    functions = tuple(
        FunctionContext(
            ChangedFunction(f"pkg/m{i}.py", f"f{i}", 1, 9, (2,)), base.functions[0].issues
        )
        for i in range(60)
    )
    skipped = tuple(SkippedFile(f"skip/{i}.bin", "binary " * 10) for i in range(80))
    notes = tuple(f"note {i}: " + "n" * 300 for i in range(12))
    return replace(base, comments=comments, functions=functions, skipped=skipped, notes=notes)


def _shown_and_left(markdown: str, noun: str, shown: int) -> int:
    left = re.search(rf"_(\d[\d,]*)(?: more)? {noun}s? left out here", markdown)
    return shown + (int(left[1].replace(",", "")) if left else 0)


@pytest.mark.parametrize("limit", [2_000, 10_000, 30_000, 65_000])
def test_over_the_limit_whole_rows_are_left_out_and_counted(limit: int) -> None:
    review = _many(400)
    markdown = review_markdown(review, limit=limit)

    assert len(markdown) <= limit
    rows = _table_rows(markdown)
    assert all(len(row) == 4 and row[3].endswith("long") for row in rows)  # whole rows
    assert _shown_and_left(markdown, "comment", len(rows)) == 400
    assert [row[0] for row in rows] == sorted(
        (row[0] for row in rows), key=lambda s: "ewi".index(s[0])
    )
    functions = len(re.findall(r"^- `f\d+` in", markdown, re.MULTILINE))
    assert _shown_and_left(markdown, "function", functions) == 60
    skipped = len(re.findall(r"^- `skip/", markdown, re.MULTILINE))
    assert _shown_and_left(markdown, "file", skipped) == 80
    notes = len(re.findall(r"^- note \d+", markdown, re.MULTILINE))
    assert _shown_and_left(markdown, "note", notes) == 12
    assert _shown_and_left(markdown, "rule", markdown.count("- **MR101**")) == 1


def test_a_review_under_the_limit_is_whole() -> None:
    review = _many(20)
    markdown = review_markdown(review, limit=1_000_000)

    assert " left out here" not in markdown
    assert len(_table_rows(markdown)) == 20 and markdown.count("- `skip/") == 80


def test_without_marker_and_a_too_small_limit() -> None:
    assert not review_markdown(hostile_review(), marker=False).startswith("<!--")
    with pytest.raises(ValueError):
        review_markdown(hostile_review(), limit=500)


# --- annotations ----------------------------------------------------------------------------


def _unescape(text: str, pairs: list[tuple[str, str]]) -> str:
    """As actions/runner's ActionCommand unescapes: each mapping in order, %25 last."""
    for escaped, char in pairs:
        text = text.replace(escaped, char)
    return text


_DATA = [("%0D", "\r"), ("%0A", "\n"), ("%25", "%")]
_PROPERTY = [("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")]


def _parse(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command as the runner's TryParseV2 reads it."""
    assert line.startswith("::")
    end = line.index("::", 2)
    name, _, props = line[2:end].partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, _, value = pair.partition("=")
        properties[key] = _unescape(value, _PROPERTY)
    return name, properties, _unescape(line[end + 2 :], _DATA)


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("a%b", "a%25b", "a%25b"),
        ("one\ntwo\r\n", "one%0Atwo%0D%0A", "one%0Atwo%0D%0A"),
        ("x.py:1,2", "x.py:1,2", "x.py%3A1%2C2"),
        ("%0A::e", "%250A::e", "%250A%3A%3Ae"),
        ("a;b]", "a;b]", "a;b]"),  # the old ##[ ] syntax's characters mean nothing to ::
    ],
)
def test_workflow_command_escaping_is_githubs(text: str, data: str, prop: str) -> None:
    assert (escape_data(text), escape_property(text)) == (data, prop)
    assert _unescape(escape_data(text), _DATA) == text
    assert _unescape(escape_property(text), _PROPERTY) == text


def test_annotations_read_back_as_written() -> None:
    review = hostile_review()
    lines = review_annotations(review).splitlines()

    assert len(lines) == len(review.comments)
    parsed = [_parse(line) for line in lines]
    assert [p[0] for p in parsed] == ["error"] * 2 + ["warning"] * 3 + ["notice"] * 2
    by_place = {(p[1]["file"], int(p[1]["line"]), p[1]["title"].split()[1]): p for p in parsed}
    for comment in review.comments:
        place = (printable(comment.path), comment.line, comment.rule_id)
        _, properties, message = by_place[place]
        assert properties.get("endLine") == (str(comment.end_line) if comment.end_line else None)
        assert properties.get("col") == (str(comment.column) if comment.column else None)
        assert properties["title"].startswith(f"mendline {comment.rule_id}")
        shown = printable(comment.message.replace("\r\n", "\n"), lines=True)
        assert message.startswith(shown[:15_000])
    assert by_place[("odd, name: here.py", 3, "MRL12")][2].endswith(f"\n\nIssue 14: {LINK}")
    assert "javascript" not in by_place[("docs/naïve file.py", 7, REGRESSION_RULE)][2]
    assert all("\n" not in line and "\r" not in line for line in lines)


def _graded(errors: int, warnings: int, infos: int) -> Review:
    counts = {"error": errors, "warning": warnings, "info": infos}
    comments = tuple(
        _comment("MR101", "rule", severity, f"f{severity}.py", i + 1, f"{severity} {i}")  # type: ignore[arg-type]
        for severity, count in counts.items()
        for i in range(count)
    )
    return replace(hostile_review(), comments=comments)


@pytest.mark.parametrize(
    ("counts", "shown", "hidden"),
    [
        ((3, 3, 3), (3, 3, 3), 0),
        ((10, 10, 10), (10, 10, 10), 0),
        ((15, 12, 12), (10, 10, 9), 10),
        ((11, 0, 10), (10, 0, 9), 2),
        ((0, 0, 11), (0, 0, 9), 2),
    ],
)
def test_annotations_keep_to_githubs_caps_per_step_with_a_notice(
    counts: tuple[int, int, int], shown: tuple[int, int, int], hidden: int
) -> None:
    lines = review_annotations(_graded(*counts)).splitlines()
    parsed = [_parse(line) for line in lines]
    kinds = [p[0] for p in parsed if "file" in p[1]]

    assert (kinds.count("error"), kinds.count("warning"), kinds.count("notice")) == shown
    assert kinds == sorted(kinds, key=["error", "warning", "notice"].index)  # severe first
    assert [p[1]["file"] for p in parsed if p[0] == "error"] == ["ferror.py"] * shown[0]
    notices = [p for p in parsed if p[0] == "notice"]
    assert len(notices) <= 10
    summary = [p for p in parsed if "file" not in p[1]]
    if hidden:
        assert len(summary) == 1 and summary[0][2].startswith(f"{hidden} more review comment")
        assert "job summary" in summary[0][2]
    else:
        assert summary == []


# --- rdjsonl --------------------------------------------------------------------------------


RDF_FIELDS = {"message", "location", "severity", "source", "code", "suggestions"}


def test_rdjsonl_is_one_reviewdog_diagnostic_a_line() -> None:
    review = hostile_review()
    text = review_rdjsonl(review)
    diagnostics = [json.loads(line) for line in text.splitlines()]

    assert text.isascii() and len(diagnostics) == len(review.comments)
    for comment, diagnostic in zip(review.comments, diagnostics, strict=True):
        assert set(diagnostic) <= {
            *["message", "location", "severity", "source", "code"],
            "suggestions",
        }
        assert diagnostic["location"]["path"] == comment.path
        assert diagnostic["location"]["range"]["start"]["line"] == comment.line
        assert diagnostic["location"]["range"]["end"] == {"line": comment.last_line}
        assert diagnostic["severity"] == comment.severity.upper()
        assert diagnostic["source"] == {"name": "mendline"}
        assert diagnostic["code"]["value"] == comment.rule_id
        assert diagnostic["code"].get("url") == (LINK if comment.link == LINK else None)
        html = _RENDER.render(diagnostic["message"])
        assert "<a " not in html and "<img" not in html and "<script" not in html
    first = diagnostics[0]
    assert first["location"]["range"]["start"]["column"] == 15
    assert first["suggestions"] == [
        {
            "range": {"start": {"line": 12}, "end": {"line": 12}},
            "text": "        qty = int(request.args.get('qty', '0'))",
        }
    ]
    assert [("suggestions" in d) for d in diagnostics] == [True] + [False] * 6
    assert "Catch the exception you expect." in diagnostics[1]["message"]


TRY = "  try:\n      a = f()\n  except E:\n      a = 1"


@pytest.mark.parametrize(
    ("code", "suggestion", "path", "expected"),
    [
        ("    x = int(v)", "    x = int(v, 10)", "a.py", "    x = int(v, 10)"),
        ("    x = int(v)", "    x = int(v, 10)\n", "a.pyi", "    x = int(v, 10)"),
        ("    if x == None:", "    if x is None:", "a.py", "    if x is None:"),
        ("  a = f()", TRY, "a.py", TRY),
        ("    x = f(a)", "Consider:\n    x = f(a, b)", "a.py", None),
        ("x = f(a)", "Consider this: x = f(a, b)", "a.py", None),
        ("    x = int(v)", "Pass a base to int().", "a.py", None),
        ("x = int(v)", "Use int(v, 10) instead", "a.py", None),
        ("    x = int(v)", "x = int(v, 10)", "a.py", None),  # not the line's indentation
        ("    x = int(v)", "    x = int(v)", "a.py", None),  # no change
        ("", "x = 1", "a.py", None),  # no line to replace
        ("x = int(v)", "x = int(v, 10)", "a.js", None),
    ],
)
def test_a_suggestion_is_a_replacement_only_when_it_can_be_one(
    code: str, suggestion: str, path: str, expected: str | None
) -> None:
    comment = _comment("MR101", "rule", "error", path, 3, "m", code=code, suggestion=suggestion)
    assert replacement(comment) == expected


# --- JSON -----------------------------------------------------------------------------------


def _keys_match(value: Any, plain: Any) -> None:
    """Every dataclass field of ``value`` is a key of ``plain``, in order, all the way down."""
    if hasattr(value, "__dataclass_fields__"):
        names = [f.name for f in fields(value)]
        assert list(plain)[: len(names)] == names
        for name in names:
            _keys_match(getattr(value, name), plain[name])
    elif isinstance(value, tuple):
        for item, item_plain in zip(value, plain, strict=True):
            _keys_match(item, item_plain)


def test_the_json_holds_every_field_in_a_stable_order() -> None:
    review = hostile_review()
    out = review_json(review)

    assert json.loads(json.dumps(out)) == out  # plain JSON
    assert list(out) == [
        "version",
        "base",
        "head",
        "made_at",
        "counts",
        "files",
        "skipped",
        "rules",
        "comments",
        "functions",
        "notes",
        "llm",
    ]
    assert out["counts"] == {"error": 2, "warning": 3, "info": 2, "total": 7}
    assert out["made_at"] == "2026-05-01T12:30:00+00:00"
    assert out["files"][0]["added"] == [12, 13, 20] and out["files"][0]["hunks"] == [[8, 30]]
    assert out["functions"][0]["issues"][1]["resolved_at"] == "2026-05-01T12:30:00+00:00"
    for name in ("files", "skipped", "rules", "comments", "functions"):
        _keys_match(getattr(review, name), out[name])
    _keys_match(review.llm, out["llm"])
    assert [c["fingerprint"] for c in out["comments"]] == [
        f"{c.fingerprint()}:1" for c in review.comments
    ]
    assert out["comments"][1]["message"] == HOSTILE[1]  # as it was: JSON is safe for text
