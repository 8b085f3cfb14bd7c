"""The review rules about calls: parsing external input with nothing to catch its errors
(MR101), HTTP calls that can wait forever (MR107) and blocking calls in coroutines (MR113);
SQL built from strings (MR108) is ``_rules_sql``'s.

On timeouts: ``requests`` and ``urllib.request.urlopen`` have none by default, so a call
without one is flagged. ``httpx`` has one (5 s) and is flagged only where ``timeout=None``
turns it off. aiohttp's default lets a request run for 5 minutes: a ``ClientSession()``
without ``timeout=`` is flagged when the function is seen making a request through it that
passes none either (a session kept for later is not judged). A call with ``**kwargs`` may
carry a timeout and is never flagged."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from mendline.analyzers.review._inputs import (
    ENV,
    ENVIRON,
    PARSED,
    RESPONSE,
    ROUTE,
    path_key,
    qualname,
)
from mendline.analyzers.review._rules_facts import CLIENTS
from mendline.analyzers.review._rules_scope import Hit, Scope, Site, Source, catches, is_none
from mendline.analyzers.review._rules_sql import sql_hit

__all__ = ["check_calls"]

# Parser -> (the exception bad text raises, what the text must be).
_PARSES = {
    "int": ("ValueError", "a whole number"),
    "float": ("ValueError", "a number"),
    "decimal.Decimal": ("InvalidOperation", "a number"),
    "Decimal": ("InvalidOperation", "a number"),
    "json.loads": ("JSONDecodeError", "JSON"),
    "datetime.datetime.strptime": ("ValueError", "a date in that format"),
    "datetime.strptime": ("ValueError", "a date in that format"),
    "time.strptime": ("ValueError", "a date in that format"),
    "datetime.datetime.fromisoformat": ("ValueError", "an ISO 8601 date"),
    "datetime.date.fromisoformat": ("ValueError", "an ISO 8601 date"),
}
_SHOWN = {
    "InvalidOperation": "decimal.InvalidOperation",
    "JSONDecodeError": "json.JSONDecodeError",
    "ValueError": "ValueError",
}
_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")
_REQUESTS = frozenset(f"requests.{verb}" for verb in _VERBS)
_HTTPX = frozenset(
    {*(f"httpx.{verb}" for verb in _VERBS), "httpx.stream", "httpx.Client", "httpx.AsyncClient"}
)
_BLOCKING = {
    "time.sleep": "`await asyncio.sleep(...)`",
    "urllib.request.urlopen": "an async HTTP client (httpx.AsyncClient, aiohttp)",
    "subprocess.run": "`await asyncio.create_subprocess_exec(...)`",
    "subprocess.call": "`await asyncio.create_subprocess_exec(...)`",
    "subprocess.check_call": "`await asyncio.create_subprocess_exec(...)`",
    "subprocess.check_output": "`await asyncio.create_subprocess_exec(...)`",
    "os.system": "`await asyncio.create_subprocess_shell(...)`",
    "socket.create_connection": "`await asyncio.open_connection(...)`",
    **{name: "an async HTTP client (httpx.AsyncClient, aiohttp)" for name in _REQUESTS},
}


def check_calls(scope: Scope, source: Source) -> Iterator[Hit]:
    """The call rules' hits among ``scope``'s changed calls."""
    for site in scope.calls:
        call = site.node
        assert isinstance(call, ast.Call)
        name = qualname(call.func, source.aliases)
        for check in (_parse, _timeout, sql_hit, _blocking):
            hit = check(call, name, site, scope, source)
            if hit is not None:
                yield hit


def _parse(
    call: ast.Call, name: str | None, site: Site, scope: Scope, source: Source
) -> Hit | None:
    spec = _PARSES.get(name or "")
    if spec is None or not call.args or scope.checked_all:
        return None
    arg = call.args[0]
    origin = _origin_before(arg, call, scope)
    if origin in (None, PARSED, RESPONSE) or (origin in (ENV, ENVIRON) and not scope.is_handler):
        return None  # settings read at startup fail there, loudly: that is fine
    if _digits_only(arg, scope):
        return None  # the route's pattern lets only digits in
    exception, wanted = spec
    if catches(site.caught | source.handled, exception) or path_key(arg) in scope.validated:
        return None
    if scope.checked_from(arg):
        return None  # checked with a schema where it came in
    shown, text = _SHOWN[exception], source.text(arg, 48)
    return Hit(
        "MR101",
        call,
        f"`{source.text(call)}` raises {shown} when `{text}` is not {wanted}, and nothing "
        "here catches it.",
        f"Check `{text}` where it comes in (a schema or a form library), or catch {shown} "
        "around this call and answer with a clear error (a 400 in a request handler).",
    )


def _digits_only(arg: ast.expr, scope: Scope) -> bool:
    """True for a path parameter (``request.match_info["id"]``, or a name only ever
    assigned one) whose route lets only digits in: ``{id:\\d+}``, ``{id:int}``."""
    items = (scope.values(arg.id) or []) if isinstance(arg, ast.Name) else [arg]
    return bool(items) and all(
        isinstance(item, ast.Subscript)
        and isinstance(item.slice, ast.Constant)
        and item.slice.value in scope.numeric_keys
        and scope.inputs.origin(item.value) == ROUTE
        for item in items
    )


def _origin_before(arg: ast.expr, call: ast.Call, scope: Scope) -> str | None:
    """The origin of ``arg`` as ``call`` reads it: in ``text = json.loads(text)`` the
    argument is what ``text`` was before, not the call's own result."""
    if not isinstance(arg, ast.Name):
        return scope.inputs.origin(arg)
    bindings = scope.bindings.get(arg.id, [])
    if not any(value is call for _, value in bindings):
        return scope.inputs.origin(arg)
    others = [b for b in bindings if b[1] is not call]
    found = [scope.inputs.bound(b) for b in others]
    return found[0] if found and all(found) and arg.id not in scope.params else None


def _timeout(
    call: ast.Call, name: str | None, site: Site, scope: Scope, source: Source
) -> Hit | None:
    keywords = {k.arg: k.value for k in call.keywords}
    if None in keywords:
        return None  # **kwargs may carry the timeout
    timeout = keywords.get("timeout")
    off = is_none(timeout)
    library = _library(call, name, scope, source)
    text = source.text(call)
    if library == "requests" and (timeout is None or off):
        return Hit(
            "MR107",
            call,
            f"`{text}` has no timeout: requests waits forever for a server that takes the "
            "connection and never answers, and this call hangs with it.",
            "Pass a timeout: `timeout=10`, or `timeout=(3.05, 27)` for connect and read.",
        )
    if library == "httpx" and off:
        return Hit(
            "MR107",
            call,
            f"`{text}` turns httpx's 5 s default timeout off (`timeout=None`): a server that "
            "never answers holds this call forever.",
            "Give a finite timeout: `timeout=httpx.Timeout(10.0, connect=3.0)`.",
        )
    untimed = _untimed_request(scope) if name == "aiohttp.ClientSession" else None
    if untimed is not None and timeout is None:
        return Hit(
            "MR107",
            call,
            f"`{text}` sets no timeout, and `{source.text(untimed, 48)}` (line "
            f"{untimed.lineno}) passes none either: aiohttp's default lets it run for up to "
            "5 minutes.",
            "Pass `timeout=aiohttp.ClientTimeout(total=10)` to the session (or a timeout to "
            "each request).",
        )
    if name == "urllib.request.urlopen" and timeout is None and len(call.args) < 3:
        return Hit(
            "MR107",
            call,
            f"`{text}` has no timeout: it waits as long as the socket default allows, which "
            "is forever unless something set one.",
            "Pass `timeout=10`.",
        )
    return None


def _library(call: ast.Call, name: str | None, scope: Scope, source: Source) -> str | None:
    """Whose HTTP call ``call`` is: ``requests`` or ``httpx`` (a module function, a client's
    construction or a request through a client made in the function)."""
    if name in _REQUESTS:
        return "requests"
    if name in _HTTPX:
        return "httpx"
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in (*_VERBS, "stream"):
        return None
    receiver = func.value
    if isinstance(receiver, ast.Name):
        return scope.clients.get(receiver.id)
    if isinstance(receiver, ast.Call):
        return CLIENTS.get(qualname(receiver.func, source.aliases) or "")
    return None


def _untimed_request(scope: Scope) -> ast.Call | None:
    """The first request the function makes through one of its aiohttp sessions without a
    timeout (None when every one has one, or there is none to see)."""
    for name, call in sorted(scope.client_calls, key=lambda pair: pair[1].lineno):
        if scope.clients.get(name) != "aiohttp" or not isinstance(call.func, ast.Attribute):
            continue
        if call.func.attr in (*_VERBS, "ws_connect") and not any(
            k.arg in ("timeout", None) for k in call.keywords
        ):
            return call
    return None


def _blocking(
    call: ast.Call, name: str | None, site: Site, scope: Scope, source: Source
) -> Hit | None:
    if not scope.is_async or site.sync:
        return None
    instead = _BLOCKING.get(name or "")
    if instead is None and _library(call, name, scope, source) == "requests":
        instead = _BLOCKING["requests.get"]
    if instead is None:
        return None
    first = call.args[0] if call.args else None
    if name == "time.sleep" and isinstance(first, ast.Constant) and first.value == 0:
        return None  # a bare yield of the thread, over at once
    return Hit(
        "MR113",
        call,
        f"`{source.text(call)}` blocks the event loop in `async def {scope.name}`: every "
        "other task and request of this process waits until it returns.",
        f"Use {instead}, or run it in a thread: `await asyncio.to_thread(...)`.",
    )
