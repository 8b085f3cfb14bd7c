"""The consumer's check of who produced a record: the producer keys file read once, then the
policy's verdict on each record; warnings counted, and logged once a service."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from mendline.analyzers.policy import (
    ProducerAuthMode,
    ProducerKeys,
    ProducerReason,
    check_producer,
    parse_producer_keys,
)
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings

__all__ = ["ProducerCheck", "load_producer_keys", "producer_check"]

log = logging.getLogger("mendline.consume")

# Services named in warnings: event strings are an attacker's, so a flood of made-up service
# names must not become a flood of log lines, nor a set that grows without end.
_NAMED_MAX = 1000
# Where tomllib says it stopped, at the end of its message: "(at line 3, column 7)".
_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)$")
_KEYS_HINT = (
    "fix MENDLINE_PRODUCER_KEYS_FILE (the README's trust model shows the format), or set"
    " MENDLINE_PRODUCER_AUTH=off"
)


def load_producer_keys(path: Path) -> ProducerKeys:
    """The key map in a TOML file; ConfigError (naming the file, never a key) when unreadable
    or invalid."""
    try:
        text = path.expanduser().read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the producer keys file {path}: {exc.strerror}", hint=_KEYS_HINT
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the producer keys file {path} is not UTF-8 text", hint=_KEYS_HINT
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        # Only the position: the decoder's message may quote a character of a key.
        found = _POSITION.search(str(exc))
        # Without a position it stopped "at end of document": the last line.
        line = found[1] if found else max(1, len(text.splitlines()))
        column = f" (column {found[2]})" if found else ""
        raise ConfigError(
            f"{path}:{line}: the producer keys file is not valid TOML{column}", hint=_KEYS_HINT
        ) from exc
    try:
        return parse_producer_keys(data, str(path))
    except ConfigError as exc:
        exc.hint = exc.hint or _KEYS_HINT
        raise


class ProducerCheck:
    """The policy's verdict on each record, with its effects at the consumer's edge.

    ``warned`` counts the records stored although they failed the check (mode ``warn``),
    by reason; ``checked`` counts the records checked.
    """

    def __init__(self, keys: ProducerKeys, mode: ProducerAuthMode) -> None:
        self.keys = keys
        self.mode = mode
        self.checked = 0
        self.warned: dict[ProducerReason, int] = {}
        self._named: set[str] = set()

    def refusal(
        self, headers: Iterable[tuple[str, bytes | None]], value: bytes | None, service: str
    ) -> str | None:
        """Why the record may not be stored (a line for the DLQ's message header), or None."""
        verdict = check_producer(headers, value, service, self.keys, self.mode)
        self.checked += 1
        if verdict.action == "accept":
            return None
        if verdict.action == "reject":
            return f"{verdict.reason}: {verdict.detail}"
        self.warned[verdict.reason] = self.warned.get(verdict.reason, 0) + 1
        if service not in self._named and len(self._named) < _NAMED_MAX:
            self._named.add(service)
            log.warning(
                "mendline: stored an event that failed the producer check (%s: %s); "
                "said once for this service",
                verdict.reason,
                verdict.detail,
            )
        return None


def producer_check(settings: Settings) -> ProducerCheck | None:
    """The check the settings ask for; None when it is off (then nothing is read)."""
    if settings.producer_auth == "off" or settings.producer_keys_file is None:
        return None
    return ProducerCheck(load_producer_keys(settings.producer_keys_file), settings.producer_auth)
