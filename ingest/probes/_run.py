"""What every probe shares: the values it has seen so far, a failure it explains in a
sentence, and the translation of socket errors into an ErrorKind."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from mendline.schemas.checks import ErrorKind, ObservedValue
from mendline.schemas.redaction import FILTERED

__all__ = ["ProbeFailed", "Seen", "env_value", "hide", "network_failure", "since_ms"]


class ProbeFailed(Exception):
    """The probe could not complete: ``kind`` classifies it, the message says why to people."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


@dataclass
class Seen:
    """The values and timings a probe observed, kept whatever happens after."""

    values: dict[str, ObservedValue] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def since_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - started) * 1000.0


def env_value(environ: Mapping[str, str], name: str, purpose: str) -> str:
    """The value of the environment variable ``name``; unset is a "config" failure that names
    the variable (and what it is for), never a value."""
    value = environ.get(name)
    if value is None:
        raise ProbeFailed("config", f"the environment variable {name} ({purpose}) is not set")
    return value


def hide(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``[Filtered]`` (longest first; values
    under 4 characters are not looked for, as they would filter ordinary words)."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, FILTERED)
    return text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups among them."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def network_failure(exc: BaseException, target: str) -> ProbeFailed:
    """The failure that a network error (or one a client library raised from it) means, for
    the target ``target`` ("host:port"); its message is the cause, not the library's words."""
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            reason = cause.strerror or "no such name"
            return ProbeFailed("dns", f"the name of {target} did not resolve ({reason})")
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "verification failed"
            return ProbeFailed("tls", f"the certificate of {target} is not trusted: {reason}")
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or type(cause).__name__
            return ProbeFailed("tls", f"the TLS handshake with {target} failed: {reason}")
        if isinstance(cause, ConnectionRefusedError):
            return ProbeFailed("refused", f"{target} refused the connection")
        if isinstance(cause, TimeoutError):
            return ProbeFailed("timeout", f"{target} did not answer in time")
    for cause in _chain(exc):
        if isinstance(cause, OSError):  # unreachable, host down, reset, and the like
            reason = cause.strerror or str(cause) or type(cause).__name__
            return ProbeFailed("unreachable", f"{target} cannot be reached ({reason})")
    return ProbeFailed("other", f"the probe of {target} failed: {type(exc).__name__}: {exc}")
