"""The heal stage's check before any stage starts: the fix policy, and each repository's
checkout as the settings make it (the work root outside it, the commit author well formed),
so a bad setting is named at start, not found after a fix was claimed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import load_settings
from mendline.stages import heal


def policy(tmp_path: Path) -> Path:
    path = tmp_path / "fixes.toml"
    path.write_text(
        f'[[repositories]]\nname = "calc"\npath = "{tmp_path / "repo"}"\n'
        '[[repositories.mappings]]\nstack_root = ""\nsource_root = ""\n'
    )
    return path


def test_a_good_setup_passes_and_gives_the_policy(tmp_path: Path) -> None:
    settings = load_settings(fix_policy_file=policy(tmp_path), fix_work_root=tmp_path / "work")
    assert [r.name for r in heal.check(settings).repositories] == ["calc"]


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ({"fix_author": "mendline"}, 'the commit author must be "name <email>"'),
        ({"fix_work_root": "repo/.worktrees"}, "must be outside the repository"),
    ],
)
def test_a_bad_author_or_work_root_is_named_before_any_fix(
    tmp_path: Path, setting: dict[str, str], says: str
) -> None:
    values: dict[str, object] = {"fix_policy_file": policy(tmp_path), **setting}
    if "fix_work_root" in setting:
        values["fix_work_root"] = tmp_path / setting["fix_work_root"]
    with pytest.raises(ConfigError, match=says):
        heal.check(load_settings(**values))
