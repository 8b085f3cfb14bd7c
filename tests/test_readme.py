"""The README stays true to the code: the settings table and the CI command."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mendline.analyzers.policy import parse_policy
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


def test_the_layout_names_every_package() -> None:
    section = README[README.index("## Layout") :]
    # mendline/schemas, mendline/ingest, ... are links to the top-level folders: follow them.
    packages = sorted(
        ".".join(("mendline", *Path(folder).relative_to(ROOT / "mendline").parts))
        for folder, _, files in os.walk(ROOT / "mendline", followlinks=True)
        if "__init__.py" in files
    )
    assert "mendline.sinks.routing" in packages  # the links were followed
    missing = [name for name in packages if f"`{name}`" not in section]
    assert not missing, f"README.md's Layout section does not name {missing}"


def test_the_checks_example_is_the_shipped_file() -> None:
    found = re.search(r"<!-- checks-example:start -->\n```toml\n(.*?)```\n", README, re.S)
    assert found, "README.md lost its checks example markers"
    shipped = ROOT / "analyzers" / "health" / "checks.example.toml"
    assert found.group(1) == shipped.read_text(), (
        "README.md's checks example is stale: paste `mendline checks example` there"
    )


def test_the_fix_policy_example_is_valid() -> None:
    found = re.search(r"<!-- fix-policy-example:start -->\n```toml\n(.*?)```\n", README, re.S)
    assert found, "README.md lost its fix policy example markers"
    policy = parse_policy(found.group(1), "README.md's fix policy example")
    assert [repo.name for repo in policy.repositories] == ["shop"]
    assert [remedy.name for remedy in policy.remediations] == ["restart-worker"]
