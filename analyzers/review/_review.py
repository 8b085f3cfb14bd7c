"""A review of changed files: each Python file read once, the built-in and learned rules
run on its changed lines, the changed functions put next to production's issues, the LLM
asked when there is one, suppressed comments left out; what could not be done said in
notes. The callers bring the I/O: the files' contents, the production source, the LLM."""

from __future__ import annotations

import ast
import fnmatch
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from mendline.analyzers.review._functions import changed_functions
from mendline.analyzers.review._learned import learned_comments, learned_review_rule
from mendline.analyzers.review._llm import AI_REVIEW_RULE, LLMReviewer
from mendline.analyzers.review._production import PRODUCTION_RULES, production_context
from mendline.analyzers.review._rules import BUILTIN_RULES, check_python, is_suppressed
from mendline.schemas.errors import MendlineError
from mendline.schemas.fixpolicy import CodeMapping
from mendline.schemas.printable import printable
from mendline.schemas.review import (
    ChangedFile,
    ChangedFunction,
    FunctionContext,
    IssueRecord,
    LearnedRule,
    ProductionSource,
    Review,
    ReviewComment,
    ReviewUsage,
    SkippedFile,
)

__all__ = [
    "INPUT_RULES",
    "MAX_FILE_BYTES",
    "TOO_LARGE",
    "is_test_path",
    "review_files",
    "source_lines",
]

#: A changed file bigger than this is not read (generated code, a vendored bundle).
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Why such a file is not reviewed.
TOO_LARGE = f"larger than {MAX_FILE_BYTES // 2**20} MiB"

#: The rules about input from outside (a request, another service's JSON, SQL built from
#: it, recursion into it), not reported in tests and benchmarks: there the input is the
#: code's own, and a KeyError or a ValueError fails the test as it should.
INPUT_RULES = frozenset({"MR101", "MR102", "MR103", "MR104", "MR108", "MR112"})

_TEST_FOLDERS = frozenset({"test", "tests", "testing", "bench", "benchmarks"})


@dataclass(frozen=True)
class _Read:
    """A changed Python file as parsed: its tree and its lines after the change."""

    file: ChangedFile
    tree: ast.Module
    lines: list[str]


async def review_files(
    files: Sequence[ChangedFile],
    contents: Mapping[str, str | None],
    *,
    base: str | None = None,
    head: str | None = None,
    production: ProductionSource | None = None,
    production_note: str | None = None,
    mappings: Sequence[CodeMapping] = (),
    llm: LLMReviewer | None = None,
    disabled: frozenset[str] = frozenset(),
    exclude: Sequence[str] = (),
    regression_days: int = 30,
    now: datetime | None = None,
) -> Review:
    """Review ``files`` (from read_diff), whose contents after the change ``contents`` maps
    by path (None: not readable there).

    ``production`` is where issues and learned rules are read (None: not read, and
    ``production_note`` says why); ``mappings`` the code mappings from repository paths to
    frame paths (none: paths are matched by their endings); ``disabled`` rule ids not
    reported; ``exclude`` shell-style patterns of paths not read (``*`` crosses ``/``).
    In tests and benchmarks (``is_test_path``) the ``INPUT_RULES`` are not reported.
    Never raises for what a source or the LLM does: that becomes a note."""
    now = now or datetime.now(UTC)
    notes: list[str] = []
    read, skipped = _read(files, contents, exclude)
    records: list[IssueRecord] = []
    learned: list[LearnedRule] = []
    if production is None:
        notes.append(production_note or "production context not read: no source given")
    else:
        # A renamed file's old name too: production still runs the code under it.
        paths = {p for r in read for p in (r.file.path, r.file.old_path) if p is not None}
        names = sorted({PurePosixPath(p).name for p in paths})
        try:
            if names:
                records = await production.issues(names, resolved_within_days=regression_days)
            learned = await production.learned_rules()
        except MendlineError as exc:
            notes.append(f"production context not read: {printable(str(exc))}")
    comments: list[ReviewComment] = []
    functions: list[ChangedFunction] = []
    for one in list(read):
        path, changed = one.file.path, one.file.added
        try:
            found = check_python(path, one.tree, one.lines, changed)
            found += learned_comments(learned, path, one.tree, one.lines, changed)
            functions += changed_functions(path, one.tree, changed, len(one.lines))
        except RecursionError:  # code nested deeper than the checks can follow
            read.remove(one)
            skipped.append(SkippedFile(path, "nested too deeply to review"))
            continue
        comments += found
    sources = {one.file.path: one.lines for one in read}
    contexts: list[FunctionContext] = []
    if records:
        contexts, found = production_context(
            [one.file for one in read],
            functions,
            sources,
            records,
            mappings,
            now=now,
            regression_days=regression_days,
        )
        comments += found
    usage: ReviewUsage | None = None
    if llm is not None and read:
        said, usage, llm_notes = await llm.review(
            [one.file for one in read], sources, functions, contexts
        )
        comments += said
        notes += llm_notes
    rules = (*BUILTIN_RULES, *PRODUCTION_RULES, *(learned_review_rule(r) for r in learned))
    if llm is not None:
        rules = (*rules, AI_REVIEW_RULE)
    return Review(
        base=base,
        head=head,
        files=tuple(files),
        skipped=tuple(skipped),
        rules=tuple(r for r in rules if r.id not in disabled),
        comments=_kept(comments, sources, disabled),
        functions=tuple(contexts),
        notes=tuple(notes),
        llm=usage,
        made_at=now,
    )


def _read(
    files: Sequence[ChangedFile], contents: Mapping[str, str | None], exclude: Sequence[str]
) -> tuple[list[_Read], list[SkippedFile]]:
    """The Python files with added lines, parsed; every other file with why it is not read."""
    read: list[_Read] = []
    skipped: list[SkippedFile] = []
    for file in files:
        reason = _unread(file, exclude)
        text = contents.get(file.path) if reason is None else None
        if text is not None:
            text = text.removeprefix("\ufeff")  # a UTF-8 BOM: Python reads past it
        if reason is None and text is None:
            reason = "cannot be read after the change"
        if reason is None and text is not None and len(text) > MAX_FILE_BYTES:
            reason = TOO_LARGE
        if reason is not None or text is None:
            skipped.append(SkippedFile(file.path, reason or "cannot be read"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings of the code under review
                tree = ast.parse(text, filename=file.path)
        except SyntaxError as exc:
            skipped.append(
                SkippedFile(file.path, f"cannot be parsed: line {exc.lineno}: {exc.msg}")
            )
            continue
        except (ValueError, RecursionError, MemoryError) as exc:
            skipped.append(SkippedFile(file.path, f"cannot be parsed: {type(exc).__name__}"))
            continue
        lines = source_lines(text)
        unlike = _unlike_the_diff(file, lines)
        if unlike is not None:
            skipped.append(SkippedFile(file.path, f"not as the diff leaves it: {unlike}"))
            continue
        read.append(_Read(file, tree, lines))
    return read, skipped


def _unlike_the_diff(file: ChangedFile, lines: Sequence[str]) -> str | None:
    """Where the file's ``lines`` are not what the diff says it added (a diff given with a
    working tree at another commit), or None when they are."""
    last = max(file.added)
    if last > len(lines):
        return f"the diff adds line {last}, the file has {len(lines)}"
    for number, text in zip(sorted(file.added), file.added_text, strict=False):
        if lines[number - 1] != text.removesuffix("\r"):
            return f"line {number} differs"
    return None


def source_lines(text: str) -> list[str]:
    """``text``'s lines as Python numbers them: split at ``\\r\\n``, ``\\r`` and ``\\n`` only
    (``str.splitlines`` also splits at form feeds and Unicode separators, which Python's
    tokenizer reads inside a line, and every line number after one would be off)."""
    lines = _LINE_END.split(text)
    return lines[:-1] if lines[-1] == "" else lines


_LINE_END = re.compile(r"\r\n|\r|\n")


def is_test_path(path: str) -> bool:
    """True for a test or a benchmark: a file in a ``tests``, ``test``, ``testing``,
    ``bench`` or ``benchmarks`` folder, ``test_*.py``, ``*_test.py`` or ``conftest.py``."""
    *folders, name = PurePosixPath(path).parts or ("",)
    return (
        not _TEST_FOLDERS.isdisjoint(folders)
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def _unread(file: ChangedFile, exclude: Sequence[str]) -> str | None:
    """Why a changed file is not reviewed, or None when it is."""
    for pattern in exclude:
        if fnmatch.fnmatchcase(file.path, pattern):
            return f"excluded ({pattern})"
    if file.status == "binary":
        return "binary"
    if file.status == "deleted":
        return "deleted"
    if file.language != "python":
        return "not Python (not reviewed yet)"
    if not file.added:
        return "no added lines" if file.status != "mode" else "mode change only"
    return None


def _kept(
    comments: list[ReviewComment], sources: Mapping[str, Sequence[str]], disabled: frozenset[str]
) -> tuple[ReviewComment, ...]:
    """The comments not disabled nor suppressed on their line, one per rule, place and
    message, sorted by path, line, rule and message."""
    kept: dict[tuple[str, int, str, str], ReviewComment] = {}
    for comment in comments:
        if comment.rule_id in disabled:
            continue
        if comment.rule_id in INPUT_RULES and is_test_path(comment.path):
            continue
        lines = sources.get(comment.path, ())
        text = lines[comment.line - 1] if 0 < comment.line <= len(lines) else ""
        if is_suppressed(text, comment.rule_id):
            continue
        kept.setdefault((comment.path, comment.line, comment.rule_id, comment.message), comment)
    return tuple(kept[key] for key in sorted(kept))
