"""Forges: fixes applied in git worktrees of their own, verified, committed and delivered as
a branch, a push, a GitHub or GitLab pull request or a patch file; reverts; the remote's base
and tags fetched; what an interrupted attempt left behind cleaned up; and for a review, what
it reads from git and from a CI job's environment, what it writes (Markdown, SARIF, GitHub
annotations, rdjsonl, JSON) and the one comment it keeps on a pull request."""

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
from mendline.sinks.forges._git import Git
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
from mendline.sinks.forges._review_ci import PostTarget, ci_base, post_target
from mendline.sinks.forges._review_git import (
    default_branch,
    files_at,
    large_files,
    merge_base,
    range_diff,
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
    "Git",
    "OutcomeResult",
    "PostTarget",
    "RevertChange",
    "VerifyPlan",
    "apply_fix",
    "ci_base",
    "cleanup_stale",
    "code_span",
    "command_environment",
    "commit_message",
    "default_branch",
    "fenced",
    "fetch_base",
    "files_at",
    "large_files",
    "markdown_text",
    "merge_base",
    "neutral_line",
    "open_pull_request",
    "post_review_comment",
    "post_target",
    "pr_body",
    "pr_title",
    "range_diff",
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
