"""Unified diffs read into files and hunks, and written back: what the fix policy inspects
(paths, added lines, size), what code mappings rewrite, and what the forges apply."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mendline.schemas.errors import InvalidPatch

__all__ = ["FilePatch", "Hunk", "parse_patch", "render_patch"]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
# Lines between files that carry nothing we apply (git's extended headers).
_HEADER_PREFIXES = (
    "diff ",
    "index ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "rename from ",
    "rename to ",
    "Binary files ",
)
_NO_NEWLINE = "\\ No newline at end of file"


@dataclass(frozen=True)
class Hunk:
    """One hunk: where it starts in the old and new file, and its lines, each with its
    prefix (" " context, "-" removed, "+" added)."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[str, ...]
    #: What follows the second ``@@`` (git puts the enclosing function there).
    section: str = ""

    @property
    def old_lines(self) -> list[str]:
        """The lines the hunk expects in the old file (context and removed), unprefixed."""
        return [line[1:] for line in self.lines if line[0] in " -"]

    @property
    def new_lines(self) -> list[str]:
        """The lines the hunk leaves in the new file (context and added), unprefixed."""
        return [line[1:] for line in self.lines if line[0] in " +"]

    @property
    def added(self) -> list[str]:
        """The added lines, unprefixed."""
        return [line[1:] for line in self.lines if line[0] == "+"]

    @property
    def removed(self) -> list[str]:
        """The removed lines, unprefixed."""
        return [line[1:] for line in self.lines if line[0] == "-"]


@dataclass(frozen=True)
class FilePatch:
    """The hunks of one file. A path is None on the side of ``/dev/null`` (a file created or
    deleted); paths are without git's ``a/`` and ``b/``."""

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]

    @property
    def path(self) -> str:
        """The file's path: the new one, or the old one for a deleted file."""
        path = self.new_path or self.old_path
        assert path is not None  # parse_patch refuses a file with neither
        return path

    @property
    def added(self) -> list[str]:
        """Every added line of the file, unprefixed."""
        return [line for hunk in self.hunks for line in hunk.added]

    @property
    def changed_lines(self) -> int:
        """Lines added plus lines removed."""
        return sum(1 for hunk in self.hunks for line in hunk.lines if line[0] in "+-")

    def moved(self, old_path: str | None, new_path: str | None) -> FilePatch:
        """The same hunks under other paths (a code mapping's rewrite)."""
        return replace(self, old_path=old_path, new_path=new_path)


def parse_patch(text: str) -> list[FilePatch]:
    """The files of a unified diff (git's or plain ``diff -u``'s), in order.

    Raises InvalidPatch, naming the line, when the text is not one: no file in it, a hunk
    outside a file, a hunk whose line counts do not match its header, a file with neither
    path."""
    files: list[FilePatch] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _path(line[4:]), _path(lines[i + 1][4:])
            if old is None and new is None:
                raise InvalidPatch(f"line {i + 1}: a file with neither an old nor a new path")
            hunks, i = _hunks(lines, i + 2)
            if not hunks:
                raise InvalidPatch(f"line {i}: the file {new or old} has no hunk")
            files.append(FilePatch(old, new, tuple(hunks)))
            continue
        if line.startswith("@@"):
            raise InvalidPatch(f"line {i + 1}: a hunk before any ---/+++ file header")
        if line and not line.startswith(_HEADER_PREFIXES) and files:
            raise InvalidPatch(f"line {i + 1}: not part of a unified diff: {line[:80]!r}")
        i += 1
    if not files:
        raise InvalidPatch("no file in the patch (expected ---/+++ headers and @@ hunks)")
    return files


def render_patch(files: list[FilePatch]) -> str:
    """The unified diff of ``files``, git-style (``a/`` and ``b/``), ending with a newline."""
    out: list[str] = []
    for file in files:
        out.append("--- " + (f"a/{file.old_path}" if file.old_path else "/dev/null"))
        out.append("+++ " + (f"b/{file.new_path}" if file.new_path else "/dev/null"))
        for hunk in file.hunks:
            out.append(
                f"@@ -{hunk.old_start},{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@"
                + hunk.section
            )
            out.extend(hunk.lines)
    return "\n".join(out) + "\n"


def _path(header: str) -> str | None:
    name = header.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return name or None


def _hunks(lines: list[str], i: int) -> tuple[list[Hunk], int]:
    """The hunks starting at line ``i``, and the index after them."""
    hunks: list[Hunk] = []
    while i < len(lines) and lines[i].startswith("@@"):
        found = _HUNK.match(lines[i])
        if found is None:
            raise InvalidPatch(f"line {i + 1}: a malformed hunk header: {lines[i][:80]!r}")
        old_start, new_start = int(found[1]), int(found[3])
        old_count = 1 if found[2] is None else int(found[2])
        new_count = 1 if found[4] is None else int(found[4])
        body: list[str] = []
        old_seen = new_seen = 0
        i += 1
        while i < len(lines) and (old_seen < old_count or new_seen < new_count):
            line = lines[i] or " "  # an empty context line loses its space in some editors
            if line[0] not in " -+":
                break
            body.append(line)
            old_seen += line[0] in " -"
            new_seen += line[0] in " +"
            i += 1
        if (old_seen, new_seen) != (old_count, new_count):
            raise InvalidPatch(
                f"line {i}: the hunk at -{old_start} +{new_start} has {old_seen} old and"
                f" {new_seen} new lines, its header says {old_count} and {new_count}"
            )
        while i < len(lines) and lines[i] == _NO_NEWLINE:
            i += 1
        hunks.append(Hunk(old_start, old_count, new_start, new_count, tuple(body), found[5]))
    return hunks, i
