"""A patch applied to a worktree's index and files: three-way when it names blobs the
repository has, else placed on the files as they are (``anchor_file``) and applied with git,
never by a guess; and what it applied checked before anything runs it (``guard_applied``)."""

from __future__ import annotations

from dataclasses import replace

from mendline.analyzers.patch import FilePatch, anchor_file, check_paths, parse_patch, render_patch
from mendline.analyzers.policy import new_dangerous_calls
from mendline.schemas.errors import InvalidPatch, PatchRefused
from mendline.sinks.forges._git import Git, tail

__all__ = ["apply_patch", "guard_applied"]

# git's modes of a symbolic link and of a submodule (a gitlink).
_LINK_MODES = {"120000": "a symbolic link", "160000": "a submodule (gitlink)"}


async def apply_patch(git: Git, text: str) -> list[str]:
    """Apply the unified diff ``text`` to the files and index of the worktree ``git`` runs
    in, at its HEAD; return the paths it leaves (not the deleted ones).

    When every file names its blobs (git's ``index`` line) and the repository has the old
    ones, ``git apply --3way`` merges it; else each file is anchored on its text at HEAD and
    the result, with real context, must pass ``git apply --check``. Raises PatchRefused with
    the reason when it does not apply, conflicts, or changes nothing."""
    try:
        files = parse_patch(text)
    except InvalidPatch as exc:
        raise PatchRefused("invalid_patch", str(exc)) from exc
    for file in files:
        check_paths(file)
    if await _blobs_known(git, files):
        await _three_way(git, render_patch(files).encode())
    else:
        anchored = [
            anchor_file(file, await _text_at_head(git, file.path)) for file in _by_path(files)
        ]
        await _apply_exactly(git, render_patch(anchored).encode())
    if (await git("diff", "--cached", "--quiet", check=False)).code == 0:
        raise PatchRefused("no_change", "the patch changes nothing: is it applied already?")
    return [file.path for file in files if file.new_path is not None]


async def guard_applied(git: Git) -> None:
    """Return when what is staged in the worktree ``git`` runs in (against its HEAD) may be
    verified; else raise PatchRefused (``rejected``), naming the file and line.

    Verification runs the repository's code with the patch (its tests import it), so this is
    the guard that must hold before it: no symbolic link or submodule made, and no Python
    file that does not parse or that gains a call running a command, loading code or opening
    a socket (``new_dangerous_calls``, compared with the file at HEAD)."""
    raw = (await git("diff", "--cached", "--raw", "--no-renames", "-z")).out.split("\0")
    for meta, path in zip(raw[0::2], raw[1::2], strict=False):
        new_mode = meta.split(" ")[1] if meta.count(" ") >= 4 else ""
        if new_mode in _LINK_MODES:
            raise PatchRefused("rejected", f"{path}: the patch makes it {_LINK_MODES[new_mode]}")
        if not path.endswith(".py") or not new_mode.startswith("100"):
            continue
        new = await _staged_text(git, path)
        try:
            added = new_dangerous_calls(await _text_at_head(git, path), new)
        except SyntaxError as exc:
            raise PatchRefused(
                "rejected", f"{path}:{exc.lineno}: not Python once patched ({exc.msg})"
            ) from exc
        if added:
            said = "; ".join(f"{path}:{call.line} calls {call.name}" for call in added)
            raise PatchRefused(
                "rejected",
                f"the patch adds code that runs commands or loads code: {said}",
                hint="a person may make this change by hand; mendline never runs it",
            )


async def _staged_text(git: Git, path: str) -> str:
    blob = await git("cat-file", "blob", f":{path}")
    try:
        return blob.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PatchRefused("not_text", f"{path}: not UTF-8 text ({exc.reason})") from exc


def _by_path(files: list[FilePatch]) -> list[FilePatch]:
    """One FilePatch per path: the hunks of a file named twice, together (each is placed on
    the file as it is, so two parts of one change must be placed together)."""
    merged: dict[str, FilePatch] = {}
    for file in files:
        seen = merged.get(file.path)
        merged[file.path] = file if seen is None else replace(seen, hunks=seen.hunks + file.hunks)
    return list(merged.values())


async def _blobs_known(git: Git, files: list[FilePatch]) -> bool:
    for file in files:
        blobs = file.blobs
        if blobs is None:
            return False
        if not blobs[0].strip("0"):  # a new file: there is no old blob
            continue
        found = await git("rev-parse", "--verify", "--quiet", f"{blobs[0]}^{{blob}}", check=False)
        if found.code != 0:
            return False
    return True


async def _three_way(git: Git, patch: bytes) -> None:
    applied = await git("apply", "--3way", "-", stdin=patch, check=False)
    if applied.code == 0:
        return
    unmerged = await git("diff", "--name-only", "--diff-filter=U")
    if unmerged.out.strip():
        paths = ", ".join(unmerged.out.split())
        raise PatchRefused(
            "conflict", f"the three-way merge conflicts with changes made since in {paths}"
        )
    raise PatchRefused("rejected", f"git apply --3way refuses it: {tail(applied.err)}")


async def _apply_exactly(git: Git, patch: bytes) -> None:
    checked = await git("apply", "--check", "--index", "-", stdin=patch, check=False)
    if checked.code != 0:
        raise PatchRefused("rejected", f"git apply refuses it: {tail(checked.err)}")
    await git("apply", "--index", "-", stdin=patch)


async def _text_at_head(git: Git, path: str) -> str | None:
    """The file's text at HEAD (from git's objects: no symbolic link is followed), or None
    when HEAD has no file there."""
    kind = await git("cat-file", "-t", f"HEAD:{path}", check=False)
    if kind.code != 0 or kind.out.strip() != "blob":
        return None
    blob = await git("cat-file", "blob", f"HEAD:{path}")
    try:
        return blob.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PatchRefused("not_text", f"{path}: not UTF-8 text ({exc.reason})") from exc
