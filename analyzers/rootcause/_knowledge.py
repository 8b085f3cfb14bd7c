"""The heuristic analyser's knowledge base: common Python failures as data, and what each means;
for the outages, timeouts, HTTP answers and configuration errors, also how other languages
(Node, Java, Go, .NET, Ruby, PHP, as their Sentry SDKs send them) name the same failure."""

from __future__ import annotations

from dataclasses import dataclass

from mendline.schemas.finding import Category, FixKind, Severity

__all__ = [
    "BASE_FIELDS",
    "DETAILS",
    "GUESSES",
    "HEALTH_FIELDS",
    "HEALTH_RULES",
    "OTHER_DETAILS",
    "RULES",
    "HealthRule",
    "Matcher",
    "Rule",
]

#: Template fields every finding can fill: where it happened, the exception type, the service.
BASE_FIELDS = frozenset({"where", "type", "service"})


@dataclass(frozen=True, slots=True)
class Matcher:
    """Another way a Rule matches, for events of other platforms (an event whose ``platform``
    is set and is not python): other languages name the same failure with their own types
    and words. Never tried for Python events, mendline's own included.

    ``types`` and ``message`` read as a Rule's, at least one of them given (both must match
    when both are); types are written with dots, as the analyser reads other languages'
    names: Ruby's ``Net::ReadTimeout`` is ``"Net.ReadTimeout"``, PHP's
    ``GuzzleHttp\\Exception\\ConnectException`` is ``"GuzzleHttp.Exception.ConnectException"``,
    Go's ``*net.OpError`` is ``"net.OpError"``, and .NET's assembly names are no module.
    The message's named groups must be among the rule's own message's.
    """

    types: tuple[str, ...] = ()
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One error pattern, and the cause, category, severity and fix it stands for.

    Matching, all parts required unless said otherwise:

    - ``types``: exception type patterns, any one of which matches. ``"KeyError"`` matches that
      name from any module, ``"httpx.ReadTimeout"`` only from module ``httpx`` or below it (or
      from an unknown module), and a name may be a glob: ``"*Timeout"``. Empty: any type, and
      also a log message without an exception.
    - ``message``: a regex searched in the exception value (or the log message); its named
      groups become template fields.
    - ``lines``: regexes searched in the source line of the innermost in-app frame, the first
      that matches gives its named groups as fields. ``(?&name)`` stands for the value of field
      ``name`` taken from the message, written as the code would (``'k'`` matches ``"k"``
      too). Optional unless ``needs_line``.

    Text: ``cause`` and ``fix`` are format templates, most specific first; the first whose
    fields were all found is used, so the last may use only ``BASE_FIELDS`` and the message
    fields that every match fills (a "?" stands for one that is empty). Fields: those of
    the message and line regexes, ``DETAILS`` (read from the message), ``value`` (the
    exception value, when not empty), ``function``, ``line`` (the source line) and
    ``repeated`` (the function a recursion repeats).

    ``patch`` names a one-line mechanical fix of the source line (``_patches.PATCHES``).
    ``wrapper``: the exception only restates its cause; diagnose the cause when it is known.
    ``other_platforms``: how other languages' events show the same failure (``Matcher``),
    tried after the rule's own types and message; their facts are read with
    ``OTHER_DETAILS`` first, and ``other_fix``, when given, replaces ``fix`` for them where
    that one speaks of Python.
    """

    id: str
    category: Category
    severity: Severity
    cause: tuple[str, ...]
    fix: tuple[str, ...]
    types: tuple[str, ...] = ()
    message: str | None = None
    lines: tuple[str, ...] = ()
    needs_line: bool = False
    fix_kind: FixKind | None = None
    patch: str | None = None
    wrapper: bool = False
    other_platforms: tuple[Matcher, ...] = ()
    other_fix: tuple[str, ...] = ()


# fmt: off
#: Facts read from an exception value when a template asks for them: for each field, regexes
#: tried in order, each with the template that makes the field from its groups.
DETAILS: dict[str, tuple[tuple[str, str], ...]] = {
    "address": (
        (r"\('([^']+)',\s*(\d+)\)", "{0}:{1}"),
        (r'server at "([^"]+)"[^,]*, port (\d+)', "{0}:{1}"),
        (r"host='([^']+)', port=(\d+)", "{0}:{1}"),
        (r"https?://([^/\s'\"]+)", "{0}"),
        (r"\b((?:\d{1,3}\.){3}\d{1,3}|localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+):(\d{2,5})\b",
         "{0}:{1}"),
    ),
    "host": (
        (r"https?://([^/:\s'\"]+)", "{0}"),
        (r"host='([^']+)'", "{0}"),
        (r"\('([^']+)',\s*\d+\)", "{0}"),
    ),
    "url": (
        (r"url '([^']+)'", "{0}"),
        (r"for url: (\S+)", "{0}"),
        (r"url=URL\('([^']+)'\)", "{0}"),
        (r"(https?://[^\s'\"]+)", "{0}"),
    ),
    "constraint": (
        (r'constraint "([^"]+)"', "{0}"),
        (r"constraint failed: ([\w.]+(?:, [\w.]+)*)", "{0}"),
        (r"for key '([^']+)'", "{0}"),
    ),
    "conflict": ((r"Key \(([^)]*)\)=\(([^)]*)\)", "{0}={1}"),),
    "verify_error": ((r"certificate verify failed: ([^(]+?)\s*(?:\(|$)", "{0}"),),
    "column": (
        (r'null value in column "([^"]+)"', "{0}"),
        (r"NOT NULL constraint failed: ([\w.]+)", "{0}"),
        (r"Column '([^']+)' cannot be null", "{0}"),
    ),
}

#: The same facts as other languages' clients write them, tried before DETAILS for events of
#: other platforms (where DETAILS' general patterns would find the wrong thing first: cURL's
#: help link before the address it failed to connect to).
OTHER_DETAILS: dict[str, tuple[tuple[str, str], ...]] = {
    "address": (
        (r"Failed to connect to (\S+?) port (\d+)", "{0}:{1}"),  # cURL (PHP)
        (r"Failed to open TCP connection to ([^\s:]+):(\d+)", "{0}:{1}"),  # Ruby's Net::HTTP
    ),
    "host": (
        (r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) (\S+)", "{0}"),  # Node
        (r"lookup (\S+?)(?: on \S+)?: (?:no such host|server misbehaving)", "{0}"),  # Go
        (r"Could not resolve host: ([^\s;]+)", "{0}"),  # cURL
        (r"No such host is known\.? \(([^):]+)", "{0}"),  # .NET
        (r"Failed to open TCP connection to ([^\s:]+)", "{0}"),  # Ruby's Net::HTTP
        (r"^((?:[\w-]+\.)+[\w-]+|localhost)(?::|$)", "{0}"),  # Java's UnknownHostException
    ),
    "url": (
        (r'^(?:Get|Post|Put|Patch|Delete|Head) "([^"]+)"', "{0}"),  # Go's *url.Error
        (r"`(?:GET|POST|PUT|PATCH|DELETE|HEAD) ([^`\s]+)`", "{0}"),  # Guzzle
        (r"\) for (https?://\S+)$", "{0}"),  # Guzzle, after cURL's help link
        (r'returned for "([^"]+)"', "{0}"),  # Symfony's HttpClient
        (r"to \[(https?://[^\]\s]+)\]", "{0}"),  # Feign
        (r"from (?:GET|POST|PUT|PATCH|DELETE|HEAD) (https?://\S+)", "{0}"),  # Spring WebClient
    ),
    "verify_error": (
        (r"SSL certificate problem: ([^(]+?)\s*(?:\(|$)", "{0}"),  # cURL
        (r"x509: ([^(]+?)\s*(?:\(|$)", "{0}"),  # Go
        (r"(unable to find valid certification path to requested target)", "{0}"),  # Java
        (r"^(self[- ]signed certificate(?: in certificate chain)?|unable to verify the first "
         r"certificate|certificate has expired|unable to get local issuer certificate)", "{0}"),
        (r"(The remote certificate is invalid[^.]*)", "{0}"),  # .NET
    ),
}

#: For an exception no rule knows: a category guessed from words in its type name.
GUESSES: tuple[tuple[str, Category], ...] = (
    (r"Timeout|TimedOut|Unavailable|Connect|Network|Socket|Upstream",
     "dependency_outage_or_timeout"),
    (r"Permission|Forbidden|Unauthori[sz]ed|Auth|Credential|Config|Setting", "configuration"),
    (r"Valid|Invalid|Pars|Malformed|Decode|Format|Schema", "bad_input"),
    (r"NotFound|DoesNotExist|Missing|NoSuch|Unknown", "missing_key_or_attribute"),
    (r"Quota|Limit|Exhaust|Full|Memory|Overflow|Throttl", "resource_exhaustion"),
    (r"Lock|Conflict|Concurren|Race|Stale", "concurrency"),
    (r"Type", "type_mismatch"),
)

# Shapes used by several rules. The callee's argument: one level of nested parentheses.
_ARG = r"(?P<arg>[^()]*(?:\([^()]*\)[^()]*)*?)"
_OBJ = r"(?P<obj>[A-Za-z_][\w.]*(?:\([^()]*\))?)"
_SUBSCRIPT = r"(?P<container>[A-Za-z_][\w.]*(?:\([^()]*\))?(?:\[[^\[\]]*\])*)\[\s*"
_HTTP = ("HTTPStatusError", "HTTPError", "ClientResponseError")
_DB = ("IntegrityError", "DatabaseError", "OperationalError")
_RETRY = "retry idempotent calls with backoff and a breaker, so an outage does not pile up work"


def _status(codes: str) -> str:
    """A regex of an HTTP status among ``codes`` as other languages' clients write it: axios
    "status code 503", got "Response code 503", .NET "does not indicate success: 503", Guzzle
    "resulted in a `503", Symfony "HTTP/1.1 503", OkHttp "HTTP 503", Faraday "status 503",
    Go "status: 503", and Spring, Feign, RestClient and Net::HTTP "503 Service Unavailable"
    first."""
    return (
        r"(?:[Ss]tatus(?: code)?:? ?|Response code |does not indicate success: |resulted in a `"
        r'|HTTP(?:/[\d.]+)? |^\[?(?=\d{3} [A-Z"]))'
        rf"(?P<status>{codes})\b"
    )

RULES: tuple[Rule, ...] = (
    # -- resources, whatever type carries them ---------------------------------------------
    Rule(
        "too-many-open-files", "resource_exhaustion", "high", types=(),
        message=r"Too many open files|\[Errno 24\]|EMFILE",
        cause=("{where} could not open another file or socket: the process has used up its file "
               "descriptors (ulimit -n). Usually they leak: files, sockets or HTTP clients "
               "opened and never closed.",),
        fix=("Close what is opened (`with` blocks; one shared HTTP client, not one per request); "
             "see in /proc/<pid>/fd what piles up, and raise the limit only once nothing leaks.",),
        fix_kind="logic",
    ),
    Rule(
        "no-space-left", "resource_exhaustion", "high",
        message=r"No space left on device|\[Errno 28\]|ENOSPC",
        cause=("{where} could not write: the disk it writes to is full.",),
        fix=("Free or grow the volume, and bound what fills it (log rotation, temp-file "
             "cleanup, retention of spools and uploads).",),
        fix_kind="config",
    ),
    Rule(
        "db-pool-exhausted", "resource_exhaustion", "high",
        message=r"QueuePool limit of size (?P<size>\d+) overflow (?P<overflow>-?\d+) reached"
        r"|[Cc]onnection pool (?:is )?exhausted",
        cause=("{where} waited for a database connection from its pool ({size} plus {overflow} "
               "overflow) and none came free: connections are held too long (slow queries, "
               "transactions or sessions left open) or the pool is too small for the load.",
               "{where} waited for a database connection from its pool and none came free: "
               "connections are held too long or the pool is too small for the load.",),
        fix=("Return connections promptly (close sessions in `finally`/`with`, no network calls "
             "inside transactions), find slow queries, then size the pool to the concurrency.",),
        fix_kind="logic",
    ),
    Rule(
        "db-too-many-connections", "resource_exhaustion", "high",
        message=r"too many clients|remaining connection slots are reserved|[Tt]oo many connections",
        cause=("The database server refused a new connection from {where}: its max_connections "
               "is reached. Every process's pool adds up (workers x pool size).",),
        fix=("Keep workers x pool size below the server's max_connections (smaller pools, or a "
             "pooler such as PgBouncer), and close connections that are not returned.",),
        fix_kind="config",
    ),
    Rule(
        "db-deadlock", "concurrency", "high",
        message=r"deadlock detected|Deadlock found|DeadlockDetected",
        cause=("{where}'s transaction deadlocked with another one: each held a lock the other "
               "wanted, and the database aborted this one.",),
        fix=("Take row locks in one consistent order (e.g. update rows sorted by id), keep "
             "transactions short, and retry a transaction aborted by a deadlock: that is safe.",),
        fix_kind="logic",
    ),
    Rule(
        "db-locked", "concurrency", "medium", message=r"database (?:table )?is locked",
        cause=("{where} could not write because another connection held the SQLite database's "
               "write lock for longer than the busy timeout.",),
        fix=("Keep write transactions short, set a busy timeout (sqlite3.connect(..., timeout=)),"
             " use WAL mode, or move concurrent writers to a server database.",),
        fix_kind="config",
    ),
    Rule(
        "db-connection-lost", "dependency_outage_or_timeout", "high",
        message=r"server closed the connection unexpectedly|terminating connection due to"
        r"|ConnectionDoesNotExist|connection (?:was closed in the middle|is closed|already closed)"
        r"|Lost connection to",
        cause=("{where} lost its database connection: the server restarted or failed over, an "
               "idle connection was cut by a proxy, or the code used a connection after "
               "closing it.",),
        fix=("Check the database's logs at that time; validate pooled connections before use "
             "(pre-ping, a max idle time under the proxy's) and retry the transaction once.",),
        fix_kind="config",
        other_platforms=(
            Matcher(message=r"Connection terminated unexpectedly|This connection has been closed"
                    r"|An I/O error occurred while sending to the backend|driver: bad connection"
                    r"|Exception while reading from stream"),
        ),
    ),
    # -- concurrency and iteration ----------------------------------------------------------
    Rule(
        "event-loop-closed", "concurrency", "medium", message=r"Event loop is closed",
        cause=("{where} used an asyncio event loop after it was closed: work (a callback, a "
               "client's cleanup, a task) outlived the loop, as at shutdown, or a client made "
               "for one asyncio.run() was reused in another.",),
        fix=("Close clients and await tasks before the loop ends (inside the same asyncio.run()),"
             " and keep no loop-bound objects (clients, pools, queues) in globals.",),
        fix_kind="logic",
    ),
    Rule(
        "event-loop-mismatch", "concurrency", "high",
        message=r"attached to a different loop|bound to a different event loop",
        cause=("{where} awaited a future, lock or client made on another event loop: an asyncio "
               "object was created in one loop (at import, in another thread, in an earlier "
               "asyncio.run()) and used in this one.",),
        fix=("Create asyncio objects inside the loop that uses them (in the coroutine, or in "
             "startup code of that loop), not at import time or in globals shared across loops.",),
        fix_kind="logic",
    ),
    Rule(
        "dict-changed-during-iteration", "logic_bug", "medium", types=("RuntimeError",),
        message=r"(?P<kind>dictionary|[Ss]et|OrderedDict|deque)"
        r" (?:changed size|keys changed|mutated) during iteration",
        lines=(r"^for (?P<target>.+?) in (?P<iterable>.+?)\s*:$",),
        cause=("{where} iterates over {iterable} while the {kind} changes size (`{line}`): the "
               "loop body, or another thread, adds or removes entries.",
               "{where} changed a {kind} while iterating over it: the loop body, or another "
               "thread, adds or removes entries.",),
        fix=("Iterate over a copy, `for {target} in list({iterable}):`, or collect the changes "
             "and apply them after the loop; lock it if another thread writes to it.",
             "Iterate over a copy (list(...)) or apply the changes after the loop.",),
        fix_kind="logic", patch="iterate-over-copy",
    ),
    Rule(
        "generator-stop", "logic_bug", "medium", types=("RuntimeError",), wrapper=True,
        message=r"(?:generator|coroutine) raised Stop(?:Async)?Iteration",
        cause=("A generator called from {where} let StopIteration escape (usually next() on an "
               "empty iterator), which Python turns into RuntimeError (PEP 479).",),
        fix=("Give next() a default inside the generator, or catch StopIteration there and "
             "`return`.",),
        fix_kind="guard",
    ),
    Rule(
        "stop-iteration", "logic_bug", "medium", types=("StopIteration", "StopAsyncIteration"),
        lines=(r"\bnext\(\s*(?P<iterator>[^(),]+(?:\([^()]*(?:\([^()]*\))?\))?)\s*\)",),
        cause=("{where} calls next({iterator}) without a default (`{line}`), and there was "
               "nothing left: next() raised StopIteration.",
               "{where} asked an exhausted iterator for its next item: next() without a "
               "default raised StopIteration.",),
        fix=("Give next() a default and handle it: `next({iterator}, None)`, then decide what "
             "an empty {iterator} means.",
             "Give next() a default and handle the empty case.",),
        fix_kind="guard", patch="next-default",
    ),
    Rule(
        "recursion", "logic_bug", "high", types=("RecursionError",),
        cause=("{repeated} calls itself without reaching a base case, past Python's recursion "
               "limit: the data has a cycle (a node that is its own ancestor) or the stop "
               "condition is missing.",
               "{where} recursed past Python's recursion limit: the data has a cycle or the "
               "stop condition is missing.",),
        fix=("Make {repeated} stop: detect cycles (track what was visited) and check the base "
             "case; for deep but finite data use a loop with an explicit stack.",
             "Detect cycles and check the base case; for deep data use an explicit stack.",),
        fix_kind="logic",
    ),
    Rule(
        "memory", "resource_exhaustion", "high", types=("MemoryError",),
        cause=("{where} could not allocate memory: the process ran out (a whole large input "
               "read at once, a cache or list that only grows, or a memory limit set too low).",),
        fix=("Stream or page large inputs instead of loading them whole, bound caches, and "
             "compare the process's peak memory with its container limit.",),
        fix_kind="logic",
    ),
    # -- lookups ----------------------------------------------------------------------------
    Rule(
        "pop-from-empty", "logic_bug", "medium", types=("IndexError", "KeyError"),
        message=r"^'?(?:pop from (?:an )?empty (?P<what>list|set|deque)|popitem\(\): \w+ is empty)",
        lines=(r"(?P<container>[A-Za-z_][\w.]*)\.pop(?:item|left)?\(",),
        cause=("{where} pops from {container}, which was empty (`{line}`).",
               "{where} pops from an empty {what}.",
               "{where} pops from an empty container.",),
        fix=("Check `if {container}:` before popping, and decide what an empty {container} "
             "means here.", "Check that the container is not empty before popping.",),
        fix_kind="guard",
    ),
    Rule(
        "env-var-missing", "configuration", "high", types=("KeyError",),
        message=r"^(?P<key>'[^']*'|\"[^\"]*\")$", needs_line=True,
        lines=(r"\benviron\[\s*(?&key)\s*\]",),
        cause=("{where} reads the environment variable {key} (`{line}`), which is not set "
               "where {service} runs.",),
        fix=("Set {key} in {service}'s environment for this deployment, and read settings once "
             "at startup with a clear error (or os.environ.get({key}, default) where a default "
             "is right).",),
        fix_kind="config",
    ),
    Rule(
        "key-missing", "missing_key_or_attribute", "medium", types=("KeyError",),
        message=r"^(?P<key>.*)$",
        # A literal key other than the one missing is not the lookup that failed.
        lines=(_SUBSCRIPT + r"(?&key)\s*\]", _SUBSCRIPT + r"(?P<subscript>[^\[\]'\"]+?)\s*\]"),
        cause=("{where} looks up {container}[{subscript}] (`{line}`), and {container} has no "
               "key {key}.",
               "{where} reads {container}[{key}], but {container} has no key {key} (`{line}`).",
               "{where} looks up the key {key}, which is not there.",
               "{where} looks up a key that is not there.",),
        fix=("Decide what a missing {key} means: {container}.get({key}) with a default where "
             "absence is normal, else validate {container} where it comes in, so that a "
             "missing key is rejected with a clear message.",
             "Use .get() with a default where a missing {key} is normal, else validate the "
             "input where it comes in.",
             "Use .get() with a default where a missing key is normal, else validate the input.",),
        fix_kind="guard", patch="get-instead-of-subscript",
    ),
    Rule(
        "index-out-of-range", "missing_key_or_attribute", "medium", types=("IndexError",),
        message=r"(?P<what>list|tuple|string|range object|deque|bytearray)? ?index out of range"
        r"|index (?P<position>-?\d+) is out of bounds",
        lines=(r"(?P<container>[A-Za-z_][\w.]*(?:\([^()]*\))?)\[\s*(?P<index>[^\[\]:]+?)\s*\]",),
        cause=("{where} reads {container}[{index}] (`{line}`), but {container} has no item "
               "there: it is shorter than the code assumes, often empty.",
               "{where} reads past the end of a {what}.",
               "{where} reads past the end of a sequence.",),
        fix=("Check the length first (`if {container}:` / `len({container}) > {index}`), or "
             "use `next(iter({container}), None)` for an optional first item.",
             "Check the length before indexing.",),
        fix_kind="guard",
    ),
    Rule(
        "circular-import", "logic_bug", "high",
        message=r"partially initiali[sz]ed module '(?P<module>[\w.]+)'",
        cause=("{module} was used while it was still being imported: a circular import (two "
               "modules import each other at their top level).",),
        fix=("Break the cycle: move what both need into a third module, import inside the "
             "function that needs it, or import {module} itself rather than names from it.",),
        fix_kind="import",
    ),
    Rule(
        "none-attribute", "null_reference", "medium", types=("AttributeError",),
        message=r"'NoneType' object has no attribute '(?P<attr>[^']+)'",
        lines=(_OBJ + r"\.(?&attr)\b",),
        cause=("{where} reads `{obj}.{attr}` where {obj} is None (`{line}`).",
               "{where} reads .{attr} of a value that is None.",),
        fix=("Find why {obj} is None (a lookup that found nothing, a function that returned "
             "nothing, an optional field) and handle that case before `.{attr}`, or make its "
             "producer never return None.",
             "Find which value is None and handle that case before reading .{attr}.",),
        fix_kind="guard",
    ),
    Rule(
        "module-attribute", "missing_key_or_attribute", "medium", types=("AttributeError",),
        message=r"module '(?P<module>[\w.]+)' has no attribute '(?P<attr>[^']+)'",
        cause=("{where} uses {module}.{attr}, which the {module} loaded at run time does not "
               "have: the installed version renamed or removed it (or is older), or a local "
               "file named {module} shadows the real module.",),
        fix=("Pin {module} to the version the code was written for (compare it with the "
             "installed one), and check that no project file is named after {module}.",),
        fix_kind="dependency",
    ),
    Rule(
        "object-attribute", "missing_key_or_attribute", "medium", types=("AttributeError",),
        message=r"(?:'(?P<cls>[\w.]+)' object|type object '(?P<typename>[\w.]+)')"
        r" has no attribute '(?P<attr>[^']+)'",
        lines=(_OBJ + r"\.(?&attr)\b",),
        cause=("{where} reads `{obj}.{attr}` (`{line}`), but {obj} is of type {cls}, which has "
               "no attribute {attr}: the value is not of the type the code expects, or the "
               "attribute was renamed.",
               "{where} reads .{attr} of a value of type {cls}, which has no such attribute.",
               "{where} reads {typename}.{attr}, which {typename} does not define.",
               "{where} reads an attribute the object does not have.",),
        fix=("Check which type {obj} really holds here and where it comes from; use the "
             "attribute's current name.", "Check the object's type and the attribute's name.",),
        fix_kind="logic",
    ),
    # -- call signatures and types ------------------------------------------------------------
    Rule(
        "call-missing-argument", "logic_bug", "high", types=("TypeError",),
        message=r"(?<![\w.<>])(?P<func>[\w.<>]+)\(\) missing (?P<count>\d+) required"
        r" (?:positional|keyword-only) arguments?: (?P<names>.+)$",
        cause=("{where} calls {func}() without {names}: the call and {func}'s signature "
               "disagree (a parameter was added, or the call passes too few arguments).",),
        fix=("Pass {names} in the call, or give the parameter a default if callers may leave "
             "it out; then check {func}'s other callers.",),
        fix_kind="logic",
    ),
    Rule(
        "call-unexpected-keyword", "logic_bug", "high", types=("TypeError",),
        message=r"(?<![\w.<>])(?P<func>[\w.<>]+)\(\) got an unexpected keyword argument"
        r" '(?P<arg>[^']+)'",
        cause=("{where} calls {func}() with the keyword {arg}, which {func} does not accept: "
               "renamed or removed in the version in use, or passed to the wrong function.",),
        fix=("Use the parameter name {func} has now (check the version installed against the "
             "one the code was written for), or drop {arg}.",),
        fix_kind="logic",
    ),
    Rule(
        "call-too-many-arguments", "logic_bug", "high", types=("TypeError",),
        message=r"(?<![\w.<>])(?P<func>[\w.<>]+)\(\) takes (?P<expected>.+?) positional"
        r" arguments? but (?P<given>\d+) (?:were|was) given",
        cause=("{where} calls {func}() with {given} positional arguments where it takes "
               "{expected} (counts include self): an extra argument, a missing `self` in a "
               "method, or a changed signature.",),
        fix=("Match the call to {func}'s signature (pass extras by keyword, or add the "
             "missing `self` parameter).",),
        fix_kind="logic",
    ),
    Rule(
        "none-not-subscriptable", "null_reference", "medium", types=("TypeError",),
        message=r"'NoneType' object is not subscriptable",
        lines=(_SUBSCRIPT + r"(?P<subscript>[^\[\]]+?)\s*\]",),
        cause=("{where} indexes `{container}[{subscript}]` where {container} is None "
               "(`{line}`).", "{where} indexes a value that is None.",),
        fix=("Find why {container} is None (a lookup or a function that returned nothing) "
             "and handle that case before indexing it.",
             "Find which value is None and handle that case before indexing.",),
        fix_kind="guard",
    ),
    Rule(
        "none-not-iterable", "null_reference", "medium", types=("TypeError",),
        message=r"'NoneType' object is not iterable|non-iterable NoneType",
        lines=(r"\bfor (?P<target>.+?) in (?P<iterable>.+?):",
               r"^(?P<target>[\w\s,()\[\]*]+?)\s*=\s*(?P<iterable>[^=].*)$",),
        cause=("{where} iterates over {iterable}, which is None (`{line}`).",
               "{where} iterates over or unpacks a value that is None.",),
        fix=("Find why {iterable} is None and handle it, e.g. `for {target} in {iterable} or "
             "():` where an absent list means an empty one.",
             "Find which value is None and handle that case before iterating.",),
        fix_kind="guard",
    ),
    Rule(
        "none-not-callable", "null_reference", "medium", types=("TypeError",),
        message=r"'NoneType' object is not callable",
        cause=("{where} calls something that is None (`{line}`): a callback or hook that was "
               "never set, or a decorator that does not return its wrapper.",
               "{where} calls something that is None: a callback that was never set, or a "
               "decorator that does not return its wrapper.",),
        fix=("Check that the callable is set before calling it, and that decorators return "
             "the wrapper.",),
        fix_kind="guard",
    ),
    Rule(
        "none-operand", "null_reference", "medium", types=("TypeError",),
        message=r"(?=.*NoneType)(?:unsupported operand type\(s\) for (?P<op>[^:]+): "
        r"'(?P<left>[\w.]+)' and '(?P<right>[\w.]+)'|'(?P<cmp>[^']+)' not supported between"
        r"|(?P<call>\w+)\(\) argument must be)",
        cause=("{where} computes {op} with values of types {left} and {right} (`{line}`): one "
               "operand is None, a value the code expects to be set.",
               "{where} compares with {cmp} a value that is None (`{line}`).",
               "{where} passes None to {call}() (`{line}`).",
               "{where} uses a value that is None in an operation.",),
        fix=("Find which operand is None and why (an optional field, a missing lookup), and "
             "handle it before the operation.",),
        fix_kind="guard",
    ),
    Rule(
        "str-concatenation", "type_mismatch", "medium", types=("TypeError",),
        message=r"can only concatenate (?P<left>\w+) \(not \"(?P<right>\w+)\"\) to \w+"
        r"|must be str, not (?P<other>\w+)|expected str instance, (?P<item>\w+) found",
        cause=("{where} joins values of types {left} and {right} (`{line}`): Python does not "
               "convert between them implicitly.",
               "{where} joins text with a value of type {other} (`{line}`).",
               "{where} joins text with a value of type {item} (`{line}`).",
               "{where} joins text with a value that is not text.",),
        fix=("Format explicitly (an f-string, or str() on the number) or convert the value "
             "where it comes in.",),
        fix_kind="logic",
    ),
    Rule(
        "unsupported-operand", "type_mismatch", "medium", types=("TypeError",),
        message=r"unsupported operand type\(s\) for (?P<op>[^:]+): '(?P<left>[\w.]+)' and"
        r" '(?P<right>[\w.]+)'|'(?P<cmp>[^']+)' not supported between instances of"
        r" '(?P<cleft>[\w.]+)' and '(?P<cright>[\w.]+)'",
        cause=("{where} applies {op} to values of types {left} and {right} (`{line}`), which "
               "Python does not combine: one side is not of the type the code expects.",
               "{where} applies {op} to values of types {left} and {right}, which Python does "
               "not combine.",
               "{where} compares values of types {cleft} and {cright} with {cmp}.",
               "{where} combines two values of types that do not go together.",),
        fix=("Convert the odd one out where it enters the program (parse text to a number "
             "once; keep money in Decimal throughout), not at the operation.",),
        fix_kind="logic",
    ),
    Rule(
        "not-subscriptable", "type_mismatch", "medium", types=("TypeError",),
        message=r"'(?P<cls>[\w.]+)' object is not subscriptable",
        lines=(_SUBSCRIPT + r"(?P<subscript>[^\[\]]+?)\s*\]",),
        cause=("{where} indexes `{container}[{subscript}]`, but {container} is of type {cls}, "
               "which has no items (`{line}`).",
               "{where} indexes a value of type {cls}, which has no items.",
               "{where} indexes a value that has no items.",),
        fix=("Check what {container} holds here (a function that was not called, an object "
             "instead of its dict).", "Check what the indexed value really is.",),
        fix_kind="logic",
    ),
    Rule(
        "not-iterable", "type_mismatch", "medium", types=("TypeError",),
        message=r"'(?P<cls>[\w.]+)' object is not iterable|non-iterable (?P<other>\w+) object",
        cause=("{where} iterates over a value of type {cls}, which is not iterable (`{line}`).",
               "{where} iterates over or unpacks a value of type {other} (`{line}`).",
               "{where} iterates over a value that is not iterable.",),
        fix=("Check what the value holds here: a single item where a list was expected, or a "
             "method that was not called.",),
        fix_kind="logic",
    ),
    Rule(
        "not-callable", "type_mismatch", "medium", types=("TypeError",),
        message=r"'(?P<cls>[\w.]+)' object is not callable",
        cause=("{where} calls a value of type {cls} as if it were a function (`{line}`): a "
               "name that held a function now holds a value (shadowed by a variable or "
               "attribute), or a property is called with ().",
               "{where} calls a value of type {cls} as if it were a function.",
               "{where} calls a value that is not a function.",),
        fix=("Rename the variable that shadows the function, or drop the () after the "
             "property.",),
        fix_kind="logic",
    ),
    # -- parsing input ------------------------------------------------------------------------
    Rule(
        "int-parse", "bad_input", "medium", types=("ValueError",),
        message=r"invalid literal for int\(\) with base (?P<base>\d+): (?P<bad>.*)$",
        lines=(r"\bint\(\s*" + _ARG + r"\s*(?:,\s*(?:base\s*=\s*)?\w+\s*)?\)",),
        cause=("{where} passes {arg} to int() unchecked (`{line}`), and {bad} reached it: not "
               "a whole number.",
               "{where} calls int() on text that is not a whole number: {bad} reached it.",
               "{where} calls int() on text that is not a whole number.",),
        fix=("Validate {arg} where it comes in and reject a non-number with a clear message "
             "(or catch ValueError around int() and answer with a 4xx), rather than failing "
             "deep in {where}.",
             "Validate the input where it comes in, or catch ValueError around int().",),
        fix_kind="guard",
    ),
    Rule(
        "float-parse", "bad_input", "medium", types=("ValueError",),
        message=r"could not convert string to float: (?P<bad>.*)$",
        lines=(r"\bfloat\(\s*" + _ARG + r"\s*\)",),
        cause=("{where} passes {arg} to float() unchecked (`{line}`), and {bad} reached it: "
               "not a number (a decimal comma, a unit, an empty field?).",
               "{where} calls float() on text that is not a number: {bad} reached it.",
               "{where} calls float() on text that is not a number.",),
        fix=("Validate the number where it comes in (say which format it takes) and reject "
             "others with a clear message, or catch ValueError around float().",),
        fix_kind="guard",
    ),
    Rule(
        "decimal-parse", "bad_input", "medium",
        types=("decimal.InvalidOperation", "decimal.ConversionSyntax"),
        lines=(r"\bDecimal\(\s*" + _ARG + r"\s*\)",),
        cause=("{where} passes {arg} to Decimal() (`{line}`), and the text was not a number.",
               "{where} hit decimal.InvalidOperation: text that is not a number given to "
               "Decimal(), or an invalid operation such as quantize() past the precision.",),
        fix=("Validate {arg} before Decimal() and reject what is not a number, or catch "
             "decimal.InvalidOperation there.",
             "Validate numbers before Decimal(), or catch decimal.InvalidOperation.",),
        fix_kind="guard",
    ),
    Rule(
        "datetime-parse", "bad_input", "medium", types=("ValueError",),
        message=r"time data (?P<bad>.+?) does not match format (?P<format>'.*')"
        r"|unconverted data remains: (?P<rest>.+)",
        lines=(r"\bstrptime\(\s*(?P<arg>[^,()]+(?:\([^()]*\))?)\s*,",),
        cause=("{where} parses {bad} with the format {format} (`{line}`), and they do not "
               "match.",
               "{where} parsed a date and found text left over after the format: {rest}.",
               "{where} parses a date whose text does not match the expected format.",),
        fix=("Accept the formats the input really uses (or ISO 8601 only, said in the API), "
             "and reject other dates with a clear message instead of crashing.",),
        fix_kind="guard",
    ),
    Rule(
        "isoformat-parse", "bad_input", "medium", types=("ValueError",),
        message=r"Invalid isoformat string: (?P<bad>.+)",
        lines=(r"\bfromisoformat\(\s*" + _ARG + r"\s*\)",),
        cause=("{where} passes {arg} to fromisoformat() (`{line}`), and {bad} is not an ISO "
               "8601 date.", "{where} parses {bad}, which is not an ISO 8601 date.",
               "{where} parses a date that is not ISO 8601.",),
        fix=("Validate dates where they come in and reject non-ISO text with a clear "
             "message.",),
        fix_kind="guard",
    ),
    Rule(
        "json-empty", "bad_input", "medium", types=("JSONDecodeError",),
        message=r"^Expecting value: line 1 column 1 \(char 0\)",
        lines=(r"(?P<call>[\w.]*(?:loads?|json)\(" + _ARG + r"\))",),
        cause=("{where} parses {arg} as JSON (`{line}`), but it was empty or not JSON at all "
               "(nothing valid at char 0): typically an empty body or an HTML error page.",
               "{where} parses JSON, but the text was empty or not JSON at all (nothing "
               "valid at char 0): typically an empty body or an HTML error page.",),
        fix=("Check the response's status and content type before parsing it, and log what "
             "came instead of JSON.",),
        fix_kind="guard",
    ),
    Rule(
        "json-decode", "bad_input", "medium", types=("JSONDecodeError",),
        message=r"(?P<reason>[^:]+): line (?P<row>\d+) column (?P<column>\d+)",
        lines=(r"(?P<call>[\w.]*(?:loads?|json)\(" + _ARG + r"\))",),
        cause=("{where} parses {arg} as JSON (`{line}`), and it is malformed: {reason} at "
               "line {row}, column {column}.",
               "{where} parses malformed JSON: {reason} at line {row}, column {column}.",
               "{where} parses malformed JSON.",),
        fix=("Find who produces this text: JSON written by hand, a Python repr (single "
             "quotes) or a truncated body; reject invalid JSON with a clear message.",),
        fix_kind="guard",
    ),
    Rule(
        "unicode-decode", "bad_input", "medium", types=("UnicodeDecodeError",),
        message=r"'(?P<codec>[^']+)' codec can't decode (?:byte (?P<byte>0x[0-9a-f]+)|bytes)"
        r" in position (?P<position>[\d-]+)",
        cause=("{where} decodes bytes as {codec}, but they are not {codec}: byte {byte} at "
               "position {position}. The input is in another encoding (often latin-1 or "
               "cp1252), or binary.",
               "{where} decodes bytes as {codec}, but they are not {codec}.",
               "{where} decodes bytes with the wrong encoding.",),
        fix=("Decode with the encoding the producer uses (read the declared charset; "
             "open(..., encoding=)), or errors='replace' where exact text does not matter.",),
        fix_kind="logic",
    ),
    Rule(
        "unicode-encode", "configuration", "medium", types=("UnicodeEncodeError",),
        message=r"'(?P<codec>[^']+)' codec can't encode characters? (?:(?P<char>'[^']*') )?"
        r"in position",
        cause=("{where} encodes text as {codec}, which cannot represent {char}: a narrow "
               "default encoding (a C/POSIX locale, a stream opened without encoding=) meets "
               "non-ASCII text.",
               "{where} encodes text as {codec}, which cannot represent all of it.",
               "{where} encodes text with an encoding that cannot represent it.",),
        fix=("Encode as UTF-8 explicitly (open(..., encoding='utf-8'), .encode('utf-8')), or "
             "run with a UTF-8 locale (PYTHONUTF8=1).",),
        fix_kind="config",
    ),
    Rule(
        "value-unpack", "type_mismatch", "medium", types=("ValueError",),
        message=r"(?:too many|not enough) values to unpack \(expected (?P<expected>\d+)"
        r"(?:, got (?P<got>\d+))?\)",
        lines=(r"^(?:for\s+)?(?P<targets>[\w\s,()\[\]*]+?)\s*(?:=|\bin\b)\s*(?P<source>[^=].*?):?$",),
        cause=("{where} unpacks {source} into {targets} (`{line}`): it expects {expected} "
               "values, and the data had a different number.",
               "{where} unpacks a value into {expected} names, and it had a different number "
               "of items.", "{where} unpacks a value with a different number of items.",),
        fix=("Check the data's shape before unpacking (split with maxsplit, or check the "
             "length) and reject malformed input.",),
        fix_kind="guard",
    ),
    Rule(
        "value-not-in-list", "missing_key_or_attribute", "medium", types=("ValueError",),
        message=r"x not in (?:list|tuple)|is not in list|substring not found",
        lines=(r"(?P<container>[A-Za-z_][\w.]*)\.(?P<method>remove|index)\(",),
        cause=("{where} calls {container}.{method}() for an item that is not in it (`{line}`).",
               "{where} looks for an item that is not in the list.",),
        fix=("Check membership first (`if item in {container}:`), or catch ValueError.",
             "Check membership first, or catch ValueError.",),
        fix_kind="guard",
    ),
    Rule(
        "zero-division", "logic_bug", "medium",
        types=("ZeroDivisionError", "decimal.DivisionByZero", "decimal.DivisionUndefined"),
        lines=(r"(?P<dividend>[\w.\])]+)\s*(?://|/|%)\s*"
               r"(?P<divisor>[A-Za-z_][\w.]*(?:\([^()]*\))?|\([^()]*\))",),
        cause=("{where} divides by {divisor}, which was 0 (`{line}`): a count or total that "
               "can be zero (an empty list, a first day without data) is not guarded.",
               "{where} divided by zero: a count or total that can be zero is not guarded.",),
        fix=("Decide what the result is when {divisor} is 0 and guard it (`... if {divisor} "
             "else 0`, or skip the computation).",
             "Decide what the result is when the divisor is 0, and guard it.",),
        fix_kind="guard",
    ),
    Rule(
        "overflow", "bad_input", "medium", types=("OverflowError",),
        cause=("{where} computed a number too large for its type ({value}): an unbounded "
               "input (a huge amount, an exponent, a date far away) or a runaway computation.",
               "{where} computed a number too large for its type.",),
        fix=("Bound the inputs that feed the computation, and reject out-of-range values "
             "with a clear message.",),
        fix_kind="guard",
    ),
    Rule(
        "pydantic-validation", "bad_input", "medium",
        types=("pydantic.ValidationError", "pydantic_core.ValidationError"),
        message=r"(?P<count>\d+) validation errors? for (?P<model>[^\n]+)\n(?P<field>[^\n]+)\n"
        r"\s*(?P<reason>[^\[\n]+?)\s*(?:\[|\n|$)",
        cause=("{model} rejected the data {where} gave it: {field}: {reason} ({count} error(s) "
               "in all).", "{where} got data a pydantic model rejects.",),
        fix=("If the data comes from outside, answer with the validation errors (a 422) "
             "instead of crashing; if from inside, fix what produces {field}.",
             "Answer bad outside data with its validation errors; fix inside producers.",),
        fix_kind="guard",
    ),
    # -- imports, files and configuration ---------------------------------------------------
    Rule(
        "module-not-found", "configuration", "high", types=("ModuleNotFoundError",),
        message=r"No module named '(?P<module>[^']+)'",
        cause=("{where} imports {module}, which is not installed where {service} runs: a "
               "dependency missing from the requirements or the image, or installed into "
               "another environment.",),
        fix=("Add the package that provides {module} to the project's dependencies and "
             "rebuild; if it is optional, import it inside try/except ImportError.",),
        fix_kind="dependency",
    ),
    Rule(
        "import-name", "configuration", "high", types=("ImportError",),
        message=r"cannot import name '(?P<name>[^']+)' from '(?P<module>[^']+)'",
        cause=("{where} imports {name} from {module}, which the installed {module} does not "
               "have: a version where it was renamed, moved or not yet added.",),
        fix=("Pin {module} to a version that has {name}, or import it from where it lives "
             "now.",),
        fix_kind="dependency",
    ),
    Rule(
        "import-error", "configuration", "high", types=("ImportError",),
        message=r"(?P<library>[\w.+-]+\.so[\w.]*): cannot open shared object file"
        r"|DLL load failed|(?P<other>.*)",
        cause=("{where} failed an import: the system library {library} is missing.",
               "{where} failed an import: {other}.", "{where} failed an import.",),
        fix=("Install the system package that provides {library} in the image.",
             "Install the missing package or library in {service}'s environment.",),
        fix_kind="dependency",
    ),
    Rule(
        "file-not-found", "configuration", "medium", types=("FileNotFoundError",),
        message=r"No such file or directory(?:: (?P<path>'.*'|\".*\"))?",
        lines=(r"\bopen\(\s*(?P<arg>[^,()]+(?:\([^()]*\))?)",),
        cause=("{where} opens {path} (`{line}`), which does not exist on this host: a missing "
               "file, a path relative to another working directory, or a volume not mounted.",
               "{where} opens {path}, which does not exist on this host: a missing file, a "
               "path relative to another working directory, or a volume not mounted.",
               "{where} uses a file or program that does not exist on this host.",),
        fix=("Build the path from configuration or from the package (Path(__file__).parent), "
             "not the working directory; make the deployment ship or mount {path}, and check "
             "it at startup.", "Check that the deployment ships the file, and the path.",),
        fix_kind="config",
        other_platforms=(
            Matcher(message=r"ENOENT: no such file or directory, \w+ (?P<path>'[^']*')"),  # Node
            Matcher(message=r"^(?:open|stat|lstat|mkdir|remove|chdir) (?P<path>\S+): no such "
                    r"file or directory"),  # Go
            Matcher(message=r"Could not find (?:file|a part of the path) (?P<path>'[^']*')"),
            Matcher(message=r"^(?P<path>\S+) \(No such file or directory\)"),  # Java
            Matcher(types=("java.nio.file.NoSuchFileException",), message=r"^(?P<path>\S+)$"),
            Matcher(message=r"No such file or directory @ \w+ - (?P<path>.+)$"),  # Ruby
            Matcher(message=r"\((?P<path>[^)]+)\): [Ff]ailed to open stream: No such file"),
            Matcher(message=r"\bENOENT\b|[Nn]o such file or directory"),
        ),
        other_fix=("Build the path from configuration or from where the application is "
                   "installed, not the working directory; make the deployment ship or mount "
                   "{path}, and check it at startup.",
                   "Check that the deployment ships the file, and the path.",),
    ),
    Rule(
        "permission-denied", "configuration", "high", types=("PermissionError",),
        message=r"Permission denied(?:: (?P<path>'.*'|\".*\"))?|Operation not permitted",
        cause=("{where} may not access {path}: the user {service} runs as lacks the "
               "permission (file mode, owner, a read-only mount).",
               "{where} was refused an operation by the operating system: the user {service} "
               "runs as lacks the permission.",),
        fix=("Give the service's user access to {path} (owner or mode in the image or "
             "volume), or write somewhere it owns.",
             "Give the service's user the permission, or use a path it owns.",),
        fix_kind="config",
        other_platforms=(
            Matcher(message=r"EACCES: permission denied, \w+ (?P<path>'[^']*')"),  # Node
            Matcher(message=r"^(?:open|mkdir|remove|chmod|stat) (?P<path>\S+): permission "
                    r"denied"),  # Go
            Matcher(message=r"Access to the path (?P<path>'[^']*') is denied"),  # .NET
            Matcher(message=r"Permission denied @ \w+ - (?P<path>.+)$"),  # Ruby
            Matcher(types=("java.nio.file.AccessDeniedException",), message=r"^(?P<path>\S+)$"),
            # Not a database's "permission denied for table": that is a grant, not a file.
            Matcher(message=r"\bEACCES\b|\bEPERM\b|[Pp]ermission denied(?! for )"),
        ),
    ),
    Rule(
        "is-a-directory", "configuration", "medium",
        types=("IsADirectoryError", "NotADirectoryError"),
        message=r"(?:Is a|Not a) directory(?:: (?P<path>'.*'|\".*\"))?",
        cause=("{where} opens {path} as a file, but it is a directory (or the other way "
               "round): an empty file name joined to a folder, or a setting naming the wrong "
               "thing.", "{where} opens a directory as a file, or a file as a directory.",),
        fix=("Check the setting or the name that builds the path, and reject an empty file "
             "name early.",),
        fix_kind="config",
    ),
    # -- the network ----------------------------------------------------------------------------
    Rule(
        "ssl-cert-verify", "configuration", "high",
        message=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed",
        cause=("{where} connected to {address} over TLS and its certificate did not verify "
               "({verify_error}): a self-signed, expired or wrongly named certificate, or a "
               "CA this host does not trust.",
               "{where}'s TLS connection failed certificate verification ({verify_error}): a "
               "self-signed, expired or wrongly named certificate, or a CA this host does not "
               "trust.",
               "{where}'s TLS connection failed certificate verification.",),
        fix=("Fix the server's certificate, or give the client the CA that signed it (a CA "
             "bundle setting, SSL_CERT_FILE); do not turn verification off.",),
        fix_kind="config",
        other_platforms=(
            Matcher(message=r"self[- ]signed certificate|unable to verify the first certificate"
                    r"|unable to get local issuer certificate|certificate has expired"
                    r"|CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT"
                    r"|ERR_TLS_CERT_ALTNAME_INVALID|PKIX path (?:building|validation) failed"
                    r"|x509: certificate|remote certificate is invalid|SSL certificate problem"),
        ),
    ),
    Rule(
        "ssl-plain-port", "configuration", "high",
        message=r"WRONG_VERSION_NUMBER|wrong version number|record layer failure",
        cause=("{where} spoke TLS to {address}, which answered in plain text: an https:// URL "
               "for an http:// service, or the wrong port.",
               "{where} spoke TLS to a server that answered in plain text: an https:// URL "
               "for an http:// service, or the wrong port.",),
        fix=("Use the scheme and port the service really serves (http:// vs https://).",),
        fix_kind="config",
        other_platforms=(
            Matcher(message=r"server gave HTTP response to HTTPS client"  # Go
                    r"|Unrecognized SSL message, plaintext connection"),  # Java
        ),
    ),
    Rule(
        "ssl-error", "configuration", "high", message=r"\[SSL: (?P<reason>[A-Z0-9_]+)\]",
        cause=("{where}'s TLS handshake failed ({reason}): the two sides share no protocol "
               "version or cipher, or a certificate or key is wrong.",
               "{where}'s TLS connection failed.",),
        fix=("Compare the TLS settings of client and server (versions, ciphers, certificates)"
             ".",),
        fix_kind="config",
    ),
    Rule(
        "dns-temporary", "dependency_outage_or_timeout", "high",
        message=r"Temporary failure in name resolution|\[Errno -3\]|EAI_AGAIN",
        cause=("{where} could not resolve {host} just now: the DNS resolver did not answer "
               "(a DNS outage or a network blip).",
               "{where} could not resolve a host name just now: the DNS resolver did not "
               "answer (a DNS outage or a network blip).",),
        fix=("Check the resolver's health; " + _RETRY + ".",),
        fix_kind="config",
        other_platforms=(Matcher(message=r"server misbehaving"),),  # Go's resolver
    ),
    Rule(
        "dns-unknown-host", "configuration", "high",
        message=r"Name or service not known|nodename nor servname|No address associated with"
        r"|getaddrinfo failed|\[Errno -[25]\]|\[Errno 1100[14]\]|EAI_NONAME|ENOTFOUND",
        lines=(r"getaddrinfo\(\s*(?P<host_code>[^,()]+)",
               r"(?P<host_code>['\"]\w+://[^'\"]+['\"])"),
        cause=("{where} could not resolve the host name {host}: there is no DNS record for it "
               "from here. The host setting is wrong (a typo, a name from another "
               "environment or network), or what it names is not deployed.",
               "{where} could not resolve the host name in {host_code} (`{line}`): there is "
               "no DNS record for it from here. The host setting is wrong (a typo, a name "
               "from another environment or network), or what it names is not deployed.",
               "{where} could not resolve a host name: there is no DNS record for it from "
               "here. The host setting is wrong, or what it names is not deployed.",),
        fix=("Check the host name configured for this environment; in containers, use the "
             "name the network defines. Retrying does not help until the name resolves.",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("java.net.UnknownHostException",)),
            Matcher(message=r"no such host|Could not resolve host|No such host is known"),
        ),
    ),
    Rule(
        "connection-refused", "dependency_outage_or_timeout", "high",
        message=r"[Cc]onnection refused|Connect call failed|ECONNREFUSED"
        r"|\[Errno (?:111|61|10061)\]",
        cause=("{where} could not connect to {address}: the connection was refused, so nothing "
               "listens there. The service is down or restarting, or the host or port "
               "setting points at the wrong place.",
               "{where} could not connect: the connection was refused, so nothing listens at "
               "the address it uses. The service is down or restarting, or the host or port "
               "setting points at the wrong place.",),
        fix=("Check that the service at {address} is up and listening on that port (on an "
             "interface reachable from here), and the host and port configured for this "
             "environment; " + _RETRY + ".",
             "Check that the service is up, and the configured host and port; " + _RETRY + ".",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("Errno.ECONNREFUSED",)),  # Ruby
            Matcher(message=r"actively refused it"),  # .NET on Windows
        ),
    ),
    Rule(
        "connection-reset", "dependency_outage_or_timeout", "medium",
        message=r"[Cc]onnection reset|[Bb]roken pipe|ECONNRESET|EPIPE|[Ss]erver disconnected"
        r"|[Cc]onnection aborted|\[Errno (?:104|32|54|10054)\]",
        cause=("{where}'s connection to {address} was closed by the other side mid-exchange: "
               "the peer restarted or crashed, or a proxy dropped an idle connection.",
               "{where}'s connection was closed by the other side mid-exchange (reset or "
               "broken pipe): the peer restarted or crashed, or a proxy dropped an idle "
               "connection.",),
        fix=("Retry idempotent requests once on a fresh connection; keep pooled connections' "
             "idle time below the peer's and proxies' idle timeouts; read the peer's logs.",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("Errno.ECONNRESET", "Errno.EPIPE")),  # Ruby
            Matcher(message=r"forcibly closed by the remote host|socket hang up"),  # .NET, Node
        ),
    ),
    Rule(
        "http-pool-timeout", "resource_exhaustion", "medium",
        types=("httpx.PoolTimeout", "urllib3.EmptyPoolError"),
        cause=("{where} waited for a free connection in its HTTP client's pool and none came "
               "free in time: responses left open (a stream not closed), slow requests "
               "holding every connection, or a pool too small for the concurrency.",),
        fix=("Close responses (`with client.stream(...)`), share one client, and size its "
             "connection limits to the concurrency; bound slow calls with timeouts.",),
        fix_kind="logic",
    ),
    Rule(
        "connect-timeout", "dependency_outage_or_timeout", "high",
        types=("httpx.ConnectTimeout", "requests.ConnectTimeout", "urllib3.ConnectTimeoutError",
               "aiohttp.ServerTimeoutError"),
        cause=("{where} timed out connecting to {address}: the host did not answer at all "
               "(down, overloaded, or a firewall dropping packets to that port).",
               "{where} timed out connecting: the host did not answer at all (down, "
               "overloaded, or a firewall dropping packets to that port).",),
        fix=("Check that the host is up and reachable from here; keep the connect timeout "
             "short and " + _RETRY + ".",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("Net.OpenTimeout", "Errno.ETIMEDOUT",
                           "org.apache.http.conn.ConnectTimeoutException",
                           "io.netty.channel.ConnectTimeoutException")),
            Matcher(message=r"\bconnect ETIMEDOUT\b|[Cc]onnect timed out|[Cc]onnection timed out"
                    r"|dial tcp \S+: i/o timeout|failed to connect to \S+ .*after \d+ ?ms"
                    r"|cURL error 28: (?:Connection|Resolving) timed out"
                    r"|Failed to open TCP connection .*\(execution expired\)"
                    r"|connected party did not properly respond"),
        ),
    ),
    Rule(
        "read-timeout", "dependency_outage_or_timeout", "medium",
        types=("httpx.ReadTimeout", "httpx.WriteTimeout", "httpx.TimeoutException",
               "requests.ReadTimeout", "requests.Timeout", "urllib3.ReadTimeoutError"),
        cause=("{where} gave up waiting for {url}: the request went out but the response took "
               "longer than the client's timeout (a slow or overloaded dependency).",
               "{where} gave up waiting for a response: the request went out but the answer "
               "took longer than the client's timeout (a slow or overloaded dependency).",),
        fix=("Find the slow side (the dependency's latency for this request); set the timeout "
             "from its real latency and " + _RETRY + ".",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("java.net.http.HttpTimeoutException", "Net.ReadTimeout",
                           "Net.WriteTimeout", "Faraday.TimeoutError")),
            Matcher(message=r"[Rr]ead timed out|\bESOCKETTIMEDOUT\b|\bread ETIMEDOUT\b"
                    r"|timeout of \d+ms exceeded|Client\.Timeout exceeded"
                    r"|(?:read|write) tcp \S+: i/o timeout|HttpClient\.Timeout"
                    r"|cURL error 28: Operation timed out|Timeout awaiting '\w+'"),
        ),
    ),
    Rule(
        "timeout", "dependency_outage_or_timeout", "medium",
        types=("TimeoutError", "asyncio.TimeoutError", "socket.timeout",
               "concurrent.futures.TimeoutError", "*Timeout", "*TimeoutError"),
        lines=(r"\bwait_for\(\s*(?P<awaited>.+?),\s*(?:timeout\s*=\s*)?(?P<timeout>[\w.]+)\s*\)",
               r"\.(?P<operation>recv|recv_into|read|readline|accept|connect|sendall|send|get"
               r"|result|wait|acquire|join)\(",),
        cause=("{where} gave up waiting for {awaited} (timeout={timeout}, `{line}`): it did not "
               "finish in time (a slow dependency, a lock or queue that never frees, or a "
               "timeout set too tight).",
               "{where} timed out in {operation}() (`{line}`): the other side did not answer "
               "in time.",
               "{where} timed out waiting: what it waited for did not finish in time (a slow "
               "dependency, a lock that never frees, or a timeout set too tight).",),
        fix=("Find what {awaited} waits on and why it is slow; set the timeout from its real "
             "latency and " + _RETRY + ".",
             "Find what the code waits on and why it is slow; " + _RETRY + ".",),
        fix_kind="config",
        other_platforms=(
            Matcher(types=("java.net.SocketTimeoutException",
                           "java.util.concurrent.TimeoutException", "System.TimeoutException",
                           "Timeout.Error", "context.deadlineExceededError")),
            Matcher(message=r"context deadline exceeded|\bETIMEDOUT\b"
                    r"|[Oo]peration (?:has )?timed out|execution expired"),
        ),
    ),
    # -- HTTP answers from dependencies: the status code decides --------------------------------
    Rule(
        "http-auth", "configuration", "high", types=_HTTP,
        message=r"(?:error '|Error |^)(?P<status>40[13])\b",
        cause=("{where} called {url} and was refused with HTTP {status}: the credentials "
               "{service} sends are missing, wrong, expired or lack the permission.",
               "{where} was refused with HTTP {status}: the credentials {service} sends are "
               "missing, wrong, expired or lack the permission.",),
        fix=("Check the credentials configured for this dependency in this environment "
             "(present, current, with the needed scope); refresh expiring ones before use.",),
        fix_kind="config",
        other_platforms=(Matcher(message=_status(r"40[13]")),),
    ),
    Rule(
        "http-rate-limited", "resource_exhaustion", "medium", types=_HTTP,
        message=r"(?:error '|Error |^)(?P<status>429)\b",
        cause=("{where} called {url} too often: HTTP 429, {service}'s rate limit there is used "
               "up.", "{where} was rate limited (HTTP 429).",),
        fix=("Honour Retry-After with backoff, throttle or batch the calls, cache answers, or "
             "ask for a higher quota.",),
        fix_kind="logic",
        other_platforms=(Matcher(message=_status(r"429")),),
    ),
    Rule(
        "http-not-found", "bad_input", "medium", types=_HTTP,
        message=r"(?:error '|Error |^)(?P<status>404|410)\b",
        cause=("{where} called {url} and got HTTP {status}: the resource is not there. The id "
               "in the URL does not exist (stale or bad input), or the base URL or path is "
               "wrong for this environment.",
               "{where} got HTTP {status}: the resource it asked for is not there.",),
        fix=("Treat a missing resource as a normal answer where it can be one; otherwise "
             "check the configured base URL and where the id came from.",),
        fix_kind="guard",
        other_platforms=(Matcher(message=_status(r"404|410")),),
    ),
    Rule(
        "http-server-error", "dependency_outage_or_timeout", "high", types=_HTTP,
        message=r"(?:error '|Error |^)(?P<status>5\d\d)\b",
        cause=("{where} called {url} and the dependency failed with HTTP {status}: the error "
               "is on its side (a crash, an outage, or a gateway timing out).",
               "{where} got HTTP {status} from a dependency: the error is on its side.",),
        fix=("Check the dependency's health and logs at that time; " + _RETRY + ", and degrade "
             "gracefully.",),
        fix_kind="config",
        other_platforms=(Matcher(message=_status(r"5\d\d")),),
    ),
    Rule(
        "http-client-error", "bad_input", "medium", types=_HTTP,
        message=r"(?:error '|Error |^)(?P<status>4\d\d)\b",
        cause=("{where} sent a request to {url} that was rejected with HTTP {status}: the "
               "dependency finds the request itself invalid.",
               "{where} sent a request rejected with HTTP {status}.",),
        fix=("Log the response body with the error to see what the dependency objects to, "
             "and validate the request before sending it.",),
        fix_kind="logic",
        other_platforms=(Matcher(message=_status(r"4\d\d")),),
    ),
    # -- databases ----------------------------------------------------------------------------
    Rule(
        "db-unique-violation", "logic_bug", "medium",
        types=("UniqueViolation", "UniqueViolationError", *_DB),
        message=r"(?i)duplicate key|unique constraint|Duplicate entry",
        cause=("{where} inserts a row that already exists ({conflict}, by {constraint}): the "
               "code creates without checking, or two requests (a retry, a double submit, a "
               "race) insert the same thing.",
               "{where} inserts a row that already exists by {constraint}: the code creates "
               "without checking, or two requests (a retry, a double submit, a race) insert "
               "the same thing.",
               "{where} inserts a row that already exists: the code creates without checking, "
               "or two requests insert the same thing.",),
        fix=("Make the write idempotent: INSERT ... ON CONFLICT (an upsert), or catch the "
             "unique violation and use the existing row; check-then-insert races.",),
        fix_kind="logic",
    ),
    Rule(
        "db-foreign-key", "logic_bug", "medium",
        types=("ForeignKeyViolation", "ForeignKeyViolationError", *_DB),
        message=r"(?i)foreign key constraint",
        cause=("{where} writes or deletes a row that breaks {constraint}: it points at a row "
               "that does not exist (or others still point at the one deleted).",
               "{where} writes or deletes a row that breaks a foreign key: it points at a row "
               "that does not exist (or others still point at the one deleted).",),
        fix=("Create parents before children (and delete children first, or cascade), and "
             "check ids that come from input.",),
        fix_kind="logic",
    ),
    Rule(
        "db-not-null", "null_reference", "medium",
        types=("NotNullViolation", "NotNullViolationError", *_DB),
        message=r"(?i)not[- ]null constraint|null value in column|cannot be null",
        cause=("{where} writes a row without a value for {column}, which the table requires: "
               "the value was None (missing from the input, or never set).",
               "{where} writes a row with None in a column that requires a value.",),
        fix=("Set {column} before writing (validate the input that should carry it), or give "
             "the column a default in a migration if one is right.",
             "Set the required value before writing, or give the column a default.",),
        fix_kind="guard",
    ),
    Rule(
        "db-integrity", "logic_bug", "medium",
        types=("IntegrityError", "CheckViolation", "CheckViolationError", "ExclusionViolation"),
        cause=("{where} wrote data that breaks a database constraint: {value}.",
               "{where} wrote data that breaks a database constraint.",),
        fix=("Validate the data against the constraint before writing it.",),
        fix_kind="logic",
    ),
    # -- the code's own assumptions ---------------------------------------------------------------
    Rule(
        "unbound-local", "logic_bug", "high", types=("UnboundLocalError",),
        message=r"local variable '(?P<name>[^']+)'",
        cause=("{where} reads {name} before anything was assigned to it (`{line}`): it is set "
               "only on some paths (an if without else, a loop that ran zero times, a failed "
               "try).", "{where} reads {name} before anything was assigned to it.",),
        fix=("Give {name} a value on every path before it is read (initialise it first).",),
        fix_kind="logic",
    ),
    Rule(
        "name-error", "logic_bug", "high", types=("NameError",),
        message=r"name '(?P<name>[^']+)' is not defined",
        cause=("{where} uses {name}, which is not defined there (`{line}`): a typo, a missing "
               "import, or a name defined only on some path.",
               "{where} uses {name}, which is not defined there.",),
        fix=("Define or import {name}; a linter (ruff's F821) catches this before it ships.",),
        fix_kind="import",
    ),
    Rule(
        "assertion", "logic_bug", "medium", types=("AssertionError",),
        lines=(r"^assert (?P<condition>.+?)(?:,\s*(?P<explanation>f?['\"].*))?$",),
        cause=("{where} asserts `{condition}`, which did not hold: {value}.",
               "{where} asserts `{condition}`, which did not hold: an assumption of the code "
               "is false for this input.",
               "{where} failed an assertion: an assumption of the code is false ({value}).",
               "{where} failed an assertion: an assumption of the code is false.",),
        fix=("Find which input breaks `{condition}`: validate it where it comes in, or fix "
             "the assumption. (Asserts vanish under python -O; do not rely on them for "
             "validation.)", "Find which input breaks the assumption, and validate it.",),
        fix_kind="logic",
    ),
    Rule(
        "not-implemented", "logic_bug", "medium", types=("NotImplementedError",),
        cause=("{where} is not implemented for the object it was called on (`{line}`): an "
               "abstract method a subclass does not override, or a case left unhandled.",
               "{where} reached code that is not implemented: an abstract method a subclass "
               "does not override, or a case left unhandled.",),
        fix=("Implement it in the subclass that is used here, or handle the case.",),
        fix_kind="logic",
    ),
    Rule(
        "interrupted", "unknown", "low", types=("KeyboardInterrupt", "SystemExit"),
        cause=("{where} was stopped: {type} means the process was asked to stop (Ctrl-C, a "
               "signal, sys.exit()), not that the code failed.",),
        fix=("Nothing to fix in the code: let {type} propagate instead of logging it as an "
             "error, or find out what stops the process.",),
    ),
)
# fmt: on


# -- health checks ---------------------------------------------------------------------------

#: Template fields a health rule can fill: the check's name (always), its kind, its target,
#: the probe's error and error kind, the failing condition and the value observed, the
#: failures in a row, and ``left``: a certificate's time left, read from the value observed.
HEALTH_FIELDS = frozenset(
    {
        "check",
        "check_kind",
        "target",
        "error",
        "error_kind",
        "condition",
        "observed",
        "failures",
        "left",
    }
)


@dataclass(frozen=True, slots=True)
class HealthRule:
    """One way a health check fails, and the cause, category, severity and fix it stands for.

    Matching, every part given required: ``error_kinds`` (the probe's ``error_kind`` is one
    of them), ``error`` (a regex searched, ignoring case, in the probe's error text),
    ``placeholders`` (a failing condition reads one of them: "STATUS" for "[STATUS] == 200"),
    ``observed`` (a regex matched at the start of that condition's observed value). The first
    rule of HEALTH_RULES that matches explains the check: rules on the probe's error come
    before rules on conditions, because a probe that could not finish fails its conditions too.

    Text: ``cause`` and ``fix`` are templates over HEALTH_FIELDS, most specific first; the
    first whose fields are all known is used, so the last may use only ``check``.
    """

    id: str
    category: Category
    severity: Severity
    cause: tuple[str, ...]
    fix: tuple[str, ...]
    error_kinds: tuple[str, ...] = ()
    error: str | None = None
    placeholders: tuple[str, ...] = ()
    observed: str | None = None
    fix_kind: FixKind | None = None


_DOWN: Category = "dependency_outage_or_timeout"

# fmt: off
HEALTH_RULES: tuple[HealthRule, ...] = (
    # -- heartbeats: a job that checks in --------------------------------------------------
    HealthRule(
        "heartbeat-missed", _DOWN, "high", error_kinds=("missed",),
        cause=("No check-in of {check} came by its deadline: the job did not run (its "
               "scheduler or host is down, or its schedule changed), died before checking in, "
               "or cannot reach mendline.",),
        fix=("Look at the job's scheduler (cron, a Kubernetes CronJob, a systemd timer) and "
             "its last run's logs, and that the job still checks in when it finishes.",),
    ),
    HealthRule(
        "heartbeat-failed", "unknown", "high", error_kinds=("failed",),
        cause=("The job of {check} ran and reported a failure: {error}.",
               "The job of {check} ran and reported a failure.",),
        fix=("Read the failed run's logs; the job's own message says what went wrong. Run it "
             "again once fixed: the check is up at its next successful check-in.",),
    ),
    HealthRule(
        "heartbeat-overran", "resource_exhaustion", "medium", error_kinds=("overran",),
        cause=("A run of {check} took longer than its max_runtime: it is stuck (a lock, a call "
               "that never returns) or its work grew beyond what it does in time.",),
        fix=("See what the run waits on (its logs, the database's locks, the calls it makes); "
             "put timeouts on its calls, split its work, or raise max_runtime if the growth "
             "is expected.",),
    ),
    # -- certificates ------------------------------------------------------------------------
    HealthRule(
        "certificate-expired", "configuration", "critical", error_kinds=("tls",),
        error=r"expired",
        cause=("The TLS certificate of {target} has expired: clients refuse the connection "
               "({error}).", "The TLS certificate {check} checks has expired.",),
        fix=("Renew the certificate and reload the server that serves it; then find why the "
             "renewal did not happen (an ACME client that fails, a cron job that stopped).",),
        fix_kind="config",
    ),
    HealthRule(
        "certificate-name-mismatch", "configuration", "high", error_kinds=("tls",),
        error=r"hostname|doesn't match|does not match|mismatch|ip address",
        cause=("The certificate {target} presents is not for that name ({error}): the wrong "
               "certificate is served (a default vhost, a load balancer listener) or the name "
               "is missing from its subjectAltName.",
               "The certificate {check} sees is not for the name it connects to.",),
        fix=("Serve a certificate whose subjectAltName lists the name (check the SNI "
             "configuration of the server or load balancer), or check the right name.",),
        fix_kind="config",
    ),
    HealthRule(
        "certificate-untrusted", "configuration", "high", error_kinds=("tls",),
        error=r"self.signed|local issuer|unknown ca|untrusted|verify failed|chain",
        cause=("The certificate of {target} cannot be verified ({error}): it is self-signed, "
               "or the server does not send its intermediate certificates.",
               "The certificate {check} sees cannot be verified.",),
        fix=("Serve the full chain (the certificate followed by its intermediates); for a "
             "private CA, give the check its ca_file.",),
        fix_kind="config",
    ),
    HealthRule(
        "tls-handshake", "configuration", "high", error_kinds=("tls",),
        cause=("The TLS handshake with {target} failed: {error}.",
               "The TLS handshake of {check} failed.",),
        fix=("Compare the server's TLS versions and ciphers with the client's (openssl s_client "
             "-connect host:port shows the handshake), and that TLS is served on that port.",),
        fix_kind="config",
    ),
    # -- the probe could not finish ------------------------------------------------------------
    HealthRule(
        "connection-refused", _DOWN, "critical", error_kinds=("refused",),
        cause=("Nothing listens on {target}: the connection was refused, so the process is "
               "down (crashed, stopped, not started again after a deploy) or listens on "
               "another port or address.",
               "Nothing listens where {check} connects: the process is down.",),
        fix=("Start the service again and read why it stopped (its logs, an OOM kill in the "
             "kernel log, its supervisor's restarts); check the port it listens on.",),
    ),
    HealthRule(
        "dns-not-resolved", "configuration", "high", error_kinds=("dns",),
        cause=("The name of {target} does not resolve ({error}): its record is missing or was "
               "deleted, the domain expired, or the resolver is down.",
               "The name {check} checks does not resolve.",),
        fix=("Query the record at its authoritative servers (dig +trace) to tell a missing "
             "record from a resolver outage; restore the record, or the resolver.",),
        fix_kind="config",
    ),
    HealthRule(
        "timeout", _DOWN, "high", error_kinds=("timeout",),
        cause=("{target} did not answer within the check's timeout: the service is overloaded "
               "or hung, or a firewall drops the packets.",
               "What {check} checks did not answer in time.",),
        fix=("See whether the service still takes connections and how busy it is (CPU, "
             "threads, its own dependencies); a firewall or security-group change drops "
             "packets silently.",),
    ),
    HealthRule(
        "unreachable", _DOWN, "high", error_kinds=("unreachable",),
        cause=("{target} cannot be reached ({error}): its host is down, or the network between "
               "mendline and it (a route, a VPN, a firewall) is.",
               "What {check} checks cannot be reached.",),
        fix=("Check that the host is up, then the route from mendline's host to it "
             "(traceroute, the firewall's recent changes).",),
    ),
    HealthRule(
        "credentials-refused", "configuration", "high", error_kinds=("auth",),
        cause=("{target} refused the check's credentials ({error}): a password or key was "
               "rotated, or the account lost its rights.",
               "The credentials of {check} were refused.",),
        fix=("Update the secret the check's environment variable holds, or the account's "
             "rights; the service's own clients may use the same credentials.",),
        fix_kind="config",
    ),
    HealthRule(
        "check-misconfigured", "configuration", "medium", error_kinds=("config",),
        cause=("{check} cannot run here: {error}.", "{check} cannot run here.",),
        fix=("Set what the check names (an environment variable) where `mendline monitor` "
             "runs.",),
        fix_kind="config",
    ),
    HealthRule(
        "query-failed", _DOWN, "high", error_kinds=("query",),
        cause=("The check's query on {target} failed: {error}.",
               "The query of {check} failed.",),
        fix=("Run the query by hand as the check's user: a failover in progress, a read-only "
             "replica, a missing table or a lost grant each say so in the error.",),
    ),
    HealthRule(
        "http-exchange-failed", "configuration", "medium", error_kinds=("http",),
        cause=("The HTTP exchange with {target} failed: {error}.",
               "The HTTP exchange of {check} failed.",),
        fix=("Request the URL by hand with a verbose HTTP client to see the protocol error "
             "or the redirects.",),
    ),
    # -- conditions that did not hold ------------------------------------------------------
    HealthRule(
        "http-bad-gateway", _DOWN, "high", placeholders=("STATUS",), observed=r"50[24]\b",
        cause=("{target} answers HTTP {observed}: the proxy or load balancer in front is up "
               "but cannot get an answer from the application behind it (down, restarting, "
               "or too slow).",),
        fix=("Look at the application behind the proxy (is it running, does it answer on "
             "its port, its logs) and the proxy's error log for the upstream it tried.",),
    ),
    HealthRule(
        "http-unavailable", _DOWN, "high", placeholders=("STATUS",), observed=r"503\b",
        cause=("{target} answers HTTP 503: it is up but says it cannot serve (overloaded, "
               "no healthy backend behind its load balancer, starting, or in maintenance).",),
        fix=("Check the health of the backends behind the load balancer and the service's "
             "load; a deploy or a maintenance mode may still be on.",),
    ),
    HealthRule(
        "http-server-error", "logic_bug", "high", placeholders=("STATUS",), observed=r"5\d\d\b",
        cause=("{target} answers HTTP {observed}: the service is up but fails on this request, "
               "an unhandled error in its code or in one of its dependencies.",),
        fix=("Read the service's errors for this endpoint (its mendline issues, its logs) "
             "from when the check started failing; a recent deploy is the first suspect.",),
    ),
    HealthRule(
        "http-auth-refused", "configuration", "medium", placeholders=("STATUS",),
        observed=r"40[13]\b",
        cause=("{target} answers HTTP {observed}: it refuses the check's request for want of "
               "credentials or rights (a rotated token, a new auth requirement).",),
        fix=("Give the check the header it needs (headers_env names the environment variable "
             "that holds the token), or exempt the health endpoint from authentication.",),
        fix_kind="config",
    ),
    HealthRule(
        "http-rate-limited", "resource_exhaustion", "medium", placeholders=("STATUS",),
        observed=r"429\b",
        cause=("{target} answers HTTP 429: it rate-limits the requests, the check's among "
               "them.",),
        fix=("Exempt the check from the rate limit or check less often; if real clients are "
             "limited too, the limit or the traffic has changed.",),
        fix_kind="config",
    ),
    HealthRule(
        "http-client-error", "configuration", "medium", placeholders=("STATUS",),
        observed=r"4\d\d\b",
        cause=("{target} answers HTTP {observed}: the request the check makes is no longer "
               "what the service serves (a path moved or removed by a deploy, a method or a "
               "body it now refuses).",),
        fix=("Request the URL by hand; fix the check's url, method or body, or restore the "
             "route the deploy removed.",),
        fix_kind="config",
    ),
    HealthRule(
        "http-unexpected-status", "configuration", "medium", placeholders=("STATUS",),
        cause=("{target} answers HTTP {observed}, not what `{condition}` expects: a redirect "
               "the check does not follow, or a changed endpoint.",
               "The status {check} got is not the one expected.",),
        fix=("Request the URL by hand and compare with the condition; follow redirects or "
             "check the final URL.",),
        fix_kind="config",
    ),
    HealthRule(
        "certificate-expiring", "configuration", "high",
        placeholders=("CERTIFICATE_EXPIRATION",),
        cause=("The TLS certificate of {target} expires in {left}: its renewal has not "
               "happened (`{condition}` does not hold).",
               "The TLS certificate of {target} expires soon (`{condition}`, observed "
               "{observed}): its renewal has not happened.",
               "The certificate {check} checks expires soon.",),
        fix=("Renew it now and find why the automatic renewal failed (the ACME client's logs, "
             "a DNS or HTTP challenge that no longer passes).",),
        fix_kind="config",
    ),
    HealthRule(
        "slow-response", "resource_exhaustion", "medium", placeholders=("RESPONSE_TIME",),
        cause=("{target} answers, but slowly: {observed} observed where `{condition}` is "
               "required. The service is overloaded or waits on a slow dependency (a "
               "database, another service).",
               "What {check} checks answers too slowly.",),
        fix=("See where the time goes (the timings: DNS, connect, TLS or the first byte, "
             "the server's own); a slow first byte is the application or what it waits on.",),
    ),
    HealthRule(
        "slow-query", "resource_exhaustion", "medium", placeholders=("QUERY_DURATION",),
        cause=("The query on {target} took {observed} where `{condition}` is required: the "
               "database is loaded, or waits on locks, or the query lost its index.",
               "The query of {check} is too slow.",),
        fix=("Look at pg_stat_activity for what runs and waits now (locks, long "
             "transactions), and EXPLAIN the query.",),
    ),
    HealthRule(
        "consumer-lag", "resource_exhaustion", "high", placeholders=("LAG",),
        cause=("The consumer group lags {observed} messages behind on {target} where "
               "`{condition}` is required: its consumers are down, too few for the traffic, or "
               "stuck on a message.",
               "The consumer group {check} watches lags behind.",),
        fix=("Check that the group's consumers run and commit (kafka-consumer-groups "
             "--describe shows who owns which partition), then add consumers or partitions "
             "if the traffic grew.",),
    ),
    HealthRule(
        "records-recent", "bad_input", "medium", placeholders=("RECENT",),
        cause=("{observed} records reached {target} in the check's window where "
               "`{condition}` is required. On a dead-letter topic: events or check-ins are "
               "being refused (not valid, too large, a schema they do not follow).",
               "Records reached the topic {check} watches.",),
        fix=("Read the newest records and their reason (`mendline dlq list`), fix the sender "
             "or the schema, then `mendline dlq redrive` what can be kept.",),
    ),
    HealthRule(
        "dns-answer", "configuration", "high", placeholders=("DNS_RCODE", "DNS_ANSWER"),
        cause=("The DNS answer for {target} is not the expected one: `{condition}` does not "
               "hold (observed {observed}). A record was changed or removed.",
               "The DNS answer {check} got is not the expected one.",),
        fix=("Compare the record with its zone (dig at the authoritative servers) and restore "
             "it, or update the check if the change was intended.",),
        fix_kind="config",
    ),
    HealthRule(
        "not-connected", _DOWN, "critical", placeholders=("CONNECTED",),
        cause=("The check could not connect to {target}: the service is down or "
               "unreachable.", "{check} could not connect.",),
        fix=("Start the service again and read why it stopped; check the port and the "
             "network path to it.",),
    ),
    HealthRule(
        "unexpected-body", "logic_bug", "medium", placeholders=("BODY", "HEADERS"),
        cause=("{target} answers, but not with what `{condition}` expects: an error or "
               "maintenance page from a proxy, or a changed response.",
               "The answer {check} got is not the expected one.",),
        fix=("Request the URL by hand and compare the answer with the condition.",),
    ),
    HealthRule(
        "unexpected-result", "logic_bug", "medium", placeholders=("ROWS", "RESULT"),
        cause=("The check's query on {target} returned what `{condition}` does not accept "
               "(observed {observed}): the data it watches is missing or stale.",
               "The query result {check} got is not the expected one.",),
        fix=("Run the query by hand and see what stopped writing the data it counts.",),
    ),
)
# fmt: on
