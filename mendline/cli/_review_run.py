"""What ``mendline review`` does: read the changes (a git range or a diff), the files after
them and production's knowledge, review them, write every output asked for, post the
comment, and answer with the exit status ``--fail-on`` asks for."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mendline.analyzers.review import (
    MAX_FILE_BYTES,
    TOO_LARGE,
    LLMReviewer,
    read_diff,
    review_files,
)
from mendline.cli._review_text import review_text
from mendline.cli.output import colour_for
from mendline.schemas.errors import ConfigError, ForgeError, InvalidPatch, MendlineError, UsageError
from mendline.schemas.finding import Ledger
from mendline.schemas.fixpolicy import CodeMapping
from mendline.schemas.printable import printable
from mendline.schemas.review import ChangedFile, ProductionSource, Review, SkippedFile
from mendline.schemas.settings import Settings
from mendline.sinks.forges import (
    Git,
    PostTarget,
    ci_base,
    default_branch,
    files_at,
    large_files,
    merge_base,
    post_target,
    range_diff,
)

__all__ = ["run_review"]

_STDOUT = "-"


@dataclass(frozen=True)
class _Changes:
    """What is reviewed: the diff's files, their text after the change, and the range; the
    files too large to read."""

    files: list[ChangedFile]
    contents: dict[str, str | None]
    base: str | None
    head: str | None
    large: tuple[str, ...] = ()


def run_review(args: argparse.Namespace, settings: Settings) -> int:
    """``mendline review``: the exit status is 1 when a comment is at or above --fail-on,
    else 0; a wrong use, or an error that stops the review or its report, is 2 (the
    command's ``error_status``: its 1 says "comments", so an error is not 1, as linters
    do)."""
    _check_outputs(args)
    target = _post_target(args) if args.post else None
    review = asyncio.run(_review(args, settings))
    _write_outputs(args, review)
    if target is not None and target.from_fork:
        print(
            "mendline: not posted: a pull request from a fork gets a read-only token"
            " (the annotations and the summary have the review)",
            file=sys.stderr,
        )
    elif target is not None:
        url = asyncio.run(_post(target, review))
        print(f"mendline: review posted: {printable(url)}", file=sys.stderr)
    if args.fail_on and review.at_or_above(args.fail_on):
        return 1
    return 0


def _post_target(args: argparse.Namespace) -> PostTarget:
    """Where the comment goes, known before the review is made (a wrong use costs nothing)."""
    return post_target(
        args.post,
        os.environ,
        number=args.pr,
        project=args.project,
        api_url=args.forge_url,
        token_env=args.token_env,
    )


def _check_outputs(args: argparse.Namespace) -> None:
    """At most one output on standard output (two would be interleaved); the folder of
    every file written there."""
    outputs = [
        ("--markdown", args.markdown),
        ("--sarif", args.sarif),
        ("--rdjsonl", args.rdjsonl),
        ("--json-file", args.json_file),
    ]
    on_stdout = [flag for flag, value in outputs if value == _STDOUT]
    on_stdout += ["--annotations"] * bool(args.annotations) + ["--json"] * bool(args.json)
    if len(on_stdout) > 1:
        raise UsageError(f"{' and '.join(on_stdout)} would all write to standard output")
    if args.step_summary:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if not summary:
            raise UsageError(
                "--step-summary: $GITHUB_STEP_SUMMARY is not set (not in GitHub Actions)"
            )
        outputs.append(("--step-summary", summary))
    for flag, value in outputs:
        if value is not None and value != _STDOUT and not Path(value).parent.is_dir():
            raise UsageError(f"{flag}: there is no folder {Path(value).parent}")


async def _review(args: argparse.Namespace, settings: Settings) -> Review:
    changes = await _changes(args)
    async with AsyncExitStack() as stack:
        source, note = await stack.enter_async_context(_production(args, settings))
        llm = await stack.enter_async_context(_llm(settings, source)) if args.llm else None
        review = await review_files(
            changes.files,
            changes.contents,
            base=changes.base,
            head=changes.head,
            production=source,
            production_note=note,
            mappings=_mappings(args, settings),
            llm=llm,
            disabled=frozenset(args.disable),
            exclude=args.exclude,
            regression_days=args.regression_days,
        )
    skipped = tuple(SkippedFile(path, TOO_LARGE) for path in changes.large)
    return replace(review, skipped=review.skipped + skipped)


async def _changes(args: argparse.Namespace) -> _Changes:
    """The diff and the files after it: from --diff and the working tree, or from git."""
    repo = Path(args.repo)
    try:
        if args.diff is not None:
            text = _read_diff(args.diff)
            files = read_diff(text)
            return _Changes(files, _working_tree(repo, files), None, None)
        git = Git(repo)
        inside = await git("rev-parse", "--is-inside-work-tree", check=False)
        if inside.code != 0:
            raise UsageError(
                f"{repo} is not in a git repository",
                hint="run it in the repository, give --repo DIR, or review a diff with --diff",
            )
        head = args.head or "HEAD"
        base = args.base or ci_base(os.environ) or await default_branch(git)
        since = await merge_base(git, base, head)
        large = await large_files(git, since, head, MAX_FILE_BYTES)
        files = read_diff(await range_diff(git, since, head, leave_out=large))
        wanted = [f.path for f in files if f.language == "python" and f.status != "deleted"]
        contents = await files_at(git, head, wanted)
        return _Changes(files, contents, since[:12], head, tuple(large))
    except InvalidPatch as exc:
        raise UsageError(f"the diff cannot be read: {exc}") from exc
    except ForgeError as exc:
        if exc.code == "config":
            raise UsageError(str(exc), hint=exc.hint) from exc
        raise


def _read_diff(where: str) -> str:
    """The diff in a file, or on standard input for ``-``."""
    try:
        raw = sys.stdin.buffer.read() if where == _STDOUT else Path(where).read_bytes()
    except OSError as exc:
        raise UsageError(f"--diff {where}: {exc.strerror or exc}") from exc
    return raw.decode("utf-8", "replace")


def _working_tree(repo: Path, files: Sequence[ChangedFile]) -> dict[str, str | None]:
    """The changed Python files as they are in the working tree under ``repo``; None for one
    that is not a regular file inside it (a diff's path is anyone's: ``../../etc``)."""
    root = repo.resolve()
    contents: dict[str, str | None] = {}
    for file in files:
        if file.language != "python" or file.status == "deleted":
            continue
        path = (root / file.path).resolve()
        inside = path.is_relative_to(root) and path.is_file()
        try:
            small = inside and path.stat().st_size <= MAX_FILE_BYTES
            contents[file.path] = path.read_text("utf-8", "replace") if small else None
        except OSError:
            contents[file.path] = None
    return contents


@asynccontextmanager
async def _production(
    args: argparse.Namespace, settings: Settings
) -> AsyncIterator[tuple[ProductionSource | None, str | None]]:
    """Where production is read, open for the review (and closed after); or None and why
    there is none. A database that cannot be reached is a note, not a failure."""
    if args.no_production:
        yield None, "production context not read: --no-production"
        return
    if args.dashboard:
        if settings.token is None:
            raise UsageError("--dashboard needs an API token: set MENDLINE_TOKEN")
        from mendline.cli._review_sources import DashboardProductionSource

        yield DashboardProductionSource(args.dashboard, settings.token.get_secret_value()), None
        return
    if not _has_database(settings):
        yield (
            None,
            (
                "production context not read: no database (set MENDLINE_DATABASE_URL, read-only"
                " is enough, or give --dashboard)"
            ),
        )
        return
    from mendline.sinks.postgres import connect_production

    try:
        source = await connect_production(settings)
    except MendlineError as exc:
        yield None, f"production context not read: {printable(str(exc))}"
        return
    try:
        yield source, None
    finally:
        await source.close()


def _has_database(settings: Settings) -> bool:
    """Whether a database is set, and not empty (a CI secret not given to a fork's pull
    request is the empty string)."""
    url = settings.database_url.get_secret_value().strip()
    return "database_url" in settings.model_fields_set and bool(url)


@asynccontextmanager
async def _llm(settings: Settings, source: ProductionSource | None) -> AsyncIterator[LLMReviewer]:
    """The LLM's reviewer on the analyser's settings. Its calls are counted in the
    analyser's ledger when production is read from the database (a role that may only read
    keeps the budget but records nothing: the store logs why), else in memory."""
    if not settings.llm_base_url:
        raise UsageError("--llm: no LLM is configured (MENDLINE_LLM_BASE_URL)")
    from mendline.analyzers.rootcause import ChatClient, MemoryLedger

    async with AsyncExitStack() as stack:
        ledger: Ledger = MemoryLedger()
        if source is not None and _has_database(settings):
            import asyncpg

            from mendline.sinks.postgres import FindingStore

            try:
                pool = await asyncpg.create_pool(
                    settings.database_url.get_secret_value(), min_size=1, max_size=1
                )
                stack.push_async_callback(pool.close)
                ledger = FindingStore(pool)
            except (OSError, asyncpg.PostgresError):
                pass  # the source could connect a moment ago; the budget is this run's then
        client = ChatClient.from_settings(settings)
        stack.push_async_callback(client.aclose)
        yield LLMReviewer.from_settings(settings, client, ledger)


def _mappings(args: argparse.Namespace, settings: Settings) -> list[CodeMapping]:
    """The code mappings of the fix policy file's repository (--repository, or its only
    one); none without a policy file."""
    if settings.fix_policy_file is None:
        if args.repository:
            raise UsageError("--repository: no fix policy file is set (MENDLINE_FIX_POLICY_FILE)")
        return []
    from mendline.analyzers.policy import load_policy

    try:
        repositories = load_policy(settings.fix_policy_file).repositories
    except ConfigError as exc:
        raise UsageError(f"the fix policy file: {exc}", hint=exc.hint) from exc
    if args.repository:
        chosen = [r for r in repositories if r.name == args.repository]
        if not chosen:
            names = ", ".join(r.name for r in repositories) or "none"
            raise UsageError(f"--repository {args.repository}: no such repository ({names})")
        return list(chosen[0].mappings)
    return list(repositories[0].mappings) if len(repositories) == 1 else []


def _write_outputs(args: argparse.Namespace, review: Review) -> None:
    from mendline.sinks.forges import (
        review_annotations,
        review_json,
        review_markdown,
        review_rdjsonl,
        review_sarif,
    )

    version = _version()
    written: list[tuple[str | None, Any]] = [
        (args.markdown, lambda: review_markdown(review)),
        (args.sarif, lambda: _json_text(review_sarif(review, tool_version=version))),
        (args.rdjsonl, lambda: review_rdjsonl(review)),
        (args.json_file, lambda: _json_text(review_json(review))),
    ]
    for where, make in written:
        if where is not None:
            _write(where, make())
    if args.step_summary:
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(review_markdown(review, marker=False) + "\n")
    if args.annotations:
        sys.stdout.write(review_annotations(review))
    elif args.json:
        sys.stdout.write(_json_text(review_json(review)))
    elif _STDOUT not in (args.markdown, args.sarif, args.rdjsonl, args.json_file):
        sys.stdout.write(review_text(review, colour=colour_for(sys.stdout)))


def _write(where: str, text: str) -> None:
    if where == _STDOUT:
        sys.stdout.write(text)
        return
    try:
        Path(where).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MendlineError(f"cannot write {where}: {exc.strerror or exc}") from exc


def _json_text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("mendline")


async def _post(target: PostTarget, review: Review) -> str:
    from mendline.sinks.forges import COMMENT_LIMITS, post_review_comment, review_markdown

    body = review_markdown(review, limit=min(COMMENT_LIMITS[target.api.kind] - 1_000, 200_000))
    return await post_review_comment(target.api, target.number, body)
