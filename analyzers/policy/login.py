"""The dashboard's door, decided purely: passwords (what may be one, its argon2id hash), the
back-off of failed logins, how long a session lasts, where a login may send the browser, which
proxies' forwarded headers are believed, and whether a state change comes from the dashboard's
own pages (its Origin and its CSRF token). The stores and the web app read what they need and
act on these verdicts."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "ACCOUNT_LONGEST_WAIT",
    "FORGET_FAILURES_AFTER",
    "LONGEST_WAIT",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "SESSION_TOUCH_EVERY",
    "FailureCount",
    "PasswordVerdict",
    "SessionEnd",
    "TrustedProxies",
    "account_key",
    "address_key",
    "after_failure",
    "after_forgiving",
    "backoff",
    "csrf_refusal",
    "expected_origin",
    "forwarded_client",
    "forwarded_scheme",
    "hash_password",
    "host_refusal",
    "local_path",
    "longest_wait",
    "needs_touch",
    "new_session_secret",
    "origin_of",
    "origin_refusal",
    "pair_key",
    "password_refusal",
    "session_end",
    "unusable_hash",
    "verify_password",
    "wait_left",
]

#: The fewest characters of a password (NIST SP 800-63B asks for at least 8; we ask more).
MIN_PASSWORD = 12
#: The most: an argon2 hash reads all of it, and nobody types more.
MAX_PASSWORD = 1024
#: The longest a client waits before its next login attempt: an address, or an account from
#: an address, that keeps failing.
LONGEST_WAIT = timedelta(minutes=15)
#: The longest an account waits, whatever the addresses its failures came from: short, so
#: that failures from elsewhere keep its owner out a minute at most, yet long enough that
#: guesses spread over many addresses come at about one a minute.
ACCOUNT_LONGEST_WAIT = timedelta(minutes=1)
#: Failures are forgotten after this long without another (the count starts again at one).
FORGET_FAILURES_AFTER = timedelta(days=1)
#: A session's ``last_seen_at`` is written at most this often (one write a minute, not one
#: per request); the idle timeout is exact to within it.
SESSION_TOUCH_EVERY = timedelta(seconds=60)

# argon2id with the library's parameters (RFC 9106's second recommendation at the time of
# writing); ``check_needs_rehash`` tells when a stored hash used older ones.
_HASHER = PasswordHasher()


# -- passwords ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordVerdict:
    """Whether a password matched its stored hash, and whether the hash should be made again
    with the current parameters (only ever True when it matched)."""

    matches: bool
    needs_rehash: bool = False


def password_refusal(name: str, password: str) -> str | None:
    """Why ``password`` cannot be ``name``'s, or None: shorter than ``MIN_PASSWORD`` or longer
    than ``MAX_PASSWORD`` characters, the user's name itself (in any case), or not text that
    UTF-8 can hold."""
    if len(password) < MIN_PASSWORD:
        return f"a password has at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if password.strip().casefold() == name.strip().casefold():
        return "a password may not be the user's name"
    try:
        password.encode()
    except UnicodeEncodeError:
        return "a password must be text (it holds an unpaired surrogate)"
    return None


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted, with the parameters in it): what is stored.
    CPU and memory heavy (tens of milliseconds, 64 MiB): call it off the event loop."""
    return _HASHER.hash(_bytes(password))


def verify_password(stored: str, password: str) -> PasswordVerdict:
    """Whether ``password`` matches the ``stored`` argon2 hash. A hash that is not one (a
    damaged row) matches nothing. As heavy as ``hash_password``."""
    try:
        _HASHER.verify(stored, _bytes(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordVerdict(matches=False)
    return PasswordVerdict(matches=True, needs_rehash=_HASHER.check_needs_rehash(stored))


@functools.cache
def unusable_hash() -> str:
    """A hash no one knows the password of: verified against when a user is unknown or has
    no password, so that every failed login costs the same time."""
    return hash_password(secrets.token_urlsafe(32))


def _bytes(password: str) -> bytes:
    # Lone surrogates (a form can send them) hash as themselves instead of failing.
    return password.encode("utf-8", "surrogatepass")


# -- the back-off of failed logins -------------------------------------------------------


@dataclass(frozen=True)
class FailureCount:
    """Failed logins of one key (an account, an address, or an account from an address):
    how many in a row, the last one's time, and until when the next attempt must wait."""

    failures: int
    last_failure_at: datetime
    blocked_until: datetime | None = None


def account_key(name: str) -> str:
    """The key of the failures of the account ``name`` (known or not: both are counted
    alike, so the answers do not tell them apart). A digest: the name typed may be a
    password typed into the wrong field, and the keys need only be told apart."""
    return "user:" + _digest(name)


def address_key(client: str) -> str:
    """The key of the failures from the client address ``client``: an IPv6 address by its
    /64 (one client holds a whole /64, and could step through it), an IPv4-mapped one as
    the IPv4 address."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return "addr:" + client[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"addr:{address.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"addr:{address}"


def pair_key(name: str, client: str) -> str:
    """The key of the failures of the account ``name`` from ``client`` (what a success there
    forgives on the address: see ``after_forgiving``), a digest as ``account_key``'s."""
    return "pair:" + _digest(f"{address_key(client)}\0{name}")


def longest_wait(key: str) -> timedelta:
    """The longest wait a key's failures make: ``ACCOUNT_LONGEST_WAIT`` for an account's
    (wherever they came from), ``LONGEST_WAIT`` for an address's and an account's from an
    address."""
    return ACCOUNT_LONGEST_WAIT if key.startswith("user:") else LONGEST_WAIT


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def backoff(failures: int, free: int, longest: timedelta = LONGEST_WAIT) -> timedelta:
    """How long the next attempt waits after ``failures`` failures in a row: nothing for the
    first ``free``, then 1 s, doubling with each further failure, at most ``longest``."""
    if failures < free:
        return timedelta(0)
    exponent = failures - free
    if exponent >= 20:  # 2**20 s is far above the cap: no need to compute bigger powers
        return longest
    return min(timedelta(seconds=2**exponent), longest)


def after_failure(
    before: FailureCount | None, now: datetime, free: int, longest: timedelta = LONGEST_WAIT
) -> FailureCount:
    """The count of a key after a failure at ``now``: one more (one, when there was none or
    the last was longer ago than ``FORGET_FAILURES_AFTER``), blocked for ``backoff`` (at
    most ``longest``: ``longest_wait`` of the key)."""
    fresh = before is None or now - before.last_failure_at >= FORGET_FAILURES_AFTER
    failures = 1 if fresh or before is None else before.failures + 1
    wait = backoff(failures, free, longest)
    return FailureCount(failures, now, now + wait if wait else None)


def after_forgiving(
    before: FailureCount, forgiven: int, now: datetime, free: int
) -> FailureCount | None:
    """An address's count after a successful login forgives ``forgiven`` of its failures
    (those made on the account that just logged in: a person who mistyped their own
    password). None when nothing is left. Failures on other accounts stay: a success proves
    the address knows one password, not that its guesses at others were honest, and
    clearing them would let anyone with an account of their own reset the limit between
    guesses."""
    failures = before.failures - max(forgiven, 0)
    if failures <= 0:
        return None
    wait = backoff(failures, free)
    blocked_until = before.last_failure_at + wait if wait else None
    if blocked_until is not None and blocked_until <= now:
        blocked_until = None
    return FailureCount(failures, before.last_failure_at, blocked_until)


def wait_left(counts: Iterable[FailureCount | None], now: datetime) -> int | None:
    """Whole seconds until a login may be tried again, by the longest block among
    ``counts`` (rounded up, at least 1); None when none blocks now."""
    until = max(
        (c.blocked_until for c in counts if c is not None and c.blocked_until is not None),
        default=None,
    )
    if until is None or until <= now:
        return None
    return max(1, math.ceil((until - now).total_seconds()))


# -- sessions ------------------------------------------------------------------------------

#: Why a session ends by itself: past its absolute lifetime, unused too long, its user
#: disabled.
SessionEnd = Literal["expired", "idle", "disabled"]


def new_session_secret() -> str:
    """A new session's secret (32 random bytes, URL-safe): the cookie holds it, the
    database only its SHA-256."""
    return secrets.token_urlsafe(32)


def session_end(
    *,
    now: datetime,
    created_at: datetime,
    last_seen_at: datetime,
    expires_at: datetime,
    idle: timedelta,
    longest: timedelta,
    user_disabled_at: datetime | None,
) -> SessionEnd | None:
    """Why a session may not act now, or None: its user is disabled; it is past its
    ``expires_at`` or older than ``longest`` (the setting may have been lowered since it
    began); it has not been used for ``idle``."""
    if user_disabled_at is not None and user_disabled_at <= now:
        return "disabled"
    if now >= expires_at or now - created_at >= longest:
        return "expired"
    if now - last_seen_at >= idle:
        return "idle"
    return None


def needs_touch(now: datetime, last_seen_at: datetime) -> bool:
    """Whether a session's ``last_seen_at`` is old enough to be written again."""
    return now - last_seen_at >= SESSION_TOUCH_EVERY


def local_path(target: object, default: str = "/") -> str:
    """Where a login may send the browser: ``target`` when it is a path on this site
    (``/issues?tab=regressed``), else ``default``. Refused: anything not starting with one
    ``/``, ``//host`` and ``/\\host`` (browsers read both as another site), a scheme,
    whitespace and control characters anywhere (browsers drop tabs and newlines, so
    ``/\\t/host`` would become ``//host``), and more than 2000 characters."""
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2000:
        return default
    if target[1:2] in ("/", "\\"):
        return default
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return default
    return target


# -- who is asking, through proxies ---------------------------------------------------------


class TrustedProxies:
    """Addresses and networks (CIDR) whose word is believed (forwarded headers, a user
    header). Parsed once; ``address in proxies`` for an address as text."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __contains__(self, address: object) -> bool:
        parsed = _address(address) if isinstance(address, str) else None
        return parsed is not None and any(
            parsed.version == net.version and parsed in net for net in self.networks
        )

    def __bool__(self) -> bool:
        return bool(self.networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port, as some proxies write it
        text = text[1 : text.index("]")]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(found, "ipv4_mapped", None)
    return mapped if mapped is not None else found


def forwarded_client(peer: str | None, forwarded_for: str | None, proxies: TrustedProxies) -> str:
    """The client's address: the peer's own, unless the peer is a trusted proxy that sent
    ``X-Forwarded-For``; then the right-most hop that is not a trusted proxy (each proxy
    appends the address it was reached from; everything left of the first untrusted one was
    written by the client and may be anything). A hop that is not an address ends the walk
    at the proxy that passed it on. ``unknown`` when there is no peer."""
    if not peer:
        return "unknown"
    if not forwarded_for or peer not in proxies:
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        found = _address(hop)
        if found is None:
            return client
        client = str(found)
        if client not in proxies:
            return client
    return client


def forwarded_scheme(
    peer: str | None, forwarded_proto: str | None, own_scheme: str, proxies: TrustedProxies
) -> str:
    """The scheme the client used: the first ``X-Forwarded-Proto`` value from a trusted
    proxy (http or https), else the connection's own."""
    if forwarded_proto and peer in proxies:
        first = forwarded_proto.split(",")[0].strip().lower()
        if first in ("http", "https"):
            return first
    return own_scheme


# -- where a change comes from ----------------------------------------------------------------


def origin_of(url: str | None) -> str | None:
    """The origin of ``url`` (``scheme://host[:port]``, lower case, the scheme's default
    port left out), or None when it has none (``null``, a path, another scheme)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def expected_origin(public_url: str | None, scheme: str, host: str) -> str | None:
    """The one origin the dashboard's own pages post from: ``public_url``'s when set, else
    the request's own ``scheme://host``."""
    return origin_of(public_url) if public_url else origin_of(f"{scheme}://{host}")


def host_refusal(host: str, public_url: str | None) -> str | None:
    """Why a request's ``Host`` names no address of this dashboard, or None. A page that a
    DNS-rebinding attack serves from its own name (``evil.example`` resolving to 127.0.0.1)
    reaches the dashboard with that name as its Host and its Origin, which agree: checking
    the Origin against the Host alone lets it act with a proxy's header or guess logins.
    So a name is taken only when it is ``public_url``'s, or ``localhost``; an address (an IP
    literal, which no rebinding can produce) is always taken."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]", 1)[0] + "]"
    name = name.strip("[]").rstrip(".").lower()
    if not name:
        return "the request names no host"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return None
    allowed = {"localhost"}
    if public_url:
        public = urlsplit(public_url).hostname
        if public:
            allowed.add(public.rstrip(".").lower())
    if name in allowed:
        return None
    shown = name if len(name) <= 100 else name[:100] + "..."
    return (
        f"this dashboard is not served as {shown!r}: set MENDLINE_WEB_PUBLIC_URL to the"
        " address people open it at, or list the reverse proxy in MENDLINE_WEB_FORWARDED_ALLOW"
    )


def origin_refusal(origin: str | None, referer: str | None, expected: str | None) -> str | None:
    """Why a state change does not come from the dashboard's own pages, or None: its
    ``Origin`` (or, when a browser sent none, its ``Referer``'s origin) must be
    ``expected``."""
    sent, header = (origin, "Origin") if origin is not None else (referer, "Referer")
    if sent is None:
        return "a change needs an Origin (or Referer) header: send it from the dashboard's page"
    if expected is None or origin_of(sent) != expected:
        shown = sent if len(sent) <= 100 else sent[:100] + "..."
        return f"the change comes from another site ({header} {shown!r}), not {expected}"
    return None


def csrf_refusal(sent: Sequence[str | None], expected: str) -> str | None:
    """Why no CSRF token among ``sent`` (the ``X-CSRF-Token`` header, the form's
    ``csrf_token``) is the session's ``expected`` one, or None. Compared in constant time."""
    given = [token for token in sent if token]
    if not given:
        return "a change needs the session's CSRF token (X-CSRF-Token or a csrf_token field)"
    if not any(hmac.compare_digest(token.encode(), expected.encode()) for token in given):
        return "the CSRF token is not this session's: reload the page and try again"
    return None
