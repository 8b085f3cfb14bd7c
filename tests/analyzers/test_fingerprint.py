"""Grouping over real exceptions: which events share an issue, and which do not."""

from __future__ import annotations

import re
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping.fingerprint import (
    ALGORITHM_VERSION,
    DEFAULT_PLACEHOLDER,
    Grouping,
    culprit,
    fingerprint,
    parameterize,
    title,
)
from mendline.ingest import InApp

from . import grouping_samples as samples
from .event_helpers import event_of, load

SAMPLES = samples.__name__


def group(fn: Callable[..., object], *args: object, **options: Any) -> Grouping:
    """Call ``fn``, log what it raised, and group that event."""
    return fingerprint(event_of(samples.capture(fn, *args), **options))


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    yield
    sys.setrecursionlimit(limit)


# -- the result ------------------------------------------------------------------------------


def test_grouping_records_the_algorithm_version_and_a_32_hex_hash() -> None:
    grouping = group(samples.charge, 1, 9.5)
    assert grouping.version == ALGORITHM_VERSION == 1
    assert re.fullmatch(r"[0-9a-f]{32}", grouping.hash)
    assert grouping.basis == "stacktrace"


def test_a_fixed_event_keeps_its_hash() -> None:
    # Issues are found by this hash: if this fails, the change splits every existing issue.
    # Bump ALGORITHM_VERSION (and plan how the store maps old fingerprints) before updating it.
    event = {
        "service": "billing",
        "logger": "billing.worker",
        "message": "invoice failed",
        "exceptions": [
            {
                "type": "InvoiceError",
                "module": "billing.errors",
                "value": "invoice 7 failed",
                "frames": [
                    {
                        "filename": "/srv/billing/main.go",
                        "function": "main.run",
                        "lineno": 12,
                        "context_line": "if err := invoice(id); err != nil {",
                        "in_app": True,
                    },
                    {
                        "filename": "/srv/billing/invoice.go",
                        "module": "billing.invoice",
                        "function": "invoice",
                        "lineno": 40,
                        "in_app": True,
                    },
                ],
            }
        ],
    }
    grouping = fingerprint(event)
    assert grouping.components == (
        "type billing.errors.InvoiceError",
        "frame main.go:main.run | if err := invoice(id); err != nil {",
        "frame billing.invoice:invoice",
    )
    assert grouping.hash == "a65da78de6841868ebc65242ea66c701"


def test_stacktrace_components_read_type_then_module_function_and_source_line() -> None:
    grouping = group(samples.charge, 1, 9.5)
    assert grouping.components == (
        f"type {SAMPLES}.PaymentDeclined",
        f"frame {SAMPLES}:capture | fn(*args)",
        f"frame {SAMPLES}:charge"
        ' | raise PaymentDeclined(f"card declined for order {order_id}: amount {amount}")',
    )


# -- same bug, different circumstances: one issue ---------------------------------------------


def test_the_same_bug_with_different_data_is_one_issue() -> None:
    first = group(samples.charge, 1, 9.5)
    assert group(samples.charge, 2_000_017, 120.0) == first
    assert group(samples.parse_quantity, "three") == group(samples.parse_quantity, "")


def test_the_message_logged_with_an_exception_does_not_split_it() -> None:
    exc = samples.capture(samples.charge, 1, 9.5)
    plain = fingerprint(event_of(exc, message="charge failed", logger="checkout.payments"))
    assert fingerprint(event_of(exc, message="retry 3 of order 7 gave up", logger="x")) == plain


def test_release_environment_and_host_do_not_split_an_issue() -> None:
    exc = samples.capture(samples.charge, 1, 9.5)
    first = fingerprint(event_of(exc))
    other = event_of(exc, environment="staging", release="2.4.0", host="worker-17")
    assert fingerprint(other) == first


ORDERS_1_0 = '''"""Orders, as released in 1.0."""


class OrderError(Exception):
    pass


def place(order):
    if order["quantity"] <= 0:
        raise OrderError(f"quantity {order['quantity']} is not positive")
    return order
'''

# 1.1 moves every line down, and indents and spaces the raising line differently.
ORDERS_1_1 = '''"""Orders, as released in 1.1."""

import logging

log = logging.getLogger(__name__)


class OrderError(Exception):
    pass


def describe(order):
    return f"order {order['id']}"


def place(order):
    log.debug("placing %s", describe(order))
    if order["quantity"] > 0:
        return order
    else:
            raise  OrderError(f"quantity {order['quantity']} is not positive")
'''

# 1.2 changes the raising statement itself: that is a different bug, a new issue.
ORDERS_1_2 = ORDERS_1_0.replace('raise OrderError(f"quantity', 'raise OrderError(f"amount')


def place_order(tmp_path: Path, release: str, source: str, **options: Any) -> dict[str, Any]:
    """Deploy ``source`` at a release's own path and log the order error it raises."""
    module = load(tmp_path / "releases" / release / "shop" / "orders.py", "shop.orders", source)
    exc = samples.capture(module.place, {"id": 7, "quantity": -1})
    return event_of(exc, release=release, **options)


def test_a_deploy_that_moves_lines_and_paths_keeps_the_issue(tmp_path: Path) -> None:
    before = place_order(tmp_path, "1.0", ORDERS_1_0, environment="production", host="web-1")
    after = place_order(tmp_path, "1.1", ORDERS_1_1, environment="canary", host="web-9")
    raised_before, raised_after = (
        before["exceptions"][-1]["frames"][-1],
        after["exceptions"][-1]["frames"][-1],
    )
    # The deploy really changed what a naive grouping would use.
    assert raised_before["lineno"] != raised_after["lineno"]
    assert raised_before["filename"] != raised_after["filename"]
    assert raised_before["context_line"] != raised_after["context_line"]
    assert fingerprint(after) == fingerprint(before)
    assert fingerprint(after).components[-1] == (
        "frame shop.orders:place"
        " | raise OrderError(f\"quantity {order['quantity']} is not positive\")"
    )


def test_a_changed_raising_line_is_a_new_issue(tmp_path: Path) -> None:
    before = place_order(tmp_path, "1.0", ORDERS_1_0)
    changed = place_order(tmp_path, "1.2", ORDERS_1_2)
    assert fingerprint(changed).hash != fingerprint(before).hash


def test_frames_without_source_lines_group_by_module_and_function(tmp_path: Path) -> None:
    # Code compiled from a string has no source file: the builder sends no context_line.
    source = "def check(rule):\n    raise LookupError('no rule ' + rule)\n"
    groupings = []
    for blank_lines in (0, 7):
        module = types.ModuleType("rules.generated")
        exec(compile("\n" * blank_lines + source, "<rules>", "exec"), module.__dict__)
        event = event_of(samples.capture(module.check, str(blank_lines)))
        assert event["exceptions"][-1]["frames"][-1]["context_line"] is None
        groupings.append(fingerprint(event))
    assert groupings[0] == groupings[1]
    assert groupings[0].components[-1] == "frame rules.generated:check"


def js_event(build: str, line: str) -> dict[str, Any]:
    """An event from a JavaScript producer: no modules, paths that change with every build."""
    return {
        "service": "web",
        "message": "unhandled rejection",
        "exceptions": [
            {
                "type": "TypeError",
                "value": "Cannot read properties of undefined (reading 'id')",
                "frames": [
                    {
                        "filename": f"/srv/web/builds/{build}/static/js/main.{build}.js",
                        "function": "renderOrder",
                        "lineno": 1,
                        "context_line": line,
                        "in_app": True,
                    }
                ],
            }
        ],
    }


def test_frames_without_a_module_group_by_file_name_not_path() -> None:
    line = "const id = order.customer.id;"
    first = fingerprint(js_event("4f2a9c1e", line))
    assert fingerprint(js_event("b71d03e5", line)) == first
    assert first.components[-1] == "frame main.<hex>.js:renderOrder | const id = order.customer.id;"
    assert fingerprint(js_event("b71d03e5", "const id = order.id;")).hash != first.hash


def test_minified_source_lines_are_left_out() -> None:
    # Lines over 120 characters are minified or generated code that changes with each build.
    first = fingerprint(js_event("4f2a9c1e", "var a=" + "x(1)," * 40 + "e.id;"))
    second = fingerprint(js_event("b71d03e5", "var b=" + "y(2)," * 40 + "t.id;"))
    assert second == first
    assert first.components[-1] == "frame main.<hex>.js:renderOrder"


@pytest.mark.parametrize("depth", [11, 37, 500, 501])
def test_recursion_depth_does_not_split_an_issue(deep_recursion: None, depth: int) -> None:
    # Self-recursion (a->a), through a comprehension (a-><listcomp>->a) and a parser's
    # three-function cycle (expression->term->factor->expression).
    assert group(samples.root_of, samples.chain_of(depth)) == group(
        samples.root_of, samples.chain_of(10)
    )
    deep = event_of(samples.capture(samples.flatten, samples.nested(depth, "x")))
    assert fingerprint(deep) == group(samples.flatten, samples.nested(10, "y"))
    assert group(samples.parse, "(" * depth + "x") == group(samples.parse, "(" * 10 + "y")
    if depth >= 500:
        assert deep["exceptions"][-1]["frames_omitted"] > 0


def test_recursion_collapses_to_one_round_of_the_cycle() -> None:
    components = group(samples.root_of, samples.chain_of(30)).components
    assert components == (
        "type builtins.KeyError",
        f"frame {SAMPLES}:capture | fn(*args)",
        f"frame {SAMPLES}:root_of | return root_of(parent)",
        f'frame {SAMPLES}:root_of | parent = node["parent"]',
    )


def test_retries_chained_while_handling_count_once() -> None:
    assert group(samples.fetch_with_retries, 5) == group(samples.fetch_with_retries, 2)


def test_a_lambda_keeps_a_stable_name() -> None:
    grouping = group(samples.sort_by_price, [{"price": 3}, {"sku": "A-1"}])
    assert grouping == group(samples.sort_by_price, [{"sku": "B-2"}])
    assert f"frame {SAMPLES}:sort_by_price.<locals>.<lambda>" in grouping.components[-1]


GENERATED = '''"""Generated: the same source under a different generated name each time."""


class RenderError(Exception):
    pass


def render(context):
    raise RenderError("missing variable " + context)
'''


def generated_name(scheme: str, tmp_path: Path) -> str:
    """A module name as code generators and temp files make them, new on every call."""
    address = 0x7F0000000000 | (uuid.uuid4().int & 0xFFFFFFFFF0)  # like id() on 64-bit Linux
    if scheme == "tempfile":
        return Path(tempfile.mkstemp(suffix=".py", dir=tmp_path)[1]).stem
    if scheme == "jinja":
        return f"_jinja2_module_templates_{address:x}"
    if scheme == "uuid":
        return f"templates.render_{uuid.uuid4().hex}"
    if scheme == "address":
        return f"<template at 0x{address:x}>"
    return f"templates.compiled_{time.time_ns()}"


@pytest.mark.parametrize("scheme", ["tempfile", "jinja", "uuid", "address", "timestamp"])
def test_generated_module_names_do_not_split_an_issue(tmp_path: Path, scheme: str) -> None:
    groupings = []
    names = []
    for n in range(2):
        name = generated_name(scheme, tmp_path)
        names.append(name)
        module = load(tmp_path / f"gen{n}" / "template.py", name, GENERATED)
        groupings.append(group(module.render, f"user{n}"))
    assert names[0] != names[1]
    assert groupings[0] == groupings[1]
    assert not any(names[0] in part for part in groupings[0].components)


def test_the_same_code_in_two_modules_is_two_issues(tmp_path: Path) -> None:
    orders = load(tmp_path / "a" / "orders.py", "shop.orders", GENERATED)
    payments = load(tmp_path / "b" / "payments.py", "shop.payments", GENERATED)
    assert group(orders.render, "x").hash != group(payments.render, "x").hash


def test_library_frames_do_not_count_when_the_chain_has_in_app_frames() -> None:
    # json raises these from different functions of its own; the app's call site is the same.
    bad_start = group(samples.load_settings, "{bad")
    extra_data = group(samples.load_settings, "{} trailing")
    assert bad_start == extra_data
    assert not any(part.startswith("frame json.") for part in bad_start.components)


# -- different bugs: different issues ---------------------------------------------------------


def test_different_call_sites_of_the_same_library_function_are_different_issues() -> None:
    assert group(samples.load_settings, "{bad").hash != group(samples.load_profile, "{bad").hash
    assert group(samples.parse_quantity, "x").hash != group(samples.parse_age, "x").hash
    # The same function, the same exception type, only the source line tells them apart.
    first = group(samples.load_pair, "{bad", "{}")
    second = group(samples.load_pair, "{}", "{bad")
    assert first.hash != second.hash


def test_different_lambdas_are_different_issues() -> None:
    by_price = group(samples.sort_by_price, [{"sku": "A-1"}])
    assert group(samples.sort_by_name, [{"sku": "A-1"}]).hash != by_price.hash


def test_a_different_cause_type_is_a_different_issue() -> None:
    missing = group(samples.read_setting, {}, "timeout")
    assert group(samples.read_setting, {}, "retries") == missing
    not_a_number = group(samples.read_setting, {"timeout": "soon"}, "timeout")
    assert not_a_number.hash != missing.hash
    assert missing.components[0] == "type builtins.KeyError"
    assert not_a_number.components[0] == "type builtins.ValueError"


def test_the_value_of_a_cause_without_frames_does_not_split_an_issue() -> None:
    assert group(samples.reject_order, "sold out") == group(samples.reject_order, "no stock")


def test_only_library_frames_group_by_the_library_frames() -> None:
    nothing_in_app = InApp(exclude=["tests"])
    bad_start = group(samples.load_settings, "{bad", in_app=nothing_in_app)
    assert any(part.startswith("frame json.") for part in bad_start.components)
    assert group(samples.load_settings, "{wrong", in_app=nothing_in_app) == bad_start
    extra_data = group(samples.load_settings, "{} trailing", in_app=nothing_in_app)
    assert extra_data.hash != bad_start.hash
    assert bad_start.basis == extra_data.basis == "stacktrace"


def test_the_same_event_in_two_services_is_two_issues() -> None:
    exc = samples.capture(samples.charge, 1, 9.5)
    checkout = fingerprint(event_of(exc, service="checkout"))
    billing = fingerprint(event_of(exc, service="billing"))
    assert billing.hash != checkout.hash
    assert billing.components == checkout.components


# -- no stack trace: the message ---------------------------------------------------------------


def log_message(message: str, logger: str | None = "checkout.payments", **options: Any) -> Grouping:
    return fingerprint(event_of(None, message=message, logger=logger, **options))


def test_messages_differing_only_in_variable_parts_are_one_issue() -> None:
    first = log_message(
        "payment 42 of 9.99 for order 6f1c9a8b-3e2d-4f5a-9b8c-7d6e5f4a3b2c from 10.0.0.1"
        " (fe80::1) by ann@example.com failed: 'card expired' at 2024-05-01T12:34:56Z"
        " in session 507f1f77bcf86cd799439011 at 0x7f3a12bc4d50"
    )
    second = log_message(
        "payment 7 of 120.50 for order 0a2b4c6d-8e0f-4a1b-8c3d-5e6f7a8b9c0d from 192.168.1.20"
        " (2001:db8::8a2e:370:7334) by bob.smith+shop@mail.example.org failed:"
        ' "insufficient funds" at 2025-01-31 08:00:00.5+01:00'
        " in session 64b7c2e1f0a9d8c7b6a5f4e3 at 0x55d3a2b1c4e0"
    )
    assert first.basis == "message"
    assert second == first
    assert first.components == (
        "logger checkout.payments",
        "message payment <int> of <float> for order <uuid> from <ip> (<ip>) by <email> failed:"
        " <str> at <datetime> in session <hex> at <hex>",
    )


def test_messages_with_different_words_or_loggers_are_different_issues() -> None:
    failed = log_message("payment 42 failed")
    assert log_message("payment 42 refunded").hash != failed.hash
    assert log_message("payment 42 failed", logger="checkout.refunds").hash != failed.hash
    assert log_message("payment 7 failed", logger=None).hash != failed.hash


def test_exceptions_without_frames_group_by_type_and_parameterised_value() -> None:
    # Never raised, so no traceback: as a non-Python producer without frames would send them.
    bad_42 = fingerprint(event_of(ValueError("quantity 42 is invalid"), message="import"))
    bad_7 = fingerprint(event_of(ValueError("quantity 7 is invalid"), message="import"))
    assert bad_42.basis == "message"
    assert bad_7 == bad_42
    assert fingerprint(event_of(KeyError("quantity 7 is invalid"), message="import")) != bad_42
    assert fingerprint(event_of(ValueError("price 7 is invalid"), message="import")) != bad_42
    assert bad_42.components[-2:] == (
        "type builtins.ValueError",
        "value quantity <int> is invalid",
    )


def test_a_plain_event_from_another_language_groups_by_its_message() -> None:
    event = {"service": "api", "message": "upstream 502 from 10.1.2.3 after 3012ms"}
    grouping = fingerprint(event)
    assert grouping.components == ("message upstream <int> from <ip> after <int>ms",)
    assert fingerprint({**event, "message": "upstream 504 from 10.1.2.9 after 15ms"}) == grouping


# -- custom fingerprints -----------------------------------------------------------------------


def test_a_custom_fingerprint_overrides_the_grouping() -> None:
    charge = group(samples.charge, 1, 9.5, custom=["payments-down"])
    parse = group(samples.parse_quantity, "x", custom=["payments-down"])
    assert charge == parse
    assert charge.basis == "custom"
    assert charge.components == ("custom payments-down",)
    assert group(samples.charge, 1, 9.5, custom=["payments-slow"]).hash != charge.hash
    assert group(samples.charge, 1, 9.5, custom=["payments-down"], service="b").hash != (
        charge.hash
    )


def test_the_default_placeholder_expands_to_the_default_grouping() -> None:
    default = group(samples.charge, 1, 9.5)
    tenant_7 = group(samples.charge, 1, 9.5, custom=[DEFAULT_PLACEHOLDER, "tenant-7"])
    assert tenant_7.basis == "custom"
    assert tenant_7.components == (*default.components, "custom tenant-7")
    assert group(samples.charge, 2, 3.0, custom=["{{default}}", "tenant-7"]) == tenant_7
    assert group(samples.charge, 1, 9.5, custom=[DEFAULT_PLACEHOLDER, "tenant-8"]) != tenant_7
    other_bug = group(samples.parse_quantity, "x", custom=[DEFAULT_PLACEHOLDER, "tenant-7"])
    assert other_bug.hash != tenant_7.hash


def test_only_the_default_placeholder_is_the_default_grouping() -> None:
    assert group(samples.charge, 1, 9.5, custom=[DEFAULT_PLACEHOLDER]) == group(
        samples.charge, 1, 9.5
    )
    assert log_message("quota 5 exceeded", custom=["{{ default }}"]) == log_message(
        "quota 9 exceeded"
    )


# -- parameterize, title, culprit --------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("user 42 at 10.0.0.1", "user <int> at <ip>"),
        ("id 6f1c9a8b-3e2d-4f5a-9b8c-7d6e5f4a3b2c", "id <uuid>"),
        ("took 1.5s, then 42ms, -3 left", "took <float>s, then <int>ms, <int> left"),
        ("order_123 and job-77", "order_<int> and job-<int>"),
        ("sha256 utf8 v1.2.3 int64", "sha256 utf8 v1.2.3 int64"),
        ("commit 3f2a9c1e7b4d, object at 0x7f3a12bc", "commit <hex>, object at <hex>"),
        ("deadbeef is a word", "deadbeef is a word"),
        ("to [::1]:8080 and fe80::1ff:fe23:4567:890a", "to [<ip>]:<int> and <ip>"),
        ("db at 10.0.0.7:5432.", "db at <ip>:<int>."),
        ("mail ann.lee+x@example.co.uk now", "mail <email> now"),
        ("on 2024-05-01, at 2024-05-01T12:34:56.789+02:00", "on <date>, at <datetime>"),
        ("daily at 12:00:00", "daily at <time>"),
        ("""key 'user 7' and "a b" but don't""", "key <str> and <str> but don't"),
        ("KeyError: 'price'", "KeyError: <str>"),
        ("std::vector and a:b:c", "std::vector and a:b:c"),
        ("nothing variable here", "nothing variable here"),
        ("42 failed, +3 and x-5", "<int> failed, <int> and x-<int>"),
        ("0 and 07 and 0x1F", "<int> and <int> and <hex>"),
        ("at 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", "at <ip> up"),
        ("F47AC10B-58CC-4372-A567-0E02B2C3D479", "<uuid>"),
        ("1.5e3 and 2e10 and ip 1.2.3.4.5", "<float> and <float> and ip <float>"),
    ],
)
def test_parameterize(message: str, expected: str) -> None:
    assert parameterize(message) == expected
    assert parameterize(expected) == expected


# Each 800,000 characters long: parameterize() reads them in linear time (milliseconds), where
# a quadratic pattern would not finish before the suite's timeout.
HOSTILE = 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 8000 * HOSTILE, "a" * 8000 * HOSTILE),
        ("'a " * 2700 * HOSTILE, "'a " * 2700 * HOSTILE),  # no quote is ever closed
        ("1." * 4000 * HOSTILE, "<float>."),
        ("a:" * 4000 * HOSTILE, "a:" * 4000 * HOSTILE),
        ("x@" * 4000 * HOSTILE, "x@" * 4000 * HOSTILE),  # no email: no dot after the @
    ],
    ids=["letters", "unclosed-quotes", "dotted-digits", "colons", "at-signs"],
)
def test_parameterize_reads_hostile_input_in_linear_time(text: str, expected: str) -> None:
    assert parameterize(text) == expected


def test_title_is_the_raised_exception_or_the_parameterised_message() -> None:
    assert title(event_of(samples.capture(samples.charge, 1, 9.5))) == (
        "PaymentDeclined: card declined for order 1: amount 9.5"
    )
    chained = event_of(samples.capture(samples.read_setting, {}, "timeout"))
    assert title(chained) == "ConfigError: setting 'timeout' is missing or not a number"
    long = title(event_of(samples.capture(samples.charge, "A\n" * 500, 1.0)))
    assert long.startswith("PaymentDeclined: card declined for order A A A")
    assert len(long.removeprefix("PaymentDeclined: ")) == 200
    assert long.endswith("A A...")
    assert title(event_of(None, message="payment 42 failed")) == "payment <int> failed"


def test_culprit_is_the_innermost_in_app_frame() -> None:
    assert culprit(event_of(samples.capture(samples.charge, 1, 9.5))) == f"{SAMPLES}.charge"
    assert culprit(event_of(samples.capture(samples.load_settings, "{"))) == (
        f"{SAMPLES}.load_settings"
    )
    lambda_event = event_of(samples.capture(samples.sort_by_price, [{}]))
    assert culprit(lambda_event) == f"{SAMPLES}.sort_by_price.<locals>.<lambda>"
    assert culprit(event_of(None)) is None
    assert culprit(event_of(ValueError("never raised"))) is None


def test_culprit_falls_back_to_the_chain_then_to_any_frame() -> None:
    event = event_of(samples.capture(samples.read_setting, {}, "timeout"))
    for frame in event["exceptions"][-1]["frames"]:
        frame["in_app"] = False
    assert culprit(event) == f"{SAMPLES}.read_setting"  # from the cause, KeyError
    library_only = event_of(
        samples.capture(samples.load_settings, "{"), in_app=InApp(exclude=["tests"])
    )
    assert culprit(library_only) == "json.decoder.JSONDecoder.raw_decode"
    go = {
        "service": "api",
        "message": "panic",
        "exceptions": [
            {
                "type": "panic",
                "value": "nil map",
                "frames": [{"filename": "/src/api/main.go", "function": "main", "in_app": True}],
            }
        ],
    }
    assert culprit(go) == "/src/api/main.go in main"
