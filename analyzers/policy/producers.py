"""Which producer may claim which service: an event's signature header checked against the
keys its service signs with (pure: headers, value, service, keys and mode in, verdict out).

The trust model: without keys, whoever can write the errors topic can claim any ``service``.
A service with keys listed must sign each record's value (HMAC-SHA256 over the exact value
bytes, in the ``mendline.signature`` header); any of its listed keys verifies (rotation).
A service with no keys listed is accepted unless the key map says it is ``exhaustive``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mendline.schemas.errors import ConfigError

__all__ = [
    "KEY_ID_HEADER",
    "MIN_KEY_LENGTH",
    "SIGNATURE_HEADER",
    "ProducerAction",
    "ProducerAuthMode",
    "ProducerKeys",
    "ProducerReason",
    "ProducerVerdict",
    "check_producer",
    "parse_producer_keys",
    "sign_value",
    "signature_headers",
]

#: The record header holding ``v1=<hex HMAC-SHA256 over the value bytes>``.
SIGNATURE_HEADER = "mendline.signature"
#: The record header naming whose key signed (the service); informative, and checked when set.
KEY_ID_HEADER = "mendline.key-id"
#: Shortest key accepted, in characters: a shorter one could be guessed offline from one event.
MIN_KEY_LENGTH = 16

#: ``off``: nothing is checked (the default); ``warn``: violations are stored, counted and
#: logged; ``enforce``: violations are dead-lettered as ``unauthenticated``.
ProducerAuthMode = Literal["off", "warn", "enforce"]
ProducerAction = Literal["accept", "warn", "reject"]
#: Why: ``not_checked`` (mode off), ``signed`` (a listed key verified it), ``no_keys`` (the
#: service has no keys and the map is not exhaustive), and the violations: ``unlisted`` (no
#: keys, exhaustive map), ``missing_signature``, ``malformed_signature``, ``wrong_key_id``,
#: ``bad_signature``.
ProducerReason = Literal[
    "not_checked",
    "signed",
    "no_keys",
    "unlisted",
    "missing_signature",
    "malformed_signature",
    "wrong_key_id",
    "bad_signature",
]

_VERSION = "v1="
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")
_SHOWN = 80  # characters of an attacker's string shown in a detail


@dataclass(frozen=True, slots=True)
class ProducerKeys:
    """The allowed producers: each service's signing keys (any of them verifies), and whether
    the list is exhaustive (a service not listed may not produce at all)."""

    keys: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    exhaustive: bool = False


@dataclass(frozen=True, slots=True)
class ProducerVerdict:
    """What to do with a record, why (a code fit for a metric label) and a line for people."""

    action: ProducerAction
    reason: ProducerReason
    detail: str


def sign_value(key: bytes, value: bytes) -> str:
    """The signature header's value for ``value``: ``v1=<hex HMAC-SHA256(key, value)>``."""
    return _VERSION + hmac.digest(key, value, "sha256").hex()


def signature_headers(key: bytes, key_id: str, value: bytes) -> list[tuple[str, bytes]]:
    """The record headers a producer of ``key_id`` (its service) sends with ``value``."""
    return [
        (SIGNATURE_HEADER, sign_value(key, value).encode("ascii")),
        (KEY_ID_HEADER, key_id.encode("utf-8")),
    ]


def check_producer(
    headers: Iterable[tuple[str, bytes | None]],
    value: bytes | None,
    service: str,
    keys: ProducerKeys,
    mode: ProducerAuthMode,
) -> ProducerVerdict:
    """Whether the record (its headers and exact value bytes) may speak for ``service`` (the
    service its parsed value claims), under ``keys`` and ``mode``. Comparisons of signatures
    take constant time."""
    if mode == "off":
        return ProducerVerdict("accept", "not_checked", "producer checks are off")
    reason, detail = _judge(list(headers), value or b"", service, keys)
    if reason in ("signed", "no_keys"):
        return ProducerVerdict("accept", reason, detail)
    return ProducerVerdict("warn" if mode == "warn" else "reject", reason, detail)


def _judge(
    headers: list[tuple[str, bytes | None]], value: bytes, service: str, keys: ProducerKeys
) -> tuple[ProducerReason, str]:
    shown = repr(service[:_SHOWN])
    listed = keys.keys.get(service)
    if not listed:
        if keys.exhaustive:
            return "unlisted", f"service {shown} is not among the allowed producers"
        return "no_keys", f"service {shown} has no keys; not checked"
    signatures = [v for k, v in headers if k == SIGNATURE_HEADER]
    if not signatures:
        return "missing_signature", f"service {shown} signs its events; this one is unsigned"
    key_ids = [v for k, v in headers if k == KEY_ID_HEADER]
    if len(signatures) > 1 or len(key_ids) > 1:
        return "malformed_signature", "more than one signature or key id header"
    text = _ascii(signatures[0])
    if text is None or not _SIGNATURE.fullmatch(text):
        return "malformed_signature", f"the signature header is not v1=<64 hex digits> ({shown})"
    if key_ids and key_ids[0] != service.encode("utf-8"):
        signer = (key_ids[0] or b"").decode("utf-8", "replace")[:_SHOWN]
        return "wrong_key_id", f"signed as {signer!r}, claims service {shown}"
    given = text.encode("ascii")
    # Each comparison takes constant time. Stopping at a match tells a forger nothing: a
    # forgery matches no key, so it always costs every key (list the newest first).
    for key in listed:
        if hmac.compare_digest(sign_value(key, value).encode("ascii"), given):
            return "signed", f"signed by a key of service {shown}"
    return "bad_signature", f"the signature matches none of the keys of service {shown}"


def _ascii(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def parse_producer_keys(data: Mapping[str, Any], source: str = "the producer keys") -> ProducerKeys:
    """The key map from a TOML document: ``exhaustive = true|false`` (default false) and a
    ``[services]`` table of service name to a key or a list of keys (each at least
    MIN_KEY_LENGTH characters; its UTF-8 bytes are the HMAC key). ConfigError when invalid;
    the error never holds a key."""
    unknown = sorted(set(data) - {"exhaustive", "services"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; use exhaustive and services"
        )
    exhaustive = data.get("exhaustive", False)
    if not isinstance(exhaustive, bool):
        raise ConfigError(f"{source}: exhaustive must be true or false")
    services = data.get("services", {})
    if not isinstance(services, dict):
        raise ConfigError(f"{source}: [services] must be a table of service = key(s)")
    keys: dict[str, tuple[bytes, ...]] = {}
    for service, given in services.items():
        listed = [given] if isinstance(given, str) else given
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"{source}: service {service!r} needs a key or a list of keys")
        for key in listed:
            if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"{source}: every key of service {service!r} must be a string of at least "
                    f"{MIN_KEY_LENGTH} characters"
                )
        keys[service] = tuple(key.encode("utf-8") for key in listed)
    return ProducerKeys(keys, exhaustive)
