"""The relay's decisions, pure: whether a browser's Origin may send with a key, and which
heartbeat a key's Sentry check-in speaks for."""

from __future__ import annotations

import re

from mendline.schemas.checks import CHECK_NAME

__all__ = ["heartbeat_name", "origin_allowed"]

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
