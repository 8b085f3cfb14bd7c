"""The ``mendline review`` command: review a pull request's changes with production's
knowledge, in CI; and ``mendline review rules``, the rules learned from findings."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from mendline.cli._options import AS_JSON, Commands, whole_days
from mendline.cli._review_rules import add_rules_commands
from mendline.cli._review_run import run_review
from mendline.schemas.review import REVIEW_SEVERITIES

__all__ = ["register"]

_DESCRIPTION = """\
Reviews the changes of a git range (default: HEAD against its merge base with the default
branch; in a pull request's CI job, its base) or of a unified diff, reporting only on added
and changed lines: built-in rules for the failure classes production shows, rules learned
from findings marked right, the issues production has in each changed function (likely
fixes and likely regressions), and, with --llm, the LLM's review. Production is read from
PostgreSQL (MENDLINE_DATABASE_URL; read-only is enough) or the dashboard's API (--dashboard
with MENDLINE_TOKEN); without either the other checks still run, and the output says so.
Exit status: 0, or 1 with comments at or above --fail-on, 2 for a wrong use. docs/review.md
has the CI set-ups."""


def register(commands: Commands) -> None:
    """Add ``review`` and ``review rules``."""
    review = commands.add_parser(
        "review",
        parents=[AS_JSON],
        help="review a pull request's changes with production's knowledge (in CI)",
        description=_DESCRIPTION,
    )
    what = review.add_argument_group("what to review")
    what.add_argument("--base", metavar="REV", help="review from here (default: see above)")
    what.add_argument("--head", metavar="REV", help="review up to here (default: HEAD)")
    what.add_argument(
        "--diff",
        metavar="FILE",
        help="a unified diff to review instead of a range (- for standard input); the files"
        " after the change are read from the working tree",
    )
    what.add_argument("--repo", metavar="DIR", default=".", help="the repository (default: .)")
    what.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a path not to review, shell-style, * crossing / ('vendor/*'; repeat for"
        " several); the files are listed as skipped",
    )
    out = review.add_argument_group("outputs (several at once; FILE - is standard output)")
    out.add_argument("--markdown", metavar="FILE", help="Markdown (a PR comment's body)")
    out.add_argument("--sarif", metavar="FILE", help="SARIF 2.1.0 (GitHub code scanning)")
    out.add_argument("--rdjsonl", metavar="FILE", help="reviewdog's rdjsonl")
    out.add_argument("--json-file", metavar="FILE", help="the whole review as JSON")
    out.add_argument(
        "--annotations",
        action="store_true",
        help="GitHub workflow annotations on standard output (capped as GitHub caps them)",
    )
    out.add_argument(
        "--step-summary",
        action="store_true",
        help="append the Markdown to $GITHUB_STEP_SUMMARY (GitHub Actions)",
    )
    out.add_argument(
        "--fail-on",
        choices=REVIEW_SEVERITIES,
        help="exit 1 when a comment is of this severity or worse (default: always 0)",
    )
    post = review.add_argument_group("posting one comment on the pull request")
    post.add_argument("--post", choices=("github", "gitlab"), help="create or update it there")
    post.add_argument("--pr", type=int, metavar="N", help="its number (default: from CI)")
    post.add_argument("--project", help='"owner/repo" or GitLab\'s id (default: from CI)')
    post.add_argument("--forge-url", metavar="URL", help="the forge's API (default: from CI)")
    post.add_argument(
        "--token-env",
        metavar="NAME",
        help="the variable holding the token (default: MENDLINE_REVIEW_TOKEN, then"
        " GITHUB_TOKEN or GITLAB_TOKEN)",
    )
    know = review.add_argument_group("what it knows")
    know.add_argument(
        "--dashboard",
        metavar="URL",
        type=_dashboard_url,
        help="read production from the dashboard's API (with MENDLINE_TOKEN) instead of PostgreSQL",
    )
    know.add_argument(
        "--no-production", action="store_true", help="read no production context at all"
    )
    know.add_argument(
        "--repository",
        metavar="NAME",
        help="the fix policy file's repository whose code mappings map paths to frames"
        " (default: its only one; none: paths are matched by their endings)",
    )
    know.add_argument(
        "--regression-days",
        type=whole_days,
        default=30,
        metavar="N",
        help="an issue resolved in the last N days whose line comes back is a likely"
        " regression (default: 30)",
    )
    know.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="RULE",
        help="a rule's id not to report (repeat for several)",
    )
    know.add_argument("--llm", action="store_true", help="ask the LLM to review too")
    review.set_defaults(run=run_review, error_status=2)
    sub = review.add_subparsers(dest="review_command", metavar="COMMAND")
    add_rules_commands(sub)


def _dashboard_url(text: str) -> str:
    """The dashboard's address: http(s), with no user or password in it (the token goes in
    MENDLINE_TOKEN; a password in the URL would be in the comment's links)."""
    try:
        parts = urlsplit(text)
        credentials = parts.username is not None or parts.password is not None
    except ValueError:
        raise argparse.ArgumentTypeError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError("expected http(s)://HOST[:PORT][/PATH]")
    if credentials:
        raise argparse.ArgumentTypeError(
            "no user or password in the URL: the API token goes in MENDLINE_TOKEN"
        )
    return text
