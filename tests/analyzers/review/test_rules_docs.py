"""docs/review.md lists every rule a review can report, as the code has them."""

from __future__ import annotations

import re
from pathlib import Path

from mendline.analyzers.review import AI_REVIEW_RULE, BUILTIN_RULES, PRODUCTION_RULES

DOC = Path(__file__).resolve().parents[3] / "docs" / "review.md"


def rules_table() -> str:
    """The table of docs/review.md's "The rules", made from the rules themselves."""
    rows = ["| rule | name | severity | what it finds |", "| --- | --- | --- | --- |"]
    for rule in (*BUILTIN_RULES, *PRODUCTION_RULES, AI_REVIEW_RULE):
        rows.append(f"| `{rule.id}` | {rule.name} | {rule.severity} | {rule.summary} |")
    return "\n".join(rows) + "\n"


def test_the_docs_list_every_rule_as_the_code_has_it() -> None:
    found = re.search(r"<!-- rules:start -->\n(.*?)<!-- rules:end -->", DOC.read_text(), re.S)
    assert found is not None
    assert found[1] == rules_table()
