"""The http probe: one request (redirects followed or not), its status, headers and the
first 64 KiB of its body, with the phases timed through httpcore's trace extension."""

from __future__ import annotations

import time
from collections.abc import Mapping
from http.cookiejar import Cookie, CookieJar
from types import TracebackType
from typing import Any

import httpx

from mendline.ingest.probes._run import ProbeFailed, Seen, env_value, hide, network_failure
from mendline.schemas.checks import HttpCheck

__all__ = ["BODY_LIMIT", "HttpClients", "http_secrets", "probe_http"]

#: The bytes of a response body that are read and observed.
BODY_LIMIT = 64 * 1024
# httpcore's traced steps (http11.* or http2.*) -> our timing names.
_PHASES = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
    "receive_response_headers": "first_byte",
}


class HttpClients:
    """httpx clients shared by many http probes (one that verifies certificates, one that
    does not, made when first needed), so that a monitor running many checks reuses
    connections and file descriptors. Close it with ``aclose()`` or ``async with``.

    At most ``max_keepalive`` idle connections are kept (per client): httpcore's pool looks
    at every connection it holds, and for each idle one counts them all again, each time a
    request starts or ends, so its cost per request grows with the square of the idle
    connections (bench/monitor.py: 24 ms of CPU per check with 300 origins kept alive, 1.2 ms
    with one). A check's next run rarely finds its connection alive anyway (a connection
    idles 5 s at most; checks run every 10 s or more), except on busy shared hosts."""

    def __init__(
        self,
        *,
        max_connections: int | None = 500,
        max_keepalive: int = 20,
        max_redirects: int = 10,
    ) -> None:
        keepalive = (
            max_keepalive if max_connections is None else min(max_keepalive, max_connections)
        )
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=keepalive
        )
        self._max_redirects = max_redirects
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client(self, verify: bool) -> httpx.AsyncClient:
        """The shared client that verifies certificates (or not)."""
        if verify not in self._clients:
            self._clients[verify] = _make_client(verify, self._limits, self._max_redirects)
        return self._clients[verify]

    async def aclose(self) -> None:
        """Close the clients and their connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing: a check's run must not send what another check's
    (or its own earlier) answer set, as a shared client's jar would, to any port of a host."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Keep no cookie from an answer."""

    def set_cookie(self, cookie: Cookie) -> None:
        """Keep no cookie."""


def _make_client(verify: bool, limits: httpx.Limits, max_redirects: int) -> httpx.AsyncClient:
    # trust_env=False: the check says exactly what is sent (no proxies or .netrc from the env).
    return httpx.AsyncClient(
        verify=verify,
        limits=limits,
        max_redirects=max_redirects,
        trust_env=False,
        cookies=_NoCookies(),
    )


def http_secrets(check: HttpCheck, environ: Mapping[str, str]) -> list[str]:
    """The header values the check takes from the environment (to keep them out of sight)."""
    return [environ[name] for name in check.headers_env.values() if name in environ]


class _Tracer:
    """httpcore's trace callback: sums each phase's seconds (over redirects) and notes the
    peer's address when a connection is made."""

    def __init__(self, seen: Seen) -> None:
        self._seen = seen
        self._open: dict[str, float] = {}

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        step, _, stage = event.rpartition(".")
        phase = _PHASES.get(step) or _PHASES.get(step.partition(".")[2])
        if phase is None:
            return
        if stage == "started":
            self._open[phase] = now
        elif phase in self._open:
            timings = self._seen.timings
            timings[phase] = timings.get(phase, 0.0) + now - self._open.pop(phase)
            if step == "connection.connect_tcp" and stage == "complete":
                self._seen.values["CONNECTED"] = True
                _note_peer(info.get("return_value"), self._seen)


def _note_peer(stream: Any, seen: Seen) -> None:
    address = stream.get_extra_info("server_addr") if stream is not None else None
    if isinstance(address, tuple) and address:
        seen.values["IP"] = str(address[0])


def _headers(check: HttpCheck, environ: Mapping[str, str]) -> dict[str, str]:
    headers = dict(check.headers)
    for header, variable in check.headers_env.items():
        headers[header] = env_value(environ, variable, f"the {header} header")
    return headers


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


#: Headers that go only to the check's origin, whatever the check says of them.
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


async def probe_http(
    check: HttpCheck,
    environ: Mapping[str, str],
    seen: Seen,
    clients: HttpClients | None = None,
) -> None:
    """Send the check's request: STATUS, RESPONSE_TIME (ms, to the end of the body read),
    BODY (the first 64 KiB as text), HEADERS (lower-cased names), IP, CONNECTED; timings
    connect, tls, first_byte (request sent to response headers), summed over redirects.
    Redirects are followed one by one: the headers from the environment (and Authorization
    and Cookie) go only to the check's own origin (scheme, host and port), never further
    once a redirect has left it."""
    headers = _headers(check, environ)
    secrets = http_secrets(check, environ)
    seen.values["CONNECTED"] = False
    owned = clients is None
    if clients is None:
        clients = HttpClients(max_connections=1)
    client = clients.client(check.verify_tls)
    try:
        await _exchange(check, client, headers, secrets, seen)
    except httpx.UnsupportedProtocol as exc:
        raise ProbeFailed("http", f"a redirect left HTTP: {hide(str(exc), secrets)}") from exc
    except httpx.TimeoutException as exc:
        raise ProbeFailed("timeout", f"{check.url} did not answer in time") from exc
    except (httpx.NetworkError, httpx.ProxyError) as exc:
        raise network_failure(exc, httpx.URL(check.url).netloc.decode()) from exc
    except (httpx.ProtocolError, httpx.DecodingError, httpx.InvalidURL) as exc:
        problem = hide(str(exc), secrets) or type(exc).__name__
        raise ProbeFailed("http", f"the HTTP exchange with {check.url} failed: {problem}") from exc
    finally:
        if owned:
            await clients.aclose()


async def _exchange(
    check: HttpCheck,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    secrets: list[str],
    seen: Seen,
) -> None:
    started = time.perf_counter()
    request = client.build_request(
        check.method,
        check.url,
        headers=headers,
        content=check.body,
        timeout=httpx.Timeout(check.timeout),
        extensions={"trace": _Tracer(seen)},
    )
    origin = _origin(request.url)
    private = (*check.headers_env, *_CREDENTIAL_HEADERS)
    redirects = 0
    while True:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            seen.values["CONNECTED"] = True
            following = response.next_request if check.follow_redirects else None
            if following is None:
                await _observe(response, secrets, seen)
                break
            redirects += 1
            if redirects > client.max_redirects:
                raise ProbeFailed("http", f"{check.url} redirected too many times")
            if _origin(following.url) != origin:
                for name in private:
                    following.headers.pop(name, None)
            await _drain(response)
            request = following
        finally:
            await response.aclose()
    seen.values["RESPONSE_TIME"] = (time.perf_counter() - started) * 1000.0


async def _drain(response: httpx.Response) -> None:
    """Read a redirect's body (a bounded part), so a small one leaves its connection for
    the next request."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= BODY_LIMIT:
            break


async def _observe(response: httpx.Response, secrets: list[str], seen: Seen) -> None:
    seen.values["STATUS"] = response.status_code
    seen.values["HEADERS"] = {
        name.lower(): hide(value, secrets) for name, value in response.headers.items()
    }
    if "IP" not in seen.values:  # a reused connection: ask the stream it runs on
        _note_peer(response.extensions.get("network_stream"), seen)
    raw = bytearray()
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) >= BODY_LIMIT:
            break
    body = _decode(bytes(raw[:BODY_LIMIT]), response.charset_encoding)
    seen.values["BODY"] = hide(body, secrets)
