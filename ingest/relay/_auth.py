"""Who a request says it is, found where Relay looks for it (the X-Sentry-Auth and
Authorization headers, the query string, the envelope header's dsn), and DSNs."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mendline.schemas.errors import RelayRefused

__all__ = [
    "DEFAULT_PROTOCOL_VERSION",
    "MAX_PROTOCOL_VERSION",
    "Dsn",
    "SentryAuth",
    "check_envelope_dsn",
    "format_dsn",
    "parse_dsn",
    "request_auth",
]

#: ``sentry_version`` when a request gives none (sentry-types' ``protocol::LATEST``).
DEFAULT_PROTOCOL_VERSION = 7
#: The newest version Relay takes ("For now, we only handle <= v8 and drop everything else").
MAX_PROTOCOL_VERSION = 8
_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class SentryAuth:
    """What a request authenticates with: the DSN's public key (flags such as ``.no-cache``
    taken off), the protocol version it speaks and the SDK it names (``sentry_client``,
    e.g. ``sentry.python/2.76.0``)."""

    public_key: str
    version: int = DEFAULT_PROTOCOL_VERSION
    client: str | None = None


@dataclass(frozen=True, slots=True)
class Dsn:
    """A DSN taken apart: where its SDK sends (``public_url``, with any path prefix), the
    public key and the project id. ``format_dsn`` puts it back together."""

    public_url: str
    public_key: str
    project_id: int


def request_auth(
    headers: Mapping[str, str],
    query: str,
    envelope_header: Mapping[str, Any] | None = None,
) -> SentryAuth:
    """Find a request's authentication where Relay looks (``auth_from_parts``), in order:

    1. ``X-Sentry-Auth: Sentry sentry_key=..., sentry_version=7, sentry_client=...`` (any
       other value of the header is not authentication, as in Relay);
    2. ``Authorization: Sentry ...``, the same form;
    3. ``Authorization: Basic base64(<key>:<anything>)``, ignored unless it decodes;
    4. the query string, when it holds ``sentry_`` (``?sentry_key=...&sentry_version=7``,
       what the browser and Node SDKs send);
    5. only when none of these and ``envelope_header`` is given (the envelope endpoint): its
       ``dsn``, with its ``version`` and ``client``.

    401 ``bad_auth``: "bad x-sentry-auth header" when a header or the query does not parse
    (no key, a version that is not a number), "multiple authorization payloads detected"
    when two sources are present, "bad envelope authentication header" for an envelope
    header's dsn that is not one; 401 ``missing_auth`` "missing authorization information"
    when there is none (for the envelope endpoint, "bad envelope authentication header"
    as Relay says it); 400 ``bad_key`` "bad sentry DSN public key" when the key is not 32
    ASCII characters; 400 ``unsupported_version`` "unsupported protocol version (N)" over 8.
    """
    lowered = _lowered(headers)
    found: list[SentryAuth] = []
    for name in ("x-sentry-auth", "authorization"):
        value = lowered.get(name, "")
        if value[:7].lower() == "sentry ":
            _one_more(found)
            found.append(_from_header(value))
    basic = _basic_auth(lowered.get("authorization", ""))
    if basic is not None:
        _one_more(found)
        found.append(basic)
    if "sentry_" in query:
        _one_more(found)
        found.append(_from_pairs(parse_qsl(query, keep_blank_values=True)))
    if found:
        auth = found[0]
    elif envelope_header is not None:
        auth = _from_envelope_header(envelope_header)
    else:
        raise RelayRefused(401, "missing_auth", "missing authorization information")
    return _checked(auth)


def check_envelope_dsn(
    envelope_header: Mapping[str, Any], public_key: str, project_id: int | None
) -> None:
    """An envelope header's ``dsn``, when it has one, must name the request's key and the
    URL's project (``project_id`` None: the legacy ``/api/store/``, no project to compare):
    else 400 ``bad_envelope`` "invalid event envelope", with Relay's cause "project id
    header mismatch between envelope and request" or "public key header ...". A dsn that is
    not one is an invalid envelope header, as in Relay."""
    text = envelope_header.get("dsn")
    if text is None:
        return
    try:
        dsn = parse_dsn(text)
    except ValueError as exc:
        raise RelayRefused(
            400, "bad_envelope", "invalid event envelope", ("invalid envelope header", str(exc))
        ) from None
    if project_id is not None and dsn.project_id != project_id:
        mismatch = "project id"
    elif dsn.public_key != public_key:
        mismatch = "public key"
    else:
        return
    raise RelayRefused(
        400,
        "bad_envelope",
        "invalid event envelope",
        (f"{mismatch} header mismatch between envelope and request",),
    )


def format_dsn(public_url: str, public_key: str, project_id: int) -> str:
    """The DSN an SDK is given: ``http(s)://<key>@<host>[:port][/prefix]/<project id>``.

    ``public_url`` is where the endpoint is reached from the SDKs, with the path it is
    served under, if any: SDKs post to ``<public_url>/api/<project id>/envelope/``.
    ValueError when it is not an http(s) URL without credentials, query or fragment, when
    the key is not 32 characters matching ``\\w`` (the JavaScript SDK's DSN pattern), or
    the project id not a positive integer.
    """
    parts = urlsplit(public_url)
    parts.port  # noqa: B018 -- raises ValueError on a port that is not one
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the public URL is not an http(s) URL: {public_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the public URL carries credentials: the DSN's key takes their place")
    if parts.query or parts.fragment:
        raise ValueError(f"the public URL has a query or a fragment: {public_url!r}")
    if not _DSN_KEY.fullmatch(public_key) or len(public_key) != _KEY_LENGTH:
        raise ValueError(f"a public key is 32 letters or digits, not {public_key!r}")
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        raise ValueError(f"a project id is a positive integer, not {project_id!r}")
    prefix = parts.path.rstrip("/")
    return f"{parts.scheme}://{public_key}@{parts.netloc}{prefix}/{project_id}"


def parse_dsn(text: str) -> Dsn:
    """Take a DSN apart (``scheme://key[:secret]@host[:port][/prefix]/<project id>``), as
    Relay reads an envelope header's: an http(s) URL, a public key of 32 ASCII characters,
    a numeric project id last in the path. ValueError saying what is wrong otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a DSN is a string, not {type(text).__name__}")
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a port that is not one
    except ValueError as exc:
        raise ValueError(f"not a DSN: {exc}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ValueError("a DSN is an http or https URL with a host")
    key = parts.username
    if not key:
        raise ValueError("the DSN has no public key")
    if len(key) != _KEY_LENGTH or not key.isascii():
        raise ValueError("the DSN's public key is not 32 ASCII characters")
    prefix, _, project = parts.path.rpartition("/")
    if not project.isascii() or not project.isdigit():
        raise ValueError("the DSN's path does not end with a numeric project id")
    netloc = parts.netloc.rpartition("@")[2]
    return Dsn(f"{parts.scheme}://{netloc}{prefix}", key, int(project))


# --- the sources -------------------------------------------------------------------------

_DSN_KEY = re.compile(r"\w+", re.ASCII)


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lowercased; the first of repeated ones, as Relay's ``headers.get``."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered


def _one_more(found: list[SentryAuth]) -> None:
    if found:
        raise RelayRefused(401, "bad_auth", "multiple authorization payloads detected")


def _from_header(value: str) -> SentryAuth:
    """sentry-types' ``Auth::from_str``: after the ``Sentry`` word, ``key=value`` pairs
    split on commas, each trimmed; a pair without ``=`` is skipped."""
    _, _, items = value.partition(" ")
    pairs = []
    for item in items.split(","):
        key, equals, rest = item.partition("=")
        if equals:
            pairs.append((key.strip(), rest.split("=", 1)[0].strip()))
    return _from_pairs(pairs)


def _from_pairs(pairs: list[tuple[str, str]]) -> SentryAuth:
    """sentry-types' ``Auth::from_pairs``: the last of repeated keys wins, unknown keys are
    ignored, ``sentry_version`` is the integer before any dot ("7.0" is 7)."""
    key, version, client = "", DEFAULT_PROTOCOL_VERSION, None
    for name, value in pairs:
        if name == "sentry_key":
            key = value
        elif name == "sentry_client":
            client = value
        elif name == "sentry_version":
            version = _version(value)
    if not key:
        raise _bad_auth("missing public key in auth header")
    return SentryAuth(key, version, client)


def _version(value: str) -> int:
    major = value.split(".", 1)[0]
    # Relay's u16: digits only, no sign, at most 65535
    if not (major.isascii() and major.isdigit()) or int(major) > 0xFFFF:
        raise _bad_auth("invalid value for version")
    return int(major)


def _basic_auth(value: str) -> SentryAuth | None:
    """``Authorization: Basic base64(<key>:<anything>)`` (newer Relay); not a source at all
    when it does not decode, as there."""
    if value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, _ = decoded.partition(":")
    return SentryAuth(key) if colon and key else None


def _from_envelope_header(header: Mapping[str, Any]) -> SentryAuth:
    text = header.get("dsn")
    if text is None:
        raise RelayRefused(
            401,
            "missing_auth",
            "bad envelope authentication header",
            ("no key in a header, the query string or the envelope header's dsn",),
        )
    try:
        dsn = parse_dsn(text)
    except ValueError as exc:
        raise RelayRefused(
            401, "bad_auth", "bad envelope authentication header", (str(exc),)
        ) from None
    version = header.get("version", DEFAULT_PROTOCOL_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 0xFFFF:
        raise RelayRefused(
            401, "bad_auth", "bad envelope authentication header", ("invalid value for version",)
        )
    client = header.get("client")
    return SentryAuth(dsn.public_key, version, client if isinstance(client, str) else None)


def _checked(auth: SentryAuth) -> SentryAuth:
    """Relay's ``ProjectKey::parse_with_flags`` and version check, after finding."""
    key = auth.public_key.split(".", 1)[0]
    if len(key) != _KEY_LENGTH or not key.isascii():
        raise RelayRefused(400, "bad_key", "bad sentry DSN public key")
    if auth.version > MAX_PROTOCOL_VERSION:
        raise RelayRefused(
            400, "unsupported_version", f"unsupported protocol version ({auth.version})"
        )
    return auth if key == auth.public_key else SentryAuth(key, auth.version, auth.client)


def _bad_auth(cause: str) -> RelayRefused:
    return RelayRefused(401, "bad_auth", "bad x-sentry-auth header", (cause,))
