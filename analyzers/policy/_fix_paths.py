"""A fix's paths: from the frames' paths to a repository's through its code mappings (the
longest stack_root wins), and the path globs of the policy file."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from mendline.analyzers.patch import FilePatch, parse_patch, render_patch
from mendline.schemas.errors import InvalidPatch
from mendline.schemas.fixpolicy import CodeMapping, Repository
from mendline.schemas.printable import printable

__all__ = [
    "MappedPatch",
    "MappedPath",
    "PatchRefused",
    "first_match",
    "map_patch",
    "map_path",
    "shown_path",
]


@dataclass(frozen=True)
class MappedPatch:
    """A patch whose every file maps into ``repository``: ``files`` with the repository's
    paths, ``text`` their unified diff, ``reasons`` how each path mapped."""

    repository: Repository
    files: tuple[FilePatch, ...]
    text: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PatchRefused:
    """A patch that maps into no one repository, and every reason why."""

    reasons: tuple[str, ...]


def map_patch(
    patch: str | Sequence[FilePatch], repositories: Sequence[Repository]
) -> MappedPatch | PatchRefused:
    """The patch with its frame paths rewritten to one repository's paths, or why not.

    Each path (a file's old and new one) goes through the mapping with the longest matching
    stack_root of all the repositories (the first repository's on a tie); every path must
    land in the same repository, inside it (no absolute path, no ``..``). A text that is no
    unified diff is refused with the reason."""
    if isinstance(patch, str):
        try:
            files: Sequence[FilePatch] = parse_patch(patch)
        except InvalidPatch as exc:
            return PatchRefused((f"the patch cannot be read: {exc}",))
    else:
        files = patch
    if not repositories:
        return PatchRefused(
            (
                "no repository is configured ([[repositories]] in the fix policy file):"
                " no fix can be applied",
            )
        )
    mappings = [(repo, mapping) for repo in repositories for mapping in repo.mappings]
    refusals: list[str] = []
    landed: dict[str, list[str]] = {}  # repository -> the paths that mapped into it
    moved: list[FilePatch] = []
    reasons: list[str] = []
    for file in files:
        repo_paths: dict[str, str] = {}
        for path in dict.fromkeys(p for p in (file.old_path, file.new_path) if p is not None):
            found = _map_path(path, mappings)
            if isinstance(found, str):
                refusals.append(found)
                continue
            repo, mapping, repo_path = found
            repo_paths[path] = repo_path
            paths = landed.setdefault(repo.name, [])
            if path not in paths:
                paths.append(path)
                reasons.append(
                    f"{shown_path(path)} is {shown_path(repo_path)} in repository {repo.name}"
                    f" (stack_root {mapping.stack_root!r} -> source_root {mapping.source_root!r})"
                )
        old = repo_paths.get(file.old_path) if file.old_path is not None else None
        new = repo_paths.get(file.new_path) if file.new_path is not None else None
        moved.append(file.moved(old, new))
    if len(landed) > 1:
        spread = "; ".join(
            f"{name}: {', '.join(shown_path(p) for p in paths)}" for name, paths in landed.items()
        )
        refusals.append(f"the patch spans repositories ({spread}): a fix changes one repository")
    if refusals:
        return PatchRefused(tuple(refusals))
    repository = next(repo for repo in repositories if repo.name in landed)
    return MappedPatch(repository, tuple(moved), render_patch(moved), tuple(reasons))


def _map_path(
    path: str, mappings: list[tuple[Repository, CodeMapping]]
) -> tuple[Repository, CodeMapping, str] | str:
    """The repository, mapping and repository path of a frame path; or why it has none."""
    found = map_path(path, [mapping for _, mapping in mappings])
    if found is None:
        roots = ", ".join(sorted({repr(m.stack_root) for _, m in mappings}))
        return f"{shown_path(path)} is under no repository's stack_root ({roots})"
    repo, mapping = mappings[found.index]
    if found.path is None:
        return (
            f"{shown_path(path)} would be {shown_path(found.joined)} in repository {repo.name}:"
            " outside it (an absolute path, or one through ..)"
        )
    return repo, mapping, found.path


@dataclass(frozen=True)
class MappedPath:
    """Where a frame path lands through code mappings: the ``index`` of the mapping that
    took it (the longest stack_root), the path it ``joined`` into, and that path inside the
    repository (``path``; None when it is absolute or goes up through ``..``)."""

    index: int
    joined: str
    path: str | None


def map_path(path: str, mappings: Sequence[CodeMapping]) -> MappedPath | None:
    """A frame path (``./`` at its start ignored) through the mapping with the longest
    stack_root it starts with (the first on a tie), as Sentry's code mappings; None when
    no stack_root is a prefix of it."""
    frame = path.removeprefix("./")
    best: int | None = None
    for index, mapping in enumerate(mappings):
        prefix = mapping.path_prefix
        if frame.startswith(prefix) and (
            best is None or len(prefix) > len(mappings[best].path_prefix)
        ):
            best = index
    if best is None:
        return None
    mapping = mappings[best]
    joined = mapping.source_root + frame[len(mapping.path_prefix) :]
    return MappedPath(best, joined, _inside(joined))


def _inside(path: str) -> str | None:
    """``path`` without empty and ``.`` folders; None when it is absolute or goes up."""
    if path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def shown_path(path: str) -> str:
    """A path from a patch (an LLM wrote it) as a reason shows it: escaped, clipped."""
    text = printable(path)
    return text if len(text) <= 200 else text[:199] + "…"


# -- globs --------------------------------------------------------------------------------


def first_match(globs: Sequence[str], path: str) -> str | None:
    """The first of ``globs`` that ``path`` (a repository path) matches, or None.

    ``*`` and ``?`` match within one folder's name, ``[abc]`` one of the characters, ``**``
    any number of folders (none too); a glob without ``/`` matches the file's name in any
    folder, as in .gitignore. Case is ignored: on some file systems ``.GitHub`` is
    ``.github``."""
    return next((glob for glob in globs if _glob_regex(glob).fullmatch(path)), None)


@lru_cache(maxsize=512)
def _glob_regex(glob: str) -> re.Pattern[str]:
    parts = glob.split("/")
    regex = "" if len(parts) > 1 else "(?:[^/]+/)*"
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _name_regex(part) + ("" if last else "/")
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def _name_regex(part: str) -> str:
    out = ""
    i = 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            inner = part[i + 1 : end]
            negate = inner[:1] == "!"
            inner = inner[1:] if negate else inner
            out += "[" + ("^" if negate else "") + inner.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out
