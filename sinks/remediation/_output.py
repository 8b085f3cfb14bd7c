"""What a remediation printed or answered: the head and tail of a stream of bytes, decoded,
with its secrets filtered."""

from __future__ import annotations

import codecs
import functools
import time
from collections.abc import Iterable

from mendline.analyzers.grouping import Scrubber
from mendline.schemas.redaction import redact_url
from mendline.schemas.remediation import (
    OutcomeResult,
    RemediationKind,
    RemediationOutcome,
    join_trimmed,
)

__all__ = ["OUTPUT_LIMIT", "OutputCapture", "filtered", "outcome", "scrubber"]

#: The characters of output a run keeps by default: its first and last 32 Ki.
OUTPUT_LIMIT = 64 * 1024


@functools.cache
def scrubber() -> Scrubber:
    """The secret scrubber of events, made once: it also filters what remediations print,
    and tells which environment variables look secret."""
    return Scrubber()


def filtered(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the secrets the event scrubber finds (credentials' shapes,
    ``password=...`` and the like), the passwords of URLs, and each of ``secrets``."""
    return redact_url(scrubber().scrub_text(text), secrets)


class OutputCapture:
    """Keeps the first ``limit // 2`` and the last ``limit - limit // 2`` characters of a
    stream of bytes (UTF-8, undecodable bytes replaced), and counts what falls between: a
    command that prints without end costs no more memory than ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"an output limit is at least 0, not {limit}")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._head_room = limit // 2
        self._tail_room = limit - limit // 2
        self._head = ""
        self._tail = ""
        self._seen = 0

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        self._add(self._decoder.decode(data))

    def text(self, secrets: Iterable[str] = ()) -> str:
        """What was kept, with a line saying how many characters were left out between the
        head and the tail; secrets filtered (see ``filtered``)."""
        self._add(self._decoder.decode(b"", final=True))
        omitted = self._seen - len(self._head) - len(self._tail)
        joined = join_trimmed(self._head, self._tail, omitted)
        return filtered(joined, secrets)

    def _add(self, text: str) -> None:
        self._seen += len(text)
        room = self._head_room - len(self._head)
        if room > 0:
            self._head += text[:room]
            text = text[room:]
        if text and self._tail_room:
            self._tail = (self._tail + text)[-self._tail_room :]


def outcome(
    kind: RemediationKind,
    result: OutcomeResult,
    ran: str,
    detail: str,
    started: float | None,
    *,
    exit_code: int | None = None,
    http_status: int | None = None,
    output: str = "",
) -> RemediationOutcome:
    """The outcome of a run that began at ``started`` (``time.perf_counter()``; None: a dry
    run, which took no time), its descriptions cut to what the contract holds."""
    return RemediationOutcome(
        result=result,
        kind=kind,
        ran=ran[:2000],
        detail=detail[:2000],
        exit_code=exit_code,
        http_status=http_status,
        output=output,
        seconds=0.0 if started is None else time.perf_counter() - started,
    )
