"""The built-in rules about exception handlers: a bare ``except:`` (MR105) and ``except
Exception: pass`` (MR106)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR105: bare-except and MR106: silenced-exception --------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    pass
            """,
            [("MR105", 4)],
            id="bare-pass",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    log.exception("reload failed")
                    return None
            """,
            [("MR105", 4)],
            id="bare-logged",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    # keep serving the old copy
                    return None
            """,
            [("MR105", 4)],
            id="bare-with-a-comment-below-the-except-line",
        ),
        pytest.param(
            """
            try:
                import ujson as json
            except:
                import json
            """,
            [("MR105", 3)],
            id="bare-at-module-level",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception:
                    pass
            """,
            [("MR106", 4)],
            id="exception-pass",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception as exc:
                    pass
            """,
            [("MR106", 4)],
            id="exception-as-pass",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except BaseException:
                    ...
            """,
            [("MR106", 4)],
            id="baseexception-ellipsis",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except (ValueError, Exception):
                    pass
            """,
            [("MR106", 4)],
            id="tuple-with-exception",
        ),
        pytest.param(
            """
            import builtins

            def refresh():
                try:
                    reload()
                except builtins.Exception:
                    pass
            """,
            [("MR106", 6)],
            id="qualified-exception",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception:
                    "nothing to do"
            """,
            [("MR106", 4)],
            id="only-a-string",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except* Exception:
                    pass
            """,
            [("MR106", 4)],
            id="except-star",
        ),
    ],
)
def test_a_handler_that_swallows_everything_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    rollback()
                    raise
            """,
            id="bare-reraises",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    raise RefreshError("reload failed")
            """,
            id="bare-raises-another",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:
                    if fatal():
                        raise
                    log.warning("reload failed")
            """,
            id="bare-reraises-sometimes",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except:  # noqa: E722 - a broken cache file of any kind means a rebuild
                    rebuild()
            """,
            id="bare-with-a-comment-saying-why",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception:
                    log.exception("reload failed")
            """,
            id="exception-logged",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception:  # best effort: metrics must never fail a request
                    pass
            """,
            id="exception-with-a-comment-on-its-line",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except Exception:
                    pass  # best effort: metrics must never fail a request
            """,
            id="exception-with-a-comment-on-its-pass",
        ),
        pytest.param(
            """
            def refresh():
                try:
                    reload()
                except ValueError:
                    pass
            """,
            id="specific-exception",
        ),
        pytest.param(
            """
            try:
                import ujson as json
            except ImportError:
                import json
            """,
            id="import-fallback",
        ),
        pytest.param(
            """
            def refresh_all(caches):
                for cache in caches:
                    try:
                        cache.reload()
                    except Exception:
                        continue
            """,
            id="exception-continue",
        ),
    ],
)
def test_a_handler_that_reraises_says_why_or_catches_what_it_expects_is_not_flagged(
    code: str,
) -> None:
    assert found(code) == []
