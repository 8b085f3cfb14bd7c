"""The relay's decisions, pure: whether a browser's Origin may send with a key, which
heartbeat a key's Sentry check-in speaks for, and how far an SDK's clock is corrected."""

from __future__ import annotations

import re

from mendline.schemas.checks import CHECK_NAME

__all__ = ["MIN_CLOCK_DRIFT", "clock_correction", "heartbeat_name", "origin_allowed"]

#: The least drift between an SDK's clock and ours that is corrected, in seconds (Relay's
#: ClockDriftProcessor): less is latency, or a clock a little off; an hour is a time zone.
MIN_CLOCK_DRIFT = 55 * 60.0

# An origin, and a key's allowed origin pattern: [scheme://]host[:port], nothing after.
_ORIGIN_HOST = re.compile(r"^(?:(https?)://)?([^/:]+)(?::(\d+))?/?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# mendline's own checks (its clock among them): never a relay key's.
_OWN_CHECKS = "mendline."


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser's Origin is among a key's allowed origins: ``*``; a host
    (``shop.example.com``, any scheme and port); a scheme and host, with a port when given;
    ``*.example.com`` (its subdomains, not itself). ``null`` (a sandboxed page) only with
    ``*``."""
    if "*" in allowed:
        return True
    text = origin.strip().lower()
    found = _ORIGIN_HOST.match(text)
    if found is None or text == "null":
        return False
    scheme, host, port = found.groups()
    for pattern in allowed:
        wanted = _ORIGIN_HOST.match(pattern)
        if wanted is None:
            continue
        w_scheme, w_host, w_port = wanted.groups()
        if w_scheme is not None and w_scheme != scheme:
            continue
        if w_port is not None and w_port != (port or _DEFAULT_PORTS.get(scheme or "")):
            continue
        if w_host.startswith("*."):
            if host.endswith(w_host[1:]) and host != w_host[2:]:
                return True
        elif host == w_host:
            return True
    return False


def heartbeat_name(service: str, slug: str) -> str | None:
    """The heartbeat check a key of ``service`` speaks for with a Sentry monitor ``slug``:
    ``<service>.<slug>``; None when there is none it may speak for: a slug with a dot (key
    ``shop`` and ``api.nightly`` would be service ``shop.api``'s check), a name that is no
    check name, or one of mendline's own checks."""
    name = f"{service}.{slug}"
    if "." in slug or not CHECK_NAME.fullmatch(name) or name.startswith(_OWN_CHECKS):
        return None
    return name


def clock_correction(sent_at: float | None, received: float) -> float:
    """Seconds to add to an event's time, as Relay corrects an SDK's clock: an envelope says
    when it was ``sent_at`` by the SDK's clock, we know when it was ``received`` by ours; at
    least MIN_CLOCK_DRIFT apart either way, the event's time is moved by their difference
    (an event sent "yesterday" and received now happened a day later than it says); less
    apart, or without ``sent_at``, 0."""
    if sent_at is None:
        return 0.0
    drift = received - sent_at
    return drift if abs(drift) >= MIN_CLOCK_DRIFT else 0.0
