"""Python events as fixed wire dicts, for the test that grouping per platform left Python's
alone: mendline's own emitters' shapes and the Sentry Python SDK's, each a path of the grouping
(module or file name, long and generated names, library frames, recursion, chains, messages,
custom fingerprints, exception groups)."""

from __future__ import annotations

from typing import Any


def frame(
    function: str,
    module: str | None,
    line: str | None,
    *,
    filename: str = "/srv/app/orders.py",
    in_app: bool = True,
    **more: Any,
) -> dict[str, Any]:
    """A frame as the emitter writes it (``more``: lineno, abs_path, colno, package...)."""
    out: dict[str, Any] = {"filename": filename, "function": function, "in_app": in_app}
    if module is not None:
        out["module"] = module
    if line is not None:
        out["context_line"] = line
    return out | more


def event(
    *exceptions: dict[str, Any], message: str = "order failed", **fields: Any
) -> dict[str, Any]:
    """An event of service "checkout" holding ``exceptions`` (root cause first)."""
    out: dict[str, Any] = {
        "service": "checkout",
        "logger": "shop.orders",
        "message": message,
        "exceptions": list(exceptions),
    }
    return out | fields


CHAIN = event(
    {
        "type": "ZeroDivisionError",
        "module": "builtins",
        "value": "division by zero",
        "frames": [
            frame("inner", "__main__", "    return 1 / x", filename="pyapp.py", lineno=7),
        ],
    },
    {
        "type": "ValueError",
        "module": "builtins",
        "value": "wrapped failure for order 42",
        "frames": [
            frame("handle", "shop.views", "total = orders.place(request.json)", lineno=31),
            frame("place", "shop.orders", "raise ValueError(f'wrapped failure for {oid}')"),
            frame("loads", "json", "return _default_decoder.decode(s)", in_app=False),
        ],
    },
)

NO_MODULE = event(
    {
        "type": "RenderError",
        "module": "_jinja2_module_templates_7f3a1b2c4d50",
        "value": "missing variable 'user'",
        "frames": [
            frame("render", None, "return template.render(**context)",
                  filename="C:\\srv\\app\\Views.py"),
            frame("<lambda>", None, "x = [" + "item, " * 30 + "]", filename="/tmp/tmpab12cd34.py"),
            frame("root", "_jinja2_module_templates_7f3a1b2c4d50", None),
        ],
    }
)  # fmt: skip

LIBRARY_ONLY = event(
    {
        "type": "JSONDecodeError",
        "module": "json.decoder",
        "value": "Expecting value: line 1 column 1 (char 0)",
        "frames": [
            frame("loads", "json", "return _default_decoder.decode(s)", in_app=False),
            frame("decode", "json.decoder", "obj, end = self.raw_decode(s, idx=_w(s, 0).end())",
                  in_app=False),
            frame("raw_decode", "json.decoder", "raise JSONDecodeError(\"Expecting value\", s, "
                  "err.value) from None", in_app=False),
        ],
    }
)  # fmt: skip

RECURSION = event(
    {
        "type": "RecursionError",
        "module": "builtins",
        "value": "maximum recursion depth exceeded",
        "frames": [
            frame("walk", "shop.tree", "return walk(node['parent'])"),
            frame("walk", "shop.tree", "return walk(node['parent'])"),
            frame("expression", "shop.parse", "return term(tokens)"),
            frame("term", "shop.parse", "return factor(tokens)"),
            frame("factor", "shop.parse", "return expression(tokens)"),
            frame("expression", "shop.parse", "return term(tokens)"),
            frame("term", "shop.parse", "return factor(tokens)"),
            frame("factor", "shop.parse", "return expression(tokens)"),
        ],
        "frames_omitted": 900,
    }
)

MESSAGE = event(
    message="payment 42 of 9.99 for 6f1c9a8b-3e2d-4f5a-9b8c-7d6e5f4a3b2c from 10.0.0.1 failed",
    logger="shop.payments",
)
MESSAGE["exceptions"] = []

FRAMELESS = event(
    {"type": "ValueError", "module": "builtins", "value": "quantity 42 is invalid", "frames": []},
    message="import failed",
)

CUSTOM = CHAIN | {"fingerprint": ["{{ default }}", "tenant-7"]}
CUSTOM_ONLY = CHAIN | {"fingerprint": ["payments-down"]}

GROUP = event(
    {
        "type": "KeyError",
        "module": "builtins",
        "value": "'sku-1'",
        "frames": [frame("fail", "shop.tasks", "raise KeyError(f'sku-{n}')")],
        "exception_id": 1,
        "parent_id": 0,
        "source": "exceptions[0]",
    },
    {
        "type": "ValueError",
        "module": "builtins",
        "value": "bad amount",
        "frames": [frame("charge", "shop.tasks", "raise ValueError('bad amount')")],
        "exception_id": 2,
        "parent_id": 0,
        "source": "exceptions[1]",
    },
    {
        "type": "ExceptionGroup",
        "module": "builtins",
        "value": "unhandled errors in a TaskGroup (2 sub-exceptions)",
        "frames": [frame("run", "shop.tasks", "async with asyncio.TaskGroup() as group:")],
        "exception_id": 0,
        "is_exception_group": True,
    },
)

# The fields v1 gained for other SDKs, on a Python event: they take no part in its grouping.
NEW_FIELDS = event(
    {
        "type": "ZeroDivisionError",
        "module": "builtins",
        "value": "division by zero",
        "frames": [
            frame("inner", "__main__", "    return 1 / x", filename="pyapp.py", lineno=7,
                  abs_path="/tmp/cap/app/pyapp.py", colno=12, package="app-1.0.whl"),
        ],
    }
)  # fmt: skip

#: Name -> event, each as its own emitter (mendline's) sends it: without a platform.
EVENTS: dict[str, dict[str, Any]] = {
    "chain": CHAIN,
    "no-module": NO_MODULE,
    "library-only": LIBRARY_ONLY,
    "recursion": RECURSION,
    "message": MESSAGE,
    "frameless": FRAMELESS,
    "custom": CUSTOM,
    "custom-only": CUSTOM_ONLY,
    "group": GROUP,
    "new-fields": NEW_FIELDS,
}
