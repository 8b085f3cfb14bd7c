"""Forges: fixes applied in git worktrees of their own, verified, committed and delivered as
a branch, a push, a GitHub or GitLab pull request or a patch file; reverts; the remote's base
and tags fetched; and what an interrupted attempt left behind cleaned up."""

from mendline.sinks.commands import command_environment
from mendline.sinks.forges._api import ForgeAPI, ForgeKind, open_pull_request
from mendline.sinks.forges._change import (
    ApplyOutcome,
    Checkout,
    FixChange,
    OutcomeResult,
    RevertChange,
)
from mendline.sinks.forges._deliver import DeliveryPlan
from mendline.sinks.forges._fix import apply_fix, fetch_base, release_contains, revert
from mendline.sinks.forges._render import (
    code_span,
    commit_message,
    fenced,
    markdown_text,
    neutral_line,
    pr_body,
    pr_title,
    revert_body,
    revert_message,
    revert_title,
)
from mendline.sinks.forges._review_markdown import REVIEW_MARKER, review_markdown
from mendline.sinks.forges._review_output import review_annotations, review_json, review_rdjsonl
from mendline.sinks.forges._review_post import COMMENT_LIMITS, post_review_comment
from mendline.sinks.forges._review_sarif import review_sarif
from mendline.sinks.forges._verify import FILES, VerifyPlan, verify
from mendline.sinks.forges._workspace import CleanupReport, cleanup_stale

__all__ = [
    "COMMENT_LIMITS",
    "FILES",
    "REVIEW_MARKER",
    "ApplyOutcome",
    "Checkout",
    "CleanupReport",
    "DeliveryPlan",
    "FixChange",
    "ForgeAPI",
    "ForgeKind",
    "OutcomeResult",
    "RevertChange",
    "VerifyPlan",
    "apply_fix",
    "cleanup_stale",
    "code_span",
    "command_environment",
    "commit_message",
    "fenced",
    "fetch_base",
    "markdown_text",
    "neutral_line",
    "open_pull_request",
    "post_review_comment",
    "pr_body",
    "pr_title",
    "release_contains",
    "revert",
    "revert_body",
    "revert_message",
    "revert_title",
    "review_annotations",
    "review_json",
    "review_markdown",
    "review_rdjsonl",
    "review_sarif",
    "verify",
]
