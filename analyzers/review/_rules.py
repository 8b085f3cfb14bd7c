"""The built-in review rules: ``ast`` checks of the failure classes the knowledge base
explains, reported only on changed lines, and the inline suppression comment."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from mendline.analyzers.review._rules_calls import check_calls
from mendline.analyzers.review._rules_datetimes import check_datetimes
from mendline.analyzers.review._rules_defs import Recursion, check_defs, fed_from_json, recursions
from mendline.analyzers.review._rules_facts import prepare
from mendline.analyzers.review._rules_keys import check_keys
from mendline.analyzers.review._rules_none import check_none
from mendline.analyzers.review._rules_scope import Hit, Scope, Source
from mendline.analyzers.review._rules_walk import Walk
from mendline.schemas.review import ReviewComment, ReviewRule, ReviewSeverity

__all__ = ["BUILTIN_RULES", "check_python", "is_suppressed"]


def _rule(id: str, name: str, severity: ReviewSeverity, summary: str, help: str) -> ReviewRule:
    return ReviewRule(id, name, severity, summary, " ".join(help.split()), "rule")


#: Every built-in rule, by id.
BUILTIN_RULES: tuple[ReviewRule, ...] = (
    _rule(
        "MR101",
        "unchecked-input-parse",
        "warning",
        "int(), float(), Decimal(), json.loads() or strptime() on external input, with "
        "nothing to catch bad text.",
        """Text from a request, the command line or another service is whatever the sender
        wrote. `int()`, `float()`, `Decimal()`, `json.loads()`, `strptime()` and
        `fromisoformat()` raise (ValueError, decimal.InvalidOperation, json.JSONDecodeError)
        on text that is not what they expect, and when nothing catches it the request fails
        with a 500 deep in the code instead of a 400 that says what was wrong. Validate the
        value where it comes in and reject bad input with a clear message (a schema, a form
        library, or a try/except around the call that answers 400), rather than failing in
        the middle of the work. Not flagged: a call inside a try that catches the error, a
        value checked first (`.isdigit()`, `isinstance`, a regular expression, a schema's
        `validate(data, SCHEMA)`), a path parameter whose route admits only digits
        (`{id:\\d+}`, `{id:int}`), settings read from the environment outside request
        handlers.""",
    ),
    _rule(
        "MR102",
        "unchecked-key-lookup",
        "warning",
        "d[key] on a request's parameters or on parsed JSON, where a missing key raises KeyError.",
        """Decide what a missing key means. A client can leave any field out of a query
        string, a form or a JSON body, and another service's JSON can change; `d["key"]` then
        raises KeyError, which a web framework answers with a 500. Use `d.get("key")` with a
        default where absence is normal, else validate the input where it comes in (a
        schema) so that a missing key is rejected with a 400 that names it. Not flagged:
        Flask's `request.args`, `form`, `values`, `files`, `headers` and `cookies` (werkzeug
        answers a missing key there with a 400 already), path parameters, a lookup after an
        `in` test (of that key, or of each key a loop goes through: `[k for k in REQUIRED
        if k not in data]`) or `setdefault`, or inside a try that catches KeyError, a value
        checked with a schema (`validate(data, SCHEMA)` covers `data["a"]["b"]`).""",
    ),
    _rule(
        "MR103",
        "none-in-arithmetic",
        "warning",
        "The result of .get() without a default used in arithmetic, a comparison or int().",
        """`d.get(key)` without a default returns None when the key is missing, and None in
        arithmetic, in an ordering comparison or in `int()`/`float()`/`len()` raises
        TypeError, far from the lookup that produced it. Give `.get()` a default that fits
        the operation (`d.get("qty", 0)`), or handle the missing value before using it. A
        value the function tests first (`if x is None`, `if x:`) is not flagged.""",
    ),
    _rule(
        "MR104",
        "attribute-of-none",
        "warning",
        "An attribute or item of a value the function shows can be None (a failed match, "
        "no row, a missing key).",
        """`re.match()` returns None when the text does not match, `.first()`,
        `.one_or_none()` and `.fetchone()` when there is no row (not after a query that
        always returns one: an aggregate such as `SELECT count(*)` without GROUP BY, a
        SELECT without FROM, an `INSERT ... VALUES ... RETURNING`), `.get()` when the key is
        missing; reading an attribute of that None raises AttributeError (an item,
        TypeError). Find why the value is None and handle that case before the access (a
        404, a clear error), or make its producer never return None. Only values the
        function itself shows can be None are flagged, and any test of the value (`if m:`,
        `m is None`, `assert m`, `match m:`) counts as handling it.""",
    ),
    _rule(
        "MR105",
        "bare-except",
        "warning",
        "A bare except: that does not re-raise.",
        """A bare `except:` catches every exception, KeyboardInterrupt, SystemExit and
        asyncio's CancelledError included, which is how a task is told to stop: swallowing
        it leaves running a coroutine that should have ended and a worker that cannot be
        shut down, and it hides real failures. Catch the exceptions you expect, or `except
        Exception:` and log what happened. A bare `except:` that re-raises, or that has a
        comment on its line saying why it is there, is not flagged.""",
    ),
    _rule(
        "MR106",
        "silenced-exception",
        "warning",
        "except Exception (or BaseException) whose only body is pass or ....",
        """`except Exception: pass` turns every failure of its try block into silence: no
        log, no metric, no error report, so a broken dependency or a bug looks like success
        until someone notices missing data. Catch the exceptions you expect and handle
        them; log the others with `log.exception(...)`. If ignoring them really is right,
        say why in a comment on the `except` line, which this rule respects.""",
    ),
    _rule(
        "MR107",
        "http-call-without-timeout",
        "warning",
        "An HTTP call (requests, urllib, httpx with timeout=None, an aiohttp session) that "
        "can wait forever.",
        """A call to another service waits as long as that service does, unless it has a
        timeout. requests and urllib have no default timeout: a server that takes the
        connection and never answers (overloaded, hung, or behind a firewall dropping
        packets) holds the call, the worker running it and every caller behind it. httpx
        defaults to 5 s and is flagged only where `timeout=None` turns that off; aiohttp's
        default lets a request run for 5 minutes. Set the timeout from the dependency's
        real latency, and retry idempotent calls with backoff and a breaker so that an
        outage does not pile up work. A call given `**kwargs` is not flagged.""",
    ),
    _rule(
        "MR108",
        "sql-built-from-strings",
        "error",
        "SQL built with an f-string, %, .format() or + and passed to execute(), fetch() or text().",
        """SQL written with an f-string, `%`, `.format()` or `+` puts the value into the
        statement's text: a quote in it breaks the query, and a crafted value changes what
        the query does (SQL injection). Pass values as parameters, which the driver sends
        apart from the SQL (`%s` or `?` placeholders, `$1` with asyncpg, `:name` with
        SQLAlchemy's `text()`). Table and column names cannot be parameters: check them
        against a fixed list and quote them (psycopg's `sql.Identifier`). Not flagged:
        constant queries, parameterised queries, and interpolations of constants
        (UPPER_CASE names, an enum member's `.value`), numbers, placeholder lists made with
        `join`, and values checked against a fixed collection (`if col not in ("name",
        "email"): raise ...`) or a regular expression.""",
    ),
    _rule(
        "MR109",
        "environ-read-per-request",
        "warning",
        "os.environ[...] read inside a request handler.",
        """`os.environ["NAME"]` read while handling a request fails every request with
        KeyError when the variable is not set where the service runs, so a deploy that
        forgot it looks healthy until traffic arrives. Read settings once at startup and
        fail there with a clear error (a settings object), or use
        `os.environ.get("NAME", default)` where a default is right. Reads at module level
        and outside request handlers are not flagged.""",
    ),
    _rule(
        "MR110",
        "naive-aware-datetime-mix",
        "error",
        "A naive datetime (datetime.now(), utcnow()) compared with or subtracted from an "
        "aware one.",
        """Python refuses to order or subtract a naive datetime (no tzinfo: `datetime.now()`,
        `datetime.utcnow()`) and an aware one (`datetime.now(UTC)`, `.replace(tzinfo=...)`,
        `.astimezone()`): the operation raises TypeError, and `==` between them is always
        False, often only on the path where the two meet. Use aware datetimes throughout, in
        UTC (`datetime.now(UTC)`), and convert at the edges. Only datetimes whose awareness
        the code shows are checked.""",
    ),
    _rule(
        "MR111",
        "mutable-default-argument",
        "warning",
        "A list, dict or set default that the function changes in place (or keeps on self "
        "where the class changes it).",
        """A default value is evaluated once, when the `def` runs, so a list, dict or set
        default is one object shared by every call (`defaultdict(list)` and `deque(maxlen=10)`
        too). A function that changes it or an item of it in place (`append`, item
        assignment, `update`, `+=`, `groups[key].append(...)`), or keeps it as an attribute that the
        class changes, lets one call's data leak into the next: items pile up across
        requests and instances. Default to None and create a new object in the body.
        Unlike linters that flag every mutable default, this rule fires only where the
        sharing shows; a default that is only read is fine.""",
    ),
    _rule(
        "MR112",
        "unbounded-recursion",
        "warning",
        "A function recursing into each level of JSON from outside, two frames per level, "
        "with no depth limit.",
        """A function that calls itself on each nested level of its input recurses as deep
        as the input is nested, and for JSON from outside the sender decides that depth.
        `json.loads` refuses nesting deeper than Python's recursion limit allows, so a plain
        recursion (one frame per level) is bounded by the parse; a recursive call made from
        a generator expression or a comprehension spends two frames per level and raises
        RecursionError at half the depth the parser accepted. Bound the depth (a depth
        parameter checked against a limit) and refuse deeper input with a clear error,
        recurse from a plain `for` loop, or walk the data with an explicit stack. Flagged
        only where the module is seen passing JSON from outside to the function.""",
    ),
    _rule(
        "MR113",
        "blocking-call-in-async",
        "warning",
        "time.sleep, requests, urlopen, subprocess or a blocking socket inside async def.",
        """A coroutine that makes a blocking call (`time.sleep`, requests, urllib,
        subprocess, a blocking socket) stops the whole event loop until the call returns:
        every other request and task of the process waits, timeouts fire elsewhere and
        heartbeats are missed. Use the async equivalent (`asyncio.sleep`, httpx.AsyncClient
        or aiohttp, `asyncio.create_subprocess_exec`, `asyncio.open_connection`), or run the
        blocking call in a thread with `await asyncio.to_thread(...)`.""",
    ),
)
_SEVERITY = {rule.id: rule.severity for rule in BUILTIN_RULES}
_SUPPRESSION = re.compile(r"#\s*mendline:\s*ignore\b(?:\s*\[(?P<ids>[^\]]*)\])?", re.IGNORECASE)


def is_suppressed(line_text: str, rule_id: str) -> bool:
    """True when ``line_text`` carries an inline suppression of ``rule_id``, as ruff's
    ``noqa``: ``# mendline: ignore`` (every rule) or ``# mendline: ignore[MR101, MRL3]``
    (the rules listed; an empty list suppresses nothing)."""
    wanted = rule_id.strip().upper()
    for match in _SUPPRESSION.finditer(line_text):
        ids = match.group("ids")
        if ids is None or wanted in {part.strip().upper() for part in ids.split(",")}:
            return True
    return False


def check_python(
    path: str, tree: ast.Module, lines: Sequence[str], changed: frozenset[int]
) -> list[ReviewComment]:
    """The built-in rules' comments on ``tree`` (the file at ``path`` after the change, as
    ``lines``), on nodes with a line in ``changed``; the function around each is read for
    context. Sorted by line, column and rule. Never raises for what the code is: a function
    whose expressions nest deeper than the rules follow (hundreds of levels, generated
    code) gets no comments."""
    if not changed:
        return []
    source = Source(lines, changed)
    prepare(tree, source)
    hits: list[Hit] = []
    pending: list[Recursion] = []

    def finished(scope: Scope) -> None:
        hits.extend(check_calls(scope, source))
        hits.extend(check_keys(scope, source))
        hits.extend(check_none(scope, source))
        hits.extend(check_datetimes(scope, source))
        hits.extend(check_defs(scope, source))
        pending.extend(recursions(scope, source))

    module = Walk(source, finished).module(tree)
    for recursion in pending:
        try:
            hit = fed_from_json(recursion, tree, module, source)
        except RecursionError:  # a caller's arguments nest deeper than origin() follows
            continue
        if hit is not None:
            hits.append(hit)
    return _comments(path, hits, lines)


def _comments(path: str, hits: list[Hit], lines: Sequence[str]) -> list[ReviewComment]:
    """One comment per rule and line (the leftmost, then the shortest hit)."""
    chosen: dict[tuple[str, int], tuple[int, int, Hit]] = {}
    for hit in hits:
        node = hit.node
        line = node.lineno
        text = lines[line - 1] if line <= len(lines) else ""
        column = _column(text, node.col_offset)
        size = (node.end_lineno or line, node.end_col_offset or 0)
        rank = (column, size[0] * 10_000 + size[1], hit)
        known = chosen.get((hit.rule_id, line))
        if known is None or rank[:2] < known[:2]:
            chosen[(hit.rule_id, line)] = rank
    comments = []
    for (rule_id, line), (column, _, hit) in chosen.items():
        text = lines[line - 1] if line <= len(lines) else ""
        comments.append(
            ReviewComment(
                rule_id=rule_id,
                source="rule",
                severity=_SEVERITY[rule_id],
                path=path,
                line=line,
                message=hit.message,
                code=text.strip(),
                end_line=hit.node.end_lineno or line,
                column=column,
                suggestion=hit.suggestion,
            )
        )
    comments.sort(key=lambda c: (c.line, c.column or 0, c.rule_id))
    return comments


def _column(line: str, offset: int) -> int:
    """The 1-based character column of a UTF-8 byte ``offset`` in ``line``."""
    if line.isascii():
        return offset + 1
    return len(line.encode()[:offset].decode(errors="ignore")) + 1
