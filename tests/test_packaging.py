"""The built distribution holds every package: pyproject.toml lists them one by one."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_mendline_is_listed_for_the_build() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(Path(folder).relative_to(ROOT).parts)
        for folder, _, files in os.walk(ROOT / "mendline", followlinks=True)  # the linked ones
        if "__init__.py" in files
    }
    assert "mendline.sample_app" in found and "mendline.sinks.channels" in found
    assert found == set(setuptools["packages"])
