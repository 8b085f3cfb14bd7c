"""A diff read into the files it changes: each file's paths, what happened to it (added,
modified, deleted, renamed, copied, binary, a mode change), the lines it added and its hunks'
ranges. git's own diffs (with their extended headers) and plain ``diff -u`` output alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mendline.analyzers.patch import FilePatch, parse_patch
from mendline.schemas.errors import InvalidPatch
from mendline.schemas.review import ChangedFile, FileStatus

__all__ = ["read_diff"]

_GIT_HEADER = "diff --git "
# git's C-style quoting of a path with unusual bytes (core.quotePath): "a/caf\303\251.py".
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass
class _Block:
    """One ``diff --git`` section: its header lines and the unified diff that follows."""

    header: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)


def read_diff(text: str) -> list[ChangedFile]:
    """The files ``text`` (a unified diff) changes, in order.

    A file that only moved, changed mode or is binary comes with no lines; a deleted file
    keeps its old path as ``path``. Raises InvalidPatch when the text is not a diff (an empty
    diff is no error: no file)."""
    if not text.strip():
        return []
    blocks = _blocks(text)
    if blocks is None:  # plain diff -u: no git headers
        return [_changed(patch, None) for patch in parse_patch(text)]
    files: list[ChangedFile] = []
    for block in blocks:
        patches = parse_patch("\n".join(block.body)) if _has_hunks(block.body) else []
        if len(patches) > 1:
            raise InvalidPatch(f"one diff --git section holds {len(patches)} files")
        files.append(_changed(patches[0] if patches else None, block.header))
    return files


def _blocks(text: str) -> list[_Block] | None:
    """The ``diff --git`` sections of ``text``, or None when it has none."""
    blocks: list[_Block] = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith(_GIT_HEADER):
            blocks.append(_Block(header=[line]))
        elif not blocks:
            continue  # a commit message or an email's headers before the first file
        elif not blocks[-1].body and not line.startswith(("--- ", "@@")):
            blocks[-1].header.append(line)
        else:
            blocks[-1].body.append(line)
    return blocks or None


def _has_hunks(body: list[str]) -> bool:
    return any(line.startswith("@@") for line in body)


def _changed(patch: FilePatch | None, header: list[str] | None) -> ChangedFile:
    """One file from its parsed hunks (None: it has none) and its git header lines."""
    old, new = _header_paths(header or [])
    if patch is not None:
        old, new = _patch_path(patch.old_path), _patch_path(patch.new_path)
    status = _status(header or [], old, new, patch)
    path = new or old
    if path is None:
        raise InvalidPatch("a file in the diff has neither an old nor a new path")
    if patch is None:
        return ChangedFile(path=path, old_path=old, status=status)
    added: set[int] = set()
    hunks: list[tuple[int, int]] = []
    for hunk in patch.hunks:
        number = hunk.new_start
        for line in hunk.lines:
            if line[0] == "+":
                added.add(number)
            if line[0] in " +":
                number += 1
        if hunk.new_count:
            hunks.append((hunk.new_start, hunk.new_start + hunk.new_count - 1))
    removed = tuple(line for hunk in patch.hunks for line in hunk.removed)
    added_text = tuple(line[1:] for hunk in patch.hunks for line in hunk.lines if line[0] == "+")
    return ChangedFile(
        path=path,
        old_path=old,
        status=status,
        added=frozenset(added),
        hunks=tuple(hunks),
        removed=removed,
        added_text=added_text,
    )


def _status(
    header: list[str], old: str | None, new: str | None, patch: FilePatch | None
) -> FileStatus:
    if any(line.startswith(("Binary files ", "GIT binary patch")) for line in header):
        return "binary"
    if new is None:
        return "deleted"
    if old is None or any(line.startswith("new file mode ") for line in header):
        return "added"
    if any(line.startswith("copy from ") for line in header):
        return "copied"
    if old != new:
        return "renamed"
    if patch is None and any(line.startswith("new mode ") for line in header):
        return "mode"
    return "modified"


def _header_paths(header: list[str]) -> tuple[str | None, str | None]:
    """The old and new paths git's extended header names (``rename from``/``to``,
    ``copy from``/``to``, ``Binary files a/x and b/y differ``, the ``diff --git`` line);
    None on the side of a file created or deleted."""
    old = new = None
    for line in header:
        for prefix, side in (
            ("rename from ", 0),
            ("copy from ", 0),
            ("rename to ", 1),
            ("copy to ", 1),
        ):
            if line.startswith(prefix):
                path = _unquoted(line[len(prefix) :], strip_side=False)
                old, new = (path, new) if side == 0 else (old, path)
        binary = re.fullmatch(r"Binary files (.+) and (.+) differ", line)
        if binary:
            old, new = _side(binary[1]), _side(binary[2])
    if old is None and new is None and header:
        old, new = _git_line_paths(header[0])
    if any(line.startswith("new file mode ") for line in header):
        old = None
    if any(line.startswith("deleted file mode ") for line in header):
        new = None
    return old, new


def _git_line_paths(line: str) -> tuple[str | None, str | None]:
    """``diff --git a/x b/x``'s paths: quoted ones read whole, else the line split in the
    middle (both paths are the same when the header says nothing else)."""
    rest = line[len(_GIT_HEADER) :]
    if not rest.strip():
        return None, None
    quoted = _QUOTED.findall(rest)
    if len(quoted) == 2:
        return _side('"' + quoted[0] + '"'), _side('"' + quoted[1] + '"')
    half = (len(rest) - 1) // 2
    if rest[half] == " " and rest[2:half] == rest[half + 3 :]:
        return _side(rest[:half]), _side(rest[half + 1 :])
    parts = rest.split(" b/", 1)
    return _side(parts[0]), _side("b/" + parts[1]) if len(parts) == 2 else None


def _patch_path(name: str | None) -> str | None:
    """A path parse_patch read (``a/``/``b/`` gone), unquoted when git quoted it."""
    if name is None or not name.startswith('"'):
        return name
    return _unquoted(name)


def _side(name: str) -> str | None:
    return None if name == "/dev/null" else _unquoted(name)


def _unquoted(name: str, *, strip_side: bool = True) -> str:
    """A path as git writes it, unquoted (C escapes, octal bytes as UTF-8) and without its
    ``a/``/``b/``."""
    found = _QUOTED.fullmatch(name)
    if found:
        raw = bytearray()
        body = found[1]
        i = 0
        while i < len(body):
            char = body[i]
            if char != "\\":
                raw += char.encode("utf-8")
                i += 1
            elif body[i + 1 : i + 4].isdigit() and len(body[i + 1 : i + 4]) == 3:
                raw.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
            else:
                raw.append(_ESCAPES.get(body[i + 1 : i + 2], ord(body[i + 1 : i + 2] or "\\")))
                i += 2
        name = raw.decode("utf-8", "replace")
    if strip_side and name.startswith(("a/", "b/")):
        name = name[2:]
    return name
