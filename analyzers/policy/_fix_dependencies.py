"""Whether a patch changes a project's dependencies in pyproject.toml or setup.cfg, as far as
its hunks tell: lines under a dependency table or key, or lines that look like requirements
where the hunk shows no table or key to tell by."""

from __future__ import annotations

import re

from mendline.analyzers.patch import FilePatch

__all__ = ["DEPENDENCY_FILES", "dependency_change"]

#: The files whose dependency changes ``[deny] dependency_changes`` refuses (setup.py, which
#: runs when installed, is among the default deny paths whole).
DEPENDENCY_FILES = ("pyproject.toml", "setup.cfg")

_HEADER = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(?:#.*)?$")
# [project.optional-dependencies], [tool.poetry.group.dev.dependencies], [build-system],
# [dependency-groups], setup.cfg's [options.extras_require]...
_DEPENDENCY_TABLE = re.compile(r"(?i)dependenc|require|^build-system$")
_KEY = re.compile(r"^\s*[\"']?([A-Za-z0-9_.-]+)[\"']?\s*[=:]")
# dependencies, optional-dependencies, dev-dependencies, requires, install_requires...
_DEPENDENCY_KEY = re.compile(r"(?i)(?:dependencies|requires?)$")
# "requests>=2", 'foo[bar]', "baz; python_version<'3.12'", "qux" (an array's item).
_REQUIREMENT = re.compile(
    r"""^\s*["'][A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*(?:[<>=!~]|@|;|["'])"""
)
# Poetry's requests = "^2.31" or requests = { version = "..." }.
_VERSION_VALUE = re.compile(r"""=\s*(?:["'][\^~=<>!*]?\s*\d|\{[^}]*\bversion\b)""")


def dependency_change(file: FilePatch) -> int | None:
    """The line (in the new file) of the first change to dependencies in ``file``, a
    pyproject.toml or setup.cfg; None when it changes none, or is another file."""
    if file.path.rpartition("/")[2] not in DEPENDENCY_FILES:
        return None
    for hunk in file.hunks:
        table: bool | None = None  # None: no table seen in the hunk yet
        key: bool | None = None
        line_number = hunk.new_start
        for line in hunk.lines:
            text = line[1:]
            if header := _HEADER.match(text):
                table, key = bool(_DEPENDENCY_TABLE.search(header[1])), False
            elif found := _KEY.match(text):
                key = bool(_DEPENDENCY_KEY.search(found[1]))
            if line[0] in "+-" and _is_dependency(text, table, key):
                return line_number
            line_number += line[0] != "-"
    return None


def _is_dependency(text: str, table: bool | None, key: bool | None) -> bool:
    if table or key:
        return True
    if key is None and table is None:  # nothing in the hunk tells: go by the line itself
        return bool(_REQUIREMENT.match(text) or _VERSION_VALUE.search(text))
    if table is None and _KEY.match(text):  # a key in a table the hunk does not show
        return bool(_VERSION_VALUE.search(text))
    return False
