"""Unified diffs read into files and hunks, written back, and placed on a file as it is now:
what the fix policy inspects, what code mappings rewrite, and what the forges apply."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Literal

from mendline.schemas.errors import InvalidPatch, PatchRefused

__all__ = [
    "NO_NEWLINE",
    "DiffLineKind",
    "FilePatch",
    "Hunk",
    "anchor_file",
    "check_paths",
    "diff_lines",
    "parse_patch",
    "render_patch",
]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
# Lines between files that carry nothing we apply (git's extended headers); kept with the
# file they precede, for `git apply --3way` (which reads the blob ids of `index`).
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
_INDEX = re.compile(r"index ([0-9a-f]{4,64})\.\.([0-9a-f]{4,64})(?: [0-7]{6})?")
#: git's marker after a line that has no newline at its end (the last line of a file).
NO_NEWLINE = "\\ No newline at end of file"
_CONTEXT = 3
_SIGNATURE = "-- "

#: What a line of a unified diff is, as people are shown it: a file's header (``---`` and
#: ``+++``), a hunk's header (``@@``), an added or removed line, or anything else.
DiffLineKind = Literal["file", "hunk", "add", "del", "context"]


@dataclass(frozen=True)
class Hunk:
    """One hunk: where it starts in the old and new file, and its lines, each with its
    prefix (" " context, "-" removed, "+" added), and git's ``NO_NEWLINE`` marker after the
    line it is about, where there is one."""

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
    deleted); paths are without git's ``a/`` and ``b/``. ``git_header`` holds git's extended
    header lines (``index``, ``new file mode``...) as they were, without the ``diff --git``
    line."""

    old_path: str | None
    new_path: str | None
    hunks: tuple[Hunk, ...]
    git_header: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The file's path: the new one, or the old one for a deleted file."""
        path = self.new_path or self.old_path
        assert path is not None  # parse_patch refuses a file with neither
        return path

    @property
    def blobs(self) -> tuple[str, str] | None:
        """The old and new blob ids of git's ``index`` line (abbreviated as given), or None
        when the patch does not say which blobs it was made between."""
        for line in self.git_header:
            found = _INDEX.fullmatch(line)
            if found:
                return found[1], found[2]
        return None

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
    """The files of a unified diff (git's or plain ``diff -u``'s), in order. Lines end at
    ``\\n`` only (a ``\\r`` before it is dropped), so a form feed stays inside its line.

    Raises InvalidPatch, naming the line, when the text is not one: no file in it, a hunk
    outside a file, a hunk whose line counts do not match its header, a file with neither
    path."""
    files: list[FilePatch] = []
    header: list[str] = []
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()
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
            files.append(FilePatch(old, new, tuple(hunks), tuple(header)))
            header = []
            continue
        if line.startswith("@@"):
            raise InvalidPatch(f"line {i + 1}: a hunk before any ---/+++ file header")
        if line == _SIGNATURE and files:
            break  # git format-patch's signature: the version of git follows
        if line.startswith(_HEADER_PREFIXES):
            header = [] if line.startswith("diff ") else [*header, line]
        elif line and files:
            raise InvalidPatch(f"line {i + 1}: not part of a unified diff: {line[:80]!r}")
        i += 1
    if not files:
        raise InvalidPatch("no file in the patch (expected ---/+++ headers and @@ hunks)")
    return files


def diff_lines(text: str) -> list[tuple[DiffLineKind, str]]:
    """A unified diff's lines as people are shown them (the CLI styled, the dashboard
    coloured), each with its kind, without their newlines: ``file`` (the ``diff``/``---``/
    ``+++`` headers and git's other header lines), ``hunk`` (``@@``), ``add``, ``del``, or
    ``context`` (unchanged lines, git's no-newline marker, and any text that is not part of
    a diff). Never refuses a text: what ``parse_patch`` would refuse is shown as well as it
    can be read. Inside a hunk its header's line counts say where it ends, so a removed line
    that reads ``-- x`` is no file header. Split at newlines only, as git does:
    ``splitlines()`` would also break at \\x0b, \\x1c or U+2028 inside a line, showing a
    reviewer lines that are not the patch's."""
    shown: list[tuple[DiffLineKind, str]] = []
    old_left = new_left = 0
    for line in text.removesuffix("\n").split("\n"):
        if old_left > 0 or new_left > 0:
            mark = line[:1] or " "  # an empty context line loses its space in some editors
            if line == NO_NEWLINE:
                shown.append(("context", line))
                continue
            if mark in " -+":
                old_left -= mark in " -"
                new_left -= mark in " +"
                shown.append((_LINE_KINDS[mark], line))
                continue
            old_left = new_left = 0  # the hunk ended early: read on as if outside one
        hunk = _HUNK.match(line)
        if hunk is not None:
            old_left = 1 if hunk[2] is None else int(hunk[2])
            new_left = 1 if hunk[4] is None else int(hunk[4])
            shown.append(("hunk", line))
        elif line.startswith(("--- ", "+++ ", *_HEADER_PREFIXES)):
            shown.append(("file", line))
        elif line.startswith("@@"):
            shown.append(("hunk", line))
        else:
            shown.append(("context", line))
    return shown


_LINE_KINDS: dict[str, DiffLineKind] = {" ": "context", "-": "del", "+": "add"}


def render_patch(files: list[FilePatch]) -> str:
    """The unified diff of ``files``, git-style (``a/`` and ``b/``), ending with a newline;
    a file with git header lines gets its ``diff --git`` line and them first."""
    out: list[str] = []
    for file in files:
        if file.git_header:
            out.append(f"diff --git a/{file.old_path or file.path} b/{file.path}")
            out.extend(file.git_header)
        out.append("--- " + (f"a/{file.old_path}" if file.old_path else "/dev/null"))
        out.append("+++ " + (f"b/{file.new_path}" if file.new_path else "/dev/null"))
        for hunk in file.hunks:
            out.append(
                f"@@ -{hunk.old_start},{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@"
                + hunk.section
            )
            out.extend(hunk.lines)
    return "\n".join(out) + "\n"


def anchor_file(file: FilePatch, current: str | None, *, context: int = _CONTEXT) -> FilePatch:
    """``file`` placed on the file's text as it is now (``current``; None when it is not
    there), with ``context`` lines of real context around each change, ready for
    ``git apply`` without fuzz or ``--unidiff-zero``.

    Each hunk's old lines (context and removed) are taken where the hunk says they are, or
    else at the one place in the file where they are (the code above them moved); nowhere,
    or in several places, and the file is refused, never placed by a guess. The file keeps
    its line endings (``\\r\\n`` files get ``\\r\\n`` lines) and whether its last line ends
    with one. A created file is checked to be absent and left as it is.

    Raises PatchRefused with the reason (its ``code``: ``unsafe_path``, ``rename``,
    ``missing``, ``exists``, ``no_anchor``, ``not_found``, ``ambiguous``, ``overlap``,
    ``no_change``)."""
    check_paths(file)
    if file.old_path is None:
        if current is not None:
            raise PatchRefused("exists", f"{file.path}: the patch creates it, but it is there")
        return file
    if current is None:
        raise PatchRefused("missing", f"{file.path}: the patch changes it, but it is not there")
    old = _split(current)
    new = _applied(file, old)
    if new == old:
        raise PatchRefused("no_change", f"{file.path}: the patch changes nothing in it")
    if file.new_path is None and new:
        raise PatchRefused(
            "not_found", f"{file.path}: the patch deletes it, but it has lines the patch lacks"
        )
    return FilePatch(file.old_path, file.new_path, _diff(old, new, context))


def check_paths(file: FilePatch) -> None:
    """Return when ``file`` names one path inside a repository's files; else raise
    PatchRefused: ``rename`` (the old and new paths differ) or ``unsafe_path`` (absolute,
    with ``..``, into ``.git``, a backslash or a control character)."""
    if file.old_path and file.new_path and file.old_path != file.new_path:
        raise PatchRefused("rename", f"{file.old_path} -> {file.new_path}: renames are not applied")
    parts = PurePosixPath(file.path).parts
    if (
        file.path.startswith("/")
        or "\\" in file.path
        or any(part == ".." or part.lower() == ".git" for part in parts)
        or any(ord(c) < 32 for c in file.path)
    ):
        raise PatchRefused("unsafe_path", f"{file.path!r}: a path outside the repository's files")


def _split(text: str) -> list[str]:
    """The lines of ``text``, each with its ``\\n`` (the last one may have none)."""
    lines = text.split("\n")
    last = lines.pop()
    return [line + "\n" for line in lines] + ([last] if last else [])


def _key(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")


def _applied(file: FilePatch, old: list[str]) -> list[str]:
    """The file's lines once every hunk is put in its place."""
    keys = [_key(line) for line in old]
    placed = sorted((_place(file, n, hunk, keys), n, hunk) for n, hunk in enumerate(file.hunks, 1))
    eol = "\r\n" if old and old[0].endswith("\r\n") else "\n"
    new: list[str] = []
    at = 0
    for start, n, hunk in placed:
        if start < at:
            raise PatchRefused("overlap", f"{file.path}: hunk {n} overlaps the hunk before it")
        new.extend(old[at:start])
        new.extend(line + eol for line in hunk.new_lines)
        at = start + len(hunk.old_lines)
    new.extend(old[at:])
    if old and not old[-1].endswith("\n") and at == len(old) and new:
        new[-1] = _key(new[-1])  # the last line had no newline: the one now last has none
    return new


def _place(file: FilePatch, n: int, hunk: Hunk, keys: list[str]) -> int:
    """Where (0-based) hunk ``n``'s old lines start in the file: where it says, else the one
    place they are."""
    want = hunk.old_lines
    where = f"{file.path}: hunk {n} (at line {hunk.old_start})"
    if not want:
        if not keys:
            return 0
        raise PatchRefused("no_anchor", f"{where} only adds lines, with no line to place it by")
    stated = hunk.old_start - 1
    if keys[stated : stated + len(want)] == want:
        return stated
    places = [
        i
        for i in range(len(keys) - len(want) + 1)
        if keys[i] == want[0] and keys[i : i + len(want)] == want
    ]
    if len(places) == 1:
        return places[0]
    first = repr(want[0].strip()[:60])
    if not places:
        raise PatchRefused("not_found", f"{where}: its lines (from {first}) are not in the file")
    lines = ", ".join(str(i + 1) for i in places[:5]) + (" ..." if len(places) > 5 else "")
    raise PatchRefused(
        "ambiguous", f"{where}: its lines (from {first}) are at lines {lines}: which is not clear"
    )


def _diff(old: list[str], new: list[str], context: int) -> tuple[Hunk, ...]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    hunks = []
    for group in matcher.get_grouped_opcodes(context):
        (_, i1, _, j1, _), (_, _, i2, _, j2) = group[0], group[-1]
        lines: list[str] = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                lines.extend(_prefixed(" ", old[a1:a2]))
                continue
            lines.extend(_prefixed("-", old[a1:a2]))
            lines.extend(_prefixed("+", new[b1:b2]))
        hunks.append(Hunk(i1 + bool(i2 - i1), i2 - i1, j1 + bool(j2 - j1), j2 - j1, tuple(lines)))
    return tuple(hunks)


def _prefixed(prefix: str, lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        out.append(prefix + line.removesuffix("\n"))
        if not line.endswith("\n"):
            out.append(NO_NEWLINE)
    return out


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
            if line == NO_NEWLINE and body:
                body.append(line)
                i += 1
                continue
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
        while i < len(lines) and lines[i] == NO_NEWLINE:
            body.append(lines[i])
            i += 1
        hunks.append(Hunk(old_start, old_count, new_start, new_count, tuple(body), found[5]))
    return hunks, i
