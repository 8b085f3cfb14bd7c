"""Python events keep their grouping: the hashes, titles and culprits they had before grouping
learned other platforms, whether they come without a platform (mendline's emitters) or with
platform "python" (Sentry's Python SDK)."""

from __future__ import annotations

from typing import Any

import pytest

from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title

from .python_events import EVENTS

# Computed with the grouping as it was before other platforms (commit 53ef72f). Issues are
# found by these hashes: a change here splits every existing Python issue.
GOLDEN: dict[str, tuple[str, str, str, str | None]] = {
    # name: (hash, basis, title, culprit)
    "chain": ("2bc45e86d9bf73900ddf89629fa9a57d", "stacktrace",
              "ValueError: wrapped failure for order 42", "shop.orders.place"),
    "no-module": ("7669dfa9d9690b28a86a305af409dcd5", "stacktrace",
                  "RenderError: missing variable 'user'",
                  "_jinja2_module_templates_7f3a1b2c4d50.root"),
    "library-only": ("ba7f90abd63763a26b5c6ec1fc03842f", "stacktrace",
                     "JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
                     "json.decoder.raw_decode"),
    "recursion": ("2e9cf54a81e3da9fdf7abb5ec8849986", "stacktrace",
                  "RecursionError: maximum recursion depth exceeded", "shop.parse.factor"),
    "message": ("10d42d3d38129ff49cc94cd933618b6c", "message",
                "payment <int> of <float> for <uuid> from <ip> failed", None),
    "frameless": ("3f6839553223bb2c343a9138c108a0f2", "message",
                  "ValueError: quantity 42 is invalid", None),
    "custom": ("2717b613400e9f526f8a534d545829e8", "custom",
               "ValueError: wrapped failure for order 42", "shop.orders.place"),
    "custom-only": ("b6adcfc057647cd549fe8f2af4db2a34", "custom",
                    "ValueError: wrapped failure for order 42", "shop.orders.place"),
    "group": ("aa05146963fc30b4c4c255fbf3b5b898", "stacktrace",
              "ExceptionGroup of KeyError, ValueError: unhandled errors in a TaskGroup "
              "(2 sub-exceptions)", "shop.tasks.run"),
    "new-fields": ("c3ec97c21e0ee1afdbfe280cce76f459", "stacktrace",
                   "ZeroDivisionError: division by zero", "__main__.inner"),
}  # fmt: skip


def test_the_table_covers_every_python_event() -> None:
    assert GOLDEN.keys() == EVENTS.keys()


@pytest.mark.parametrize("platform", [None, "python"])
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_python_event_groups_titles_and_blames_as_before(name: str, platform: str | None) -> None:
    event: dict[str, Any] = EVENTS[name]
    if platform is not None:
        event = event | {"platform": platform}
    grouping = fingerprint(event)
    assert (grouping.hash, grouping.basis, title(event), culprit(event)) == GOLDEN[name]
    assert grouping.version == 1
