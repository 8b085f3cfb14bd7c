"""How a PostgreSQL failure is read, and translated into the error tree at this boundary: bad
data (keep it aside) or an outage (wait it out)."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg

from mendline.schemas.errors import DatabaseError, DatabaseUnavailable, RejectedData
from mendline.schemas.redaction import redact_url

__all__ = ["is_bad_data", "is_outage", "translate", "translated", "translating"]

_Store = TypeVar("_Store", bound=type)

# SQLSTATE classes that blame the data: data exception, integrity constraint violation,
# program limit exceeded. Any other database error (connection, read-only standby,
# privileges, a schema from another release...) is the database's, and is waited out.
_DATA_ERRORS = {"22", "23", "54"}
# What the driver raises about the database: its errors, an unreachable server, a timeout;
# and its protocol losing its state when the server went away mid-query ("cannot switch to
# state 15"), which a new connection cures.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def is_bad_data(exc: BaseException) -> bool:
    """True when PostgreSQL rejected the data itself, not the connection or the schema: a
    driver error or its translation, RejectedData."""
    if isinstance(exc, DatabaseError):
        return isinstance(exc, RejectedData)
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _DATA_ERRORS


def is_outage(exc: BaseException) -> bool:
    """True for database failures that waiting can cure: the server, its connection, a
    timeout, a read-only standby, missing privileges (a driver error, or its translation
    DatabaseUnavailable); False when it rejected the data."""
    if isinstance(exc, DatabaseError):
        return exc.retriable
    return isinstance(exc, _DRIVER_ERRORS) and not is_bad_data(exc)


def translate(exc: BaseException) -> DatabaseError | None:
    """The error-tree equivalent of a driver error; None for anything else (a bug of ours,
    a cancellation), which is left as it is."""
    if isinstance(exc, DatabaseError):
        return exc
    if is_bad_data(exc):
        assert isinstance(exc, asyncpg.PostgresError)
        return RejectedData(str(exc), sqlstate=exc.sqlstate or "")
    if is_outage(exc):
        # The driver's class says most (ConnectionRefusedError, a TimeoutError with no text);
        # its text may quote the URL it was given, which is logged: its password filtered.
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DatabaseUnavailable(redact_url(detail))
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Inside the block, driver errors come out as DatabaseUnavailable or RejectedData, with
    the driver's error as ``__cause__``; other exceptions pass unchanged."""
    try:
        yield
    except DatabaseError:
        raise
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc


def translating(cls: _Store) -> _Store:
    """A store class whose public coroutine methods raise the error tree, not the driver's
    errors (``translated()`` around each): its callers never import asyncpg."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(method):
            continue
        if not inspect.iscoroutinefunction(method):  # it would pass driver errors unchanged
            raise TypeError(f"{cls.__name__}.{name}: a translating store's methods are async")
        setattr(cls, name, _translating(method))
    return cls


def _translating(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with translated():
            return await method(*args, **kwargs)

    return call
