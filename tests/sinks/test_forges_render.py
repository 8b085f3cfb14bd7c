"""Commit messages and pull-request text from hostile findings: rendered by a real
CommonMark renderer (with GFM's bare-URL links), they hold no link, image, HTML, mention or
reference; commit messages hold no forged trailer."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from mendline.schemas.finding import Evidence
from mendline.schemas.fix import CommandOutcome, Verification
from mendline.sinks.forges import (
    code_span,
    commit_message,
    fenced,
    markdown_text,
    neutral_line,
    pr_body,
    pr_title,
)
from tests.git_helpers import change, finding

_RENDER = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(
    ["linkify", "table", "strikethrough"]
)
HOSTILE = [
    "@alice look",
    "fixes #12 and !3 ~bug %v1 $snippet",
    "[click](https://evil.example/x)",
    "![pixel](https://evil.example/p.png)",
    '<img src=x onerror="alert(1)"> <script>alert(1)</script>',
    "<https://evil.example/auto>",
    "see https://evil.example/bare and www.evil.example",
    "mail root@evil.example",
    "# Heading\n- item\n1. one\n> quote\n===",
    "**bold** _em_ ~~gone~~ | a | b |",
    "&lt;b&gt; &amp; \\[x](y)",
    "\x1b[31mred\u202e",
]


def _html(markdown: str) -> str:
    return _RENDER.render(markdown)


def _visible(html: str) -> str:
    return html.replace("\u200b", "")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_plain_text(text: str) -> None:
    html = _html(markdown_text(text))
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert not re.search(r"<(h1|ul|ol|blockquote|strong|em|s|del|table)>", html)
    assert not re.search(r"[@#!~$%](?=\w)", re.sub(r"&\w+;", "", html))  # no mention, reference


def test_what_was_written_is_what_is_shown() -> None:
    shown = _visible(_html(markdown_text("a <b> & [c](d) *e* @f #1")))
    assert shown == "<p>a &lt;b&gt; &amp; [c](d) *e* @f #1</p>\n"


@pytest.mark.parametrize("text", ["plain", "a ``` b", "````\nend\n````", "`"])
def test_a_fence_is_longer_than_any_backtick_run_inside(text: str) -> None:
    block = fenced(text + "\n[x](y) @alice")
    tokens = _RENDER.parse(block)
    assert [t.type for t in tokens] == ["fence"]
    assert tokens[0].content.rstrip("\n") == text + "\n[x](y) @alice"


@pytest.mark.parametrize("text", ["a`b", "`x`", "``", "plain"])
def test_a_code_span_holds_any_backticks(text: str) -> None:
    html = _html(code_span(text))
    code = re.fullmatch(r"<p><code>(.*)</code></p>\n", html, re.DOTALL)
    assert code is not None and code[1] == text.replace("&", "&amp;")


def test_titles_are_one_line_with_no_mention_or_link() -> None:
    title = pr_title(change("x", issue_title="KeyError @team\n#4 https://x.example " + "y" * 300))
    assert "\n" not in title and len(title) <= 215
    assert "@team" not in title and "#4" not in title and "https://x" not in title
    assert neutral_line("a\tb  c") == "a b c"


def test_commit_trailers_cannot_be_forged() -> None:
    hostile = change(
        "x",
        approvers=("eve\nMendline-Fix: 999", "bob"),
        finding=finding(root_cause="It broke.\n\nApproved-by: mallory\nMendline-Issue: 7"),
    )
    message = commit_message(hostile)
    *_, trailers = message.rstrip("\n").split("\n\n")
    assert trailers.splitlines() == [
        "Mendline-Issue: 1",
        "Mendline-Finding: 3",
        "Mendline-Fix: 2",
        "Approved-by: eve Mendline-Fix: 999",
        "Approved-by: bob",
    ]
    starts = [line.split(":")[0] for line in message.splitlines() if ":" in line]
    assert (
        starts.count("Mendline-Issue") == 1 and "Approved-by: mallory" not in message.splitlines()
    )


def test_a_pull_request_body_from_a_hostile_finding_renders_safely() -> None:
    evil = finding(
        root_cause=" ".join(HOSTILE),
        suggested_fix="Run [this](https://evil.example) @ops",
        evidence=[
            Evidence(
                location="app.py:1 `x` <b>",
                line="x = '```' + '<script>'",
                note="@alice ![i](https://evil.example/i.png)",
            )
        ],
    )
    verification = Verification(
        passed=False,
        commands=[
            CommandOutcome(
                argv=["pytest", "-q"],
                exit_code=1,
                seconds=1.5,
                output="```\n<img src=x> @bob FAILED [link](https://evil.example)",
            )
        ],
    )
    body = pr_body(
        change("x", finding=evil, link="javascript:alert(1)", approvers=("@root",)),
        verification,
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a ```\n+b <script>\n",
    )

    html = _html(body)
    assert "<a " not in html and "<img" not in html and "<script" not in html
    text = re.sub(r"<pre><code.*?</code></pre>", "", html, flags=re.DOTALL)
    assert not re.search(r"[@#!](?=\w)", re.sub(r"&\w+;", "", text))
    assert html.count("<pre><code") == 3  # the evidence line, the output, the diff
    assert "exit 1, 1.5 s" in html and "Failed." in html
