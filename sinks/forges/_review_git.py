"""What a review reads from git: the base a branch is reviewed against (its merge base with
the default branch), the diff of a range, and the files as they are at the head."""

from __future__ import annotations

from collections.abc import Sequence

from mendline.schemas.errors import ForgeError
from mendline.sinks.forges._git import Git

__all__ = ["default_branch", "files_at", "large_files", "merge_base", "range_diff"]

# Candidates for the default branch when origin/HEAD is not set (a CI clone often lacks it).
_DEFAULT_BRANCHES = ("origin/main", "origin/master", "main", "master")
# The diff as read_diff expects it, whatever the user's configuration says: a/ and b/
# prefixes, renames found, paths unquoted, no external diff or text conversion.
_DIFF = (
    *("-c", "core.quotePath=false"),
    *("-c", "diff.noprefix=false"),
    *("-c", "diff.mnemonicPrefix=false"),
    "diff",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--find-renames",
    "--unified=3",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


async def default_branch(git: Git) -> str:
    """The default branch as the clone knows it: ``origin/HEAD``'s target, else the first of
    origin/main, origin/master, main, master that exists. Raises ForgeError (``config``)
    when there is none."""
    found = await git("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD", check=False)
    if found.code == 0 and found.out.strip():
        return found.out.strip()
    for name in _DEFAULT_BRANCHES:
        if await _exists(git, name):
            return name
    raise ForgeError(
        "no default branch to review against (no origin/HEAD, origin/main, origin/master,"
        " main or master)",
        code="config",
        retriable=False,
        hint="give the base: --base origin/main (fetch it first in a shallow CI clone)",
    )


async def merge_base(git: Git, base: str, head: str) -> str:
    """The commit where ``head`` left ``base``. Raises ForgeError (``config``) when either
    is unknown or they share no history (a shallow clone: fetch more of it)."""
    for rev in (base, head):
        if not await _exists(git, rev):
            raise ForgeError(
                f"{rev!r} is no commit in this repository",
                code="config",
                retriable=False,
                hint="fetch it first (in CI: actions/checkout with fetch-depth: 0)",
            )
    found = await git("merge-base", base, head, check=False)
    if found.code != 0 or not found.out.strip():
        raise ForgeError(
            f"{base!r} and {head!r} share no history here",
            code="config",
            retriable=False,
            hint="a shallow clone: fetch the whole history (fetch-depth: 0) or give --diff",
        )
    return found.out.strip()


async def range_diff(git: Git, base: str, head: str, *, leave_out: Sequence[str] = ()) -> str:
    """The unified diff from ``base`` to ``head``, without the files ``leave_out`` names."""
    excluded = [f":(exclude,literal){path}" for path in leave_out]
    found = await git(*_DIFF, base, head, "--", *excluded)
    return found.out


async def large_files(git: Git, base: str, head: str, most: int) -> list[str]:
    """The paths (after the change) of the files the range changes that are larger than
    ``most`` bytes before or after it: their diff is not read (a data file, a bundle)."""
    raw = (
        await git(
            "-c",
            "core.quotePath=false",
            "diff",
            "--raw",
            "-z",
            "--no-abbrev",
            "--find-renames",
            base,
            head,
            "--",
        )
    ).out
    fields = raw.split("\0")
    changed: list[tuple[str, tuple[str, ...]]] = []  # (path, blob ids)
    at = 0
    while at < len(fields) and fields[at].startswith(":"):
        meta = fields[at].split(" ")
        paths = 2 if meta[-1][:1] in ("R", "C") else 1
        ids = tuple(b for b in meta[2:4] if b.strip("0"))  # all zeros: no such side
        changed.append((fields[at + paths], ids))
        at += paths + 1
    blobs = sorted({b for _, ids in changed for b in ids})
    if not blobs:
        return []
    request = "".join(f"{b}\n" for b in blobs).encode()
    answer = await git("cat-file", "--batch-check", stdin=request)
    sizes: dict[str, int] = {}
    for line in answer.out.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
    return [path for path, ids in changed if any(sizes.get(b, 0) > most for b in ids)]


async def files_at(git: Git, rev: str, paths: Sequence[str]) -> dict[str, str | None]:
    """The text of each of ``paths`` at ``rev`` (UTF-8, undecodable bytes replaced); None
    for a path that is not a file there."""
    wanted = [p for p in dict.fromkeys(paths) if "\n" not in p and "\r" not in p]
    found: dict[str, str | None] = dict.fromkeys(paths)
    if not wanted:
        return found
    request = "".join(f"{rev}:{path}\n" for path in wanted).encode()
    out = (await git("cat-file", "--batch", stdin=request)).stdout
    at = 0
    for path in wanted:
        end = out.index(b"\n", at)
        line = out[at:end]
        at = end + 1
        header = line.split(b" ")
        if line.endswith((b" missing", b" ambiguous")) or len(header) != 3:
            continue
        size = int(header[2])
        if header[1] == b"blob":
            found[path] = out[at : at + size].decode("utf-8", "replace")
        at += size + 1
    return found


async def _exists(git: Git, rev: str) -> bool:
    found = await git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}", check=False
    )
    return found.code == 0
