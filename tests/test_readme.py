"""The README stays true to the code: the settings table and the CI command."""

from __future__ import annotations

import re
from pathlib import Path

from mendline.schemas.settings import settings_reference

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_settings_table_is_the_generated_one() -> None:
    found = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", README, re.S)
    assert found, "README.md lost its settings markers"
    assert found.group(1) == settings_reference(), (
        "README.md's settings table is stale: replace it with `mendline config reference`"
    )


def test_the_readme_gives_the_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = ci[-1]
    assert command in README
