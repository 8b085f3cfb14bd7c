"""The production context of a diff: the issues whose in-app frames fall in its changed
functions, whether the change likely fixes one, and added lines that write again the line
that failed in an issue resolved lately.

A likely fix is told narrowly (a wrong "fixes #14" is worse than none), for an open issue:

- by the finding's patch: the patch of a finding not marked wrong maps onto the changed
  file, every one of its significant added lines (whitespace aside) is among the lines the
  diff adds there, and one of them is in the function; or
- by a guard: the culprit line (the innermost of the issue's in-app frames in the function)
  is among the lines the diff removed from the file (changed or moved), and an added line
  of the function guards what it reads (``_likely_fix`` says what a guard is).

A likely regression is an added line that is, whitespace aside, the culprit line (the
innermost in-app frame) of an issue resolved lately in the same file, when the diff did not
remove that line too (a line moved is no regression)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from mendline.analyzers.patch import parse_patch
from mendline.analyzers.policy import map_path
from mendline.analyzers.review._likely_fix import guards, normal, qualnames, shown, significant
from mendline.schemas.errors import InvalidPatch
from mendline.schemas.fixpolicy import CodeMapping
from mendline.schemas.review import (
    LIKELY_FIX_RULE,
    PRODUCTION_RULE,
    REGRESSION_RULE,
    ChangedFile,
    ChangedFunction,
    FrameRef,
    FunctionContext,
    IssueRecord,
    ReviewComment,
    ReviewRule,
)

__all__ = ["PRODUCTION_RULES", "frame_path", "production_context"]

#: The rules of the production context, as outputs list them.
PRODUCTION_RULES: tuple[ReviewRule, ...] = (
    ReviewRule(
        REGRESSION_RULE,
        "likely-regression",
        "warning",
        "The change writes again the line that failed in an issue resolved lately.",
        "An issue resolved in the last days failed on exactly this line (whitespace aside), in"
        " this file. Writing it again likely brings the failure back: read the issue and its"
        " resolution, and keep the fix that resolved it.",
        "production",
    ),
    ReviewRule(
        PRODUCTION_RULE,
        "fails-in-production",
        "info",
        "A changed function fails in production (an open issue).",
        "The open issue's latest event has an in-app frame in this function. Read its root"
        " cause before changing the function, and say in the pull request whether the change"
        " fixes it.",
        "production",
    ),
    ReviewRule(
        LIKELY_FIX_RULE,
        "likely-fix",
        "info",
        "The change looks like the fix of an open issue.",
        "The diff adds the finding's patch, or changes the line that failed and adds a guard"
        " of what it reads. Only likely: check that the issue stops once this is deployed,"
        " then resolve it.",
        "production",
    ),
)

#: Open issues told of per function; the last comment says how many more there are.
MOST_PER_FUNCTION = 3
_OPEN = ("unresolved", "ignored")
_TEXT = 160  # characters of a title or a root cause in a message


def frame_path(
    frame: FrameRef, repo_paths: Collection[str], mappings: Sequence[CodeMapping]
) -> str | None:
    """Which of ``repo_paths`` (a diff's paths) ``frame`` is in.

    With ``mappings``, its filename, else its module as a path (``app/orders.py`` or
    ``app/orders/__init__.py``), goes through the longest matching stack_root; without,
    a path matches when the filename ends with ``/`` and it, or the module's path is it or
    ends it on a folder boundary, and the longest match wins. None when none matches, or
    when two match alike."""
    return _locate(frame.filename, _module_paths(frame.module), repo_paths, mappings)


def production_context(
    files: Sequence[ChangedFile],
    functions: Sequence[ChangedFunction],
    sources: Mapping[str, Sequence[str]],
    records: Sequence[IssueRecord],
    mappings: Sequence[CodeMapping],
    *,
    now: datetime,
    regression_days: int = 30,
) -> tuple[list[FunctionContext], list[ReviewComment]]:
    """The changed functions with the issues whose in-app frames fall in them (open ones,
    and ones resolved within ``regression_days``; the most events in 7 days first, then the
    most recently seen), and the comments: an open issue in a changed function (the
    unresolved ones, at most ``MOST_PER_FUNCTION`` a function, on its first changed line),
    a likely fix of an open issue, and a likely regression (an added line, in any function,
    that is the culprit line of an issue resolved within ``regression_days`` in that file).

    ``sources`` holds each changed path's lines after the change (``lines[0]`` is line 1).
    A frame falls in a function when it maps to the function's path (or a renamed file's
    old path: production runs the code as it was) and its function is the function's
    qualname, or (old producers send the bare name) the last part of it when no other
    function of the file ends so."""
    diff = _Diff(files, sources, mappings)
    window = timedelta(days=regression_days)

    def recent(record: IssueRecord) -> bool:
        resolved = record.resolved_at
        return record.status == "resolved" and resolved is not None and now - resolved <= window

    by_path: dict[str, dict[str, ChangedFunction]] = {}
    for function in functions:
        by_path.setdefault(function.path, {})[function.qualname] = function
    hits: dict[ChangedFunction, dict[int, tuple[IssueRecord, FrameRef]]] = {}
    for record in records:
        if record.status not in _OPEN and not recent(record):
            continue
        for frame in record.frames:
            path = diff.path_of(frame)
            in_file = by_path.get(path) if path is not None else None
            if path is None or not in_file:
                continue
            target = in_file.get(frame.function) or diff.bare_match(path, frame, in_file)
            if target is not None:  # the innermost frame of it in the function stays
                hits.setdefault(target, {})[record.issue_id] = (record, frame)

    contexts: list[FunctionContext] = []
    comments: list[ReviewComment] = []
    for function in sorted(hits, key=lambda f: (f.path, f.first, f.qualname)):
        found = sorted(hits[function].values(), key=lambda hit: _order(hit[0]))
        fixes: list[int] = []
        told: list[IssueRecord] = []
        for record, culprit in found:
            if record.status not in _OPEN:
                continue
            fix = diff.likely_fix(function, record, culprit)
            if fix is not None:
                fixes.append(record.issue_id)
                comments.append(_fix_comment(diff, function, record, *fix))
            elif record.status == "unresolved":
                told.append(record)
        comments.extend(_open_comments(diff, function, told, now))
        issues = tuple(record for record, _ in found)
        contexts.append(FunctionContext(function, issues, tuple(fixes)))
    for record in records:
        if recent(record) and record.frames:
            comments.extend(_regressions(diff, record, now))
    return contexts, comments


# -- paths ------------------------------------------------------------------------------


def _module_paths(module: str | None) -> tuple[str, ...]:
    """A module's file as a path: ``app/orders.py`` or ``app/orders/__init__.py``."""
    if not module or module == "__main__" or not all(p.isidentifier() for p in module.split(".")):
        return ()
    stem = module.replace(".", "/")
    return (f"{stem}.py", f"{stem}/__init__.py")


def _locate(
    filename: str,
    tails: Sequence[str],
    repo_paths: Collection[str],
    mappings: Sequence[CodeMapping],
) -> str | None:
    """The repository path of a file the app (or an analyser) named ``filename``, whose
    path from its top package is one of ``tails``."""
    filename = filename.replace("\\", "/")
    if mappings:
        for candidate in (filename, *tails):
            found = map_path(candidate, mappings)
            if found is not None and found.path in repo_paths:
                return found.path
        return None
    scores: dict[str, int] = {}
    for path in repo_paths:
        score = len(path) if filename == path or filename.endswith("/" + path) else 0
        for tail in tails:
            if path == tail or path.endswith("/" + tail):
                score = max(score, len(tail))
        if score:
            scores[path] = score
    if not scores:
        return None
    best = max(scores.values())
    winners = [path for path, score in scores.items() if score == best]
    return winners[0] if len(winners) == 1 else None


# -- the diff as the context reads it ------------------------------------------------------


class _Diff:
    """The changed files with their lines after the change, read once for every issue."""

    def __init__(
        self,
        files: Sequence[ChangedFile],
        sources: Mapping[str, Sequence[str]],
        mappings: Sequence[CodeMapping],
    ) -> None:
        self.files = {file.path: file for file in files}
        # Production runs the code as it was: a renamed file's frames name its old path.
        self._known = {f.old_path: f.path for f in files if f.old_path is not None}
        self._known.update((path, path) for path in self.files)
        self.sources = sources
        self.mappings = mappings
        self._paths: dict[tuple[str, str | None], str | None] = {}
        self._names: dict[str, list[str] | None] = {}
        self._added: dict[str, dict[str, list[int]]] = {}
        self._removed = {f.path: {normal(line) for line in f.removed} for f in files}

    def moved(self, path: str, line: str) -> bool:
        """Whether the diff removed ``line`` (whitespace-normalised) from ``path`` too."""
        return line in self._removed.get(path, ())

    def line(self, path: str, number: int) -> str:
        """The text of line ``number`` of ``path`` after the change, without its indentation."""
        lines = self.sources.get(path, ())
        return lines[number - 1].strip() if 0 < number <= len(lines) else ""

    def path_of(self, frame: FrameRef) -> str | None:
        key = (frame.filename, frame.module)
        if key not in self._paths:
            found = frame_path(frame, self._known, self.mappings)
            self._paths[key] = None if found is None else self._known[found]
        return self._paths[key]

    def added(self, path: str) -> dict[str, list[int]]:
        """The added lines of ``path``, whitespace-normalised, to their line numbers."""
        if path not in self._added:
            found: dict[str, list[int]] = {}
            for number in sorted(self.files[path].added):
                found.setdefault(normal(self.line(path, number)), []).append(number)
            self._added[path] = found
        return self._added[path]

    def bare_match(
        self, path: str, frame: FrameRef, in_file: Mapping[str, ChangedFunction]
    ) -> ChangedFunction | None:
        """The function a frame with a bare function name (no dot) means: the one function
        of the file whose qualname ends with it, when it is a changed one."""
        name = frame.function
        if not name or "." in name:
            return None
        if path not in self._names:
            self._names[path] = qualnames(self.sources.get(path, ()))
        every = self._names[path]
        known = every if every is not None else list(in_file)
        matches = [q for q in known if q.rpartition(".")[2] == name]
        return in_file.get(matches[0]) if len(matches) == 1 else None

    def likely_fix(
        self, function: ChangedFunction, record: IssueRecord, culprit: FrameRef
    ) -> tuple[int, str] | None:
        """The line and the reason the change likely fixes ``record``, or None."""
        if record.patch and record.verdict != "wrong":
            line = self._patch_line(function, record.patch)
            if line is not None:
                return line, "the diff adds the finding's patch"
        failed = normal(culprit.context_line or "")
        if not significant(failed) or not self.moved(function.path, failed):
            return None
        source = self.sources.get(function.path, ())[function.first - 1 : function.last]
        for line, guard in guards(source, function.first, failed):
            if line in self.files[function.path].added:
                return line, f"the line that failed changed and {guard} was added"
        return None

    def _patch_line(self, function: ChangedFunction, patch: str) -> int | None:
        """The first added line of ``function`` that is the patch's, when every significant
        line the patch adds to the function's file is added by the diff too."""
        try:
            patched = parse_patch(patch)
        except InvalidPatch:
            return None
        wanted: set[str] = set()
        for file in patched:
            tails = () if file.path.startswith("/") else (file.path.removeprefix("./"),)
            found = _locate(file.path, tails, self._known, self.mappings)
            if found is not None and self._known[found] == function.path:
                wanted.update(line for line in map(normal, file.added) if significant(line))
        added = self.added(function.path)
        if not wanted or not wanted <= added.keys():
            return None
        inside = [n for line in wanted for n in added[line] if function.first <= n <= function.last]
        return min(inside) if inside else None


# -- comments -----------------------------------------------------------------------------


def _order(record: IssueRecord) -> tuple[int, float, int]:
    return (-record.events_7d, -record.last_seen.timestamp(), record.issue_id)


def _fix_comment(
    diff: _Diff, function: ChangedFunction, record: IssueRecord, line: int, why: str
) -> ReviewComment:
    return ReviewComment(
        rule_id=LIKELY_FIX_RULE,
        source="production",
        severity="info",
        path=function.path,
        line=line,
        message=f"Likely fixes {_named(record)} ({_events(record)}): {why}.",
        code=diff.line(function.path, line),
        issue_id=record.issue_id,
        link=record.link,
    )


def _open_comments(
    diff: _Diff, function: ChangedFunction, told: list[IssueRecord], now: datetime
) -> list[ReviewComment]:
    """One comment per open issue, at most MOST_PER_FUNCTION, on the first changed line."""
    line = function.changed[0] if function.changed else function.first
    comments = []
    first = told[:MOST_PER_FUNCTION]
    for n, record in enumerate(first, 1):
        message = (
            f"{_named(record)} fails in production in {shown(function.qualname, 80)}:"
            f" {_events(record)}, last seen {_ago(record.last_seen, now)} ago"
        )
        if record.root_cause:
            message += f"; root cause: {shown(record.root_cause, _TEXT)}"
        if n == len(first) and len(told) > len(first):
            more = len(told) - len(first)
            message += f" (and {more} more open issue{'s' if more > 1 else ''} here)"
        comments.append(
            ReviewComment(
                rule_id=PRODUCTION_RULE,
                source="production",
                severity="info",
                path=function.path,
                line=line,
                message=message + ".",
                code=diff.line(function.path, line),
                issue_id=record.issue_id,
                link=record.link,
            )
        )
    return comments


def _regressions(diff: _Diff, record: IssueRecord, now: datetime) -> list[ReviewComment]:
    """An added line that is ``record``'s culprit line, in the culprit's file: a line the
    diff moved (it removed the same line too) is no regression."""
    culprit = record.frames[-1]
    failed = normal(culprit.context_line or "")
    path = diff.path_of(culprit)
    if path is None or not significant(failed) or diff.moved(path, failed):
        return []
    assert record.resolved_at is not None
    message = (
        f"Likely regression of {_named(record)} (resolved {_ago(record.resolved_at, now)} ago):"
        f" this is the line that failed in production."
    )
    return [
        ReviewComment(
            rule_id=REGRESSION_RULE,
            source="production",
            severity="warning",
            path=path,
            line=line,
            message=message,
            code=diff.line(path, line),
            issue_id=record.issue_id,
            link=record.link,
        )
        for line in diff.added(path).get(failed, ())
    ]


def _named(record: IssueRecord) -> str:
    return f"#{record.issue_id} {shown(record.title, _TEXT)}"


def _events(record: IssueRecord) -> str:
    return f"{record.events_7d} event{'s' if record.events_7d != 1 else ''} in the last 7 days"


def _ago(when: datetime, now: datetime) -> str:
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
