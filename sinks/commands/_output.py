"""What a program printed (or a server answered): the head and tail of a stream of bytes,
decoded, with its secrets filtered."""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterable

from mendline.analyzers.grouping import Scrubber
from mendline.schemas.output import join_trimmed
from mendline.schemas.redaction import redact_url

__all__ = ["OutputCapture", "filtered"]


@functools.cache
def _scrubber() -> Scrubber:
    """The secret scrubber of events, made once: it also filters what programs print."""
    return Scrubber()


def filtered(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the secrets the event scrubber finds (credentials' shapes,
    ``password=...`` and the like), the passwords of URLs, and each of ``secrets``."""
    return redact_url(_scrubber().scrub_text(text), secrets)


class OutputCapture:
    """Keeps the first ``limit // 2`` and the last ``limit - limit // 2`` characters of a
    stream of bytes (UTF-8, undecodable bytes replaced), and counts what falls between: a
    program that prints without end costs no more memory than ``limit``."""

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
        head and the tail (``join_trimmed``); secrets filtered (see ``filtered``)."""
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
