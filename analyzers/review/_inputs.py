"""What the review rules count as external input, and how they follow it through a function.

A value is external when it comes from outside the program, so that its shape is not the
code's to decide. Each external expression has an *origin*, which says what it is:

- ``json``: parsed JSON, whose keys and types the sender decides: ``json.loads(...)``,
  ``request.json``, ``request.get_json()``, ``await request.json()``, a ``.json()`` call of an
  HTTP client's response, and Django REST framework's ``request.data``.
- ``form``: a request's query, form, header or cookie mapping whose missing key raises a
  plain ``KeyError`` (a 500): Django's ``request.GET``/``POST``, Starlette's
  ``request.query_params``, aiohttp's ``request.query`` and ``await request.post()``...
- ``werkzeug``: the same mappings of Flask's (and Quart's) global ``request``: werkzeug's
  ``MultiDict`` raises ``BadRequestKeyError``, which Flask answers with a 400, so a missing
  key there is already handled.
- ``route``: path parameters (``request.match_info``, ``request.path_params``), whose keys
  the route itself defines.
- ``argv``: ``sys.argv``; ``environ``: ``os.environ``; ``env``: a value read from it
  (``os.getenv``).
- ``text``: a string from outside: an item of the above, ``input()``, a request's or
  response's body as text.
- ``response``: an HTTP client's response (``requests.get(...)``, ``client.get(...)`` of a
  client made in the function).
- ``parsed``: a number or date parsed from external text: derived from input, but no longer
  text that a parser can fail on.

A request object is any name ``request`` or ``req`` and any attribute ``.request``
(``self.request`` of a class-based view). Names inherit the origin of what they are assigned
within the same function, flow-insensitively (an assignment counts wherever it is), through
subscripts, ``.get()``, methods, iteration and unpacking: ``data = request.json; q =
data["q"]`` makes ``q`` external. A name that is also assigned something not external
(``data = schema.load(data)``) is taken as validated, and is not external: the rules would
rather miss a case than flag correct code.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ARGV",
    "ENV",
    "ENVIRON",
    "FORM",
    "JSON",
    "PARSED",
    "PARSERS",
    "RESPONSE",
    "ROUTE",
    "TEXT",
    "WERKZEUG",
    "Binding",
    "Inputs",
    "is_request",
    "path_key",
    "qualname",
]

JSON = "json"
FORM = "form"
WERKZEUG = "werkzeug"
ROUTE = "route"
ARGV = "argv"
ENVIRON = "environ"
ENV = "env"
TEXT = "text"
RESPONSE = "response"
PARSED = "parsed"

#: A name's binding: (True when the name gets an element of the value, as a loop target or
#: in unpacking; the value).
Binding = tuple[bool, ast.expr]

# What an item (subscript, ``.get()``, iteration) of a value of each origin is.
_ITEM = {
    JSON: JSON,
    FORM: TEXT,
    WERKZEUG: TEXT,
    ROUTE: TEXT,
    ARGV: TEXT,
    ENVIRON: ENV,
    ENV: ENV,
    TEXT: TEXT,
}
# What a slice of a value of each origin is.
_SLICE = {JSON: JSON, ARGV: ARGV, TEXT: TEXT, ENV: ENV}
_FLASK_REQUESTS = frozenset({"flask.request", "quart.request"})
# Attributes of a request object, by framework family.
_MULTIDICTS = frozenset({"args", "form", "values", "files", "headers", "cookies"})
_FORM_ATTRS = frozenset({"query_params", "GET", "POST", "FILES", "COOKIES", "query", "META"})
_ROUTE_ATTRS = frozenset({"match_info", "path_params", "view_args"})
_REQUEST_METHODS = {
    "get_json": JSON,
    "json": JSON,
    "media": JSON,
    "post": FORM,
    "form": FORM,
    "body": TEXT,
    "text": TEXT,
    "read": TEXT,
    "get_data": TEXT,
}
_JSON_LOADS = frozenset(
    {"json.loads", "json.load", "orjson.loads", "ujson.loads", "simplejson.loads"}
)
PARSERS = frozenset(
    {
        "int",
        "float",
        "decimal.Decimal",
        "Decimal",
        "datetime.datetime.strptime",
        "datetime.strptime",
        "time.strptime",
        "datetime.datetime.fromisoformat",
        "datetime.date.fromisoformat",
        "datetime.fromisoformat",
        "date.fromisoformat",
    }
)
_HTTP_VERBS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "send", "stream"}
)
_HTTP_MODULES = frozenset({"requests", "httpx"})
_MAPPING_METHODS = frozenset({"get", "pop", "setdefault", "getlist", "getone", "getall"})
_VIEWS = frozenset({"keys", "values", "items", "copy", "to_dict", "dict"})
_RESPONSE_METHODS = {"json": JSON, "read": TEXT, "text": TEXT}
_RESPONSE_ATTRS = {"text": TEXT, "content": TEXT, "headers": FORM, "cookies": FORM}


def qualname(expr: ast.expr, aliases: Mapping[str, str]) -> str | None:
    """The dotted name ``expr`` stands for, its first part resolved through the module's
    imports (``dt.datetime.now`` -> ``datetime.datetime.now``); None for what is not a
    dotted name."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(aliases.get(expr.id, expr.id))
    return ".".join(reversed(parts))


def is_request(expr: ast.expr) -> bool:
    """True for a request object: a name ``request``/``req``, or ``<x>.request``."""
    if isinstance(expr, ast.Name):
        return expr.id in ("request", "req")
    return isinstance(expr, ast.Attribute) and expr.attr == "request"


def path_key(expr: ast.expr) -> str | None:
    """A short text that identifies a simple expression (a name, attributes, subscripts and
    calls with constant arguments: ``data.get('q')``); None for anything else. Two
    occurrences of the same path in a function are taken as the same value."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = path_key(expr.value)
        return None if base is None else f"{base}.{expr.attr}"
    if isinstance(expr, ast.Subscript):
        base = path_key(expr.value)
        index = expr.slice
        if base is None:
            return None
        if isinstance(index, ast.Constant):
            return f"{base}[{index.value!r}]"
        inner = path_key(index)
        return None if inner is None else f"{base}[{inner}]"
    if isinstance(expr, ast.Call):
        base = path_key(expr.func)
        if base is None or expr.keywords:
            return None
        args = []
        for arg in expr.args:
            text = repr(arg.value) if isinstance(arg, ast.Constant) else path_key(arg)
            if text is None:
                return None
            args.append(text)
        return f"{base}({', '.join(args)})"
    if isinstance(expr, ast.Await):
        return path_key(expr.value)
    return None


@dataclass
class Inputs:
    """The external values of one function: ``aliases`` are the module's imports,
    ``local`` the names the function binds or takes (which hide a global ``request``),
    ``clients`` the names bound to an HTTP client made in it; ``names`` the origin of each
    external name once ``taint`` has run."""

    aliases: Mapping[str, str]
    local: frozenset[str] = frozenset()
    clients: Mapping[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def taint(self, bindings: Mapping[str, list[Binding]]) -> None:
        """Find the external names among ``bindings`` (each name's values)."""
        names = self.names
        grew = True
        while grew:
            grew = False
            for name, values in bindings.items():
                if name in names:
                    continue
                found = [o for o in (self.bound(b) for b in values) if o is not None]
                if found:
                    names[name] = next((o for o in found if o != PARSED), found[0])
                    grew = True
        shrank = True
        while shrank:
            shrank = False
            for name in list(names):
                if any(self.bound(b) is None for b in bindings.get(name, ())):
                    del names[name]
                    shrank = True

    def bound(self, binding: Binding) -> str | None:
        """The origin of what ``binding`` gives its name."""
        element, value = binding
        found = self.origin(value)
        return _ITEM.get(found) if element and found is not None else found

    def origin(self, expr: ast.expr) -> str | None:
        """What external input ``expr`` is (one of this module's origins), or None."""
        if isinstance(expr, ast.Name):
            return self.names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr)
        if isinstance(expr, ast.Subscript):
            base = self.origin(expr.value)
            if base is None:
                return None
            return (_SLICE if isinstance(expr.slice, ast.Slice) else _ITEM).get(base)
        if isinstance(expr, ast.Call):
            return self._call(expr)
        if isinstance(expr, ast.Await | ast.NamedExpr):
            return self.origin(expr.value)
        if isinstance(expr, ast.BoolOp):
            return next((o for o in map(self.origin, expr.values) if o is not None), None)
        if isinstance(expr, ast.IfExp):
            return self.origin(expr.body) or self.origin(expr.orelse)
        return None

    def is_flask(self, expr: ast.expr) -> bool:
        """True when ``expr`` is Flask's (or Quart's) global request."""
        if isinstance(expr, ast.Name) and expr.id in self.local:
            return False
        return qualname(expr, self.aliases) in _FLASK_REQUESTS

    def _attribute(self, expr: ast.Attribute) -> str | None:
        attr = expr.attr
        if is_request(expr.value):
            flask = self.is_flask(expr.value)
            if attr in _MULTIDICTS:
                return WERKZEUG if flask else FORM
            if attr in _FORM_ATTRS:
                return FORM
            if attr == "json":
                return JSON
            if attr == "data":
                return TEXT if flask else JSON
            if attr == "body":
                return TEXT
            return ROUTE if attr in _ROUTE_ATTRS else None
        name = qualname(expr, self.aliases)
        if name == "sys.argv":
            return ARGV
        if name == "os.environ":
            return ENVIRON
        if self.origin(expr.value) == RESPONSE:
            return _RESPONSE_ATTRS.get(attr)
        return None

    def _call(self, expr: ast.Call) -> str | None:
        func = expr.func
        name = qualname(func, self.aliases)
        if name is not None:
            found = self._named_call(name, expr)
            if found is not None or not isinstance(func, ast.Attribute):
                return found
        if not isinstance(func, ast.Attribute):
            return None
        receiver, attr = func.value, func.attr
        if is_request(receiver) and attr in _REQUEST_METHODS:
            return _REQUEST_METHODS[attr]
        if attr == "json" and not expr.args:
            return JSON  # an HTTP response's body
        base = self.origin(receiver)
        if base is None:
            client = isinstance(receiver, ast.Name) and receiver.id in self.clients
            return RESPONSE if client and attr in _HTTP_VERBS else None
        if base == RESPONSE:
            return _RESPONSE_METHODS.get(attr)
        if attr in _MAPPING_METHODS:
            return _ITEM.get(base)
        if attr in _VIEWS:
            return base
        return TEXT if base in (TEXT, ENV, JSON) else None

    def _named_call(self, name: str, expr: ast.Call) -> str | None:
        if name in _JSON_LOADS:
            return JSON
        if name == "input":
            return TEXT
        if name in ("os.getenv", "os.environ.get"):
            return ENV
        if name in PARSERS:
            return PARSED if any(self.origin(a) for a in expr.args) else None
        if name == "str" and expr.args:
            return TEXT if self.origin(expr.args[0]) else None
        module, _, verb = name.rpartition(".")
        if (module in _HTTP_MODULES and verb in _HTTP_VERBS) or name == "urllib.request.urlopen":
            return RESPONSE
        return None
