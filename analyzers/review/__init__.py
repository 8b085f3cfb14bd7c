"""Code review of a diff: the changed files and functions read from it, the built-in rules
(``ast`` checks of the failure classes the knowledge base explains), rules learned from
findings marked right, the production context of changed functions (likely fixes, likely
regressions), and the LLM's review; ``review_files`` puts them together."""

from mendline.analyzers.review._diff import read_diff
from mendline.analyzers.review._functions import MODULE, changed_functions, scopes
from mendline.analyzers.review._learned import (
    MIN_WEIGHT,
    culprit_line,
    learned_comments,
    learned_review_rule,
    shape_of,
)
from mendline.analyzers.review._llm import AI_REVIEW_RULE, LLMReviewer
from mendline.analyzers.review._production import (
    PRODUCTION_RULES,
    frame_path,
    production_context,
)
from mendline.analyzers.review._review import (
    INPUT_RULES,
    MAX_FILE_BYTES,
    TOO_LARGE,
    is_test_path,
    review_files,
    source_lines,
)
from mendline.analyzers.review._rules import BUILTIN_RULES, check_python, is_suppressed

__all__ = [
    "AI_REVIEW_RULE",
    "BUILTIN_RULES",
    "INPUT_RULES",
    "MAX_FILE_BYTES",
    "MIN_WEIGHT",
    "MODULE",
    "PRODUCTION_RULES",
    "TOO_LARGE",
    "LLMReviewer",
    "changed_functions",
    "check_python",
    "culprit_line",
    "frame_path",
    "is_suppressed",
    "is_test_path",
    "learned_comments",
    "learned_review_rule",
    "production_context",
    "read_diff",
    "review_files",
    "scopes",
    "shape_of",
    "source_lines",
]
