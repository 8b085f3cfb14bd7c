"""What the commands say to do when something fails: the shared hints, and a way to give
errors one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mendline.schemas.errors import MendlineError

__all__ = [
    "DATABASE_HINT",
    "DATABASE_URL_HINT",
    "DEBUG_HINT",
    "FINDINGS_HINT",
    "ISSUES_HINT",
    "KAFKA_HINT",
    "MIGRATE_HINT",
    "connect_failure",
    "hint_on",
    "or_doctor",
]

DEBUG_HINT = "run again with --debug for the traceback"
#: What to do when Kafka cannot be reached (other commands than doctor add ``or_doctor``).
KAFKA_HINT = (
    "is the broker running? Check MENDLINE_KAFKA_BOOTSTRAP (host:port of the brokers,"
    " comma-separated) and, with TLS or SASL, MENDLINE_KAFKA_SECURITY_PROTOCOL and its"
    " credentials"
)
#: What to do when PostgreSQL cannot be reached (other commands than doctor add ``or_doctor``).
DATABASE_HINT = "is PostgreSQL running there? Check the host and port in MENDLINE_DATABASE_URL"
#: What to do when PostgreSQL refuses the login: a wrong password, a role it does not have.
_LOGIN_HINT = "check the user and password in MENDLINE_DATABASE_URL"
#: What to do when the URL names a database the server does not have.
_NO_DATABASE_HINT = "create the database (createdb NAME), or fix its name in MENDLINE_DATABASE_URL"
#: What to do when the URL is not one, or the connection failed otherwise.
DATABASE_URL_HINT = "check MENDLINE_DATABASE_URL (postgresql://user:password@host:5432/database)"
#: What to do when the database lacks mendline's tables, or some of its migrations.
MIGRATE_HINT = "run `mendline migrate` (`mendline consume` also applies them when it starts)"
#: Where to find an issue's id, for an error that names one that is not there.
ISSUES_HINT = "`mendline issues list --status all` shows the issues and their ids"
#: Where to find a finding's id, for an error that names one that is not there.
FINDINGS_HINT = "`mendline findings list` shows the findings and their ids"


def connect_failure(exc: BaseException, where: str) -> tuple[str, str]:
    """What a connection to PostgreSQL at ``where`` (its URL, the password filtered) that
    failed with ``exc`` says, and what to do, by the error's SQLSTATE: class 28 (invalid
    authorization: a wrong password, a role that does not exist, pg_hba.conf) and 3D000 (no
    such database) are answers of a running server; an OSError is no answer."""
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if sqlstate.startswith("28"):
        return f"PostgreSQL at {where} refused the login: {exc}", _LOGIN_HINT
    if sqlstate == "3D000":
        return f"PostgreSQL at {where}: {exc}", _NO_DATABASE_HINT
    if isinstance(exc, OSError):
        return f"cannot reach PostgreSQL at {where}: {exc}", DATABASE_HINT
    problem = f"{type(exc).__name__}: {exc}"
    return f"cannot connect to PostgreSQL at {where}: {problem}", DATABASE_URL_HINT


def or_doctor(hint: str) -> str:
    """``hint``, then where to check every setting: for the commands other than doctor."""
    return f"{hint}; or run `mendline doctor`"


@contextmanager
def hint_on(kind: type[MendlineError], hint: str) -> Iterator[None]:
    """Give errors of ``kind`` raised inside this block ``hint``, unless they have one."""
    try:
        yield
    except kind as exc:
        if exc.hint is None:
            exc.hint = hint
        raise
