"""The peers the probe tests talk to, on 127.0.0.1: an HTTP(S) server whose behaviour the
test flips, and a DNS server answering from a table (UDP, and TCP for truncated answers)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiohttp import web

from tests.loopback import HOST

Mode = Literal["healthy", "down", "slow", "wrong-body", "redirect-loop", "echo"]


@dataclass
class HttpTarget:
    """An aiohttp server on loopback whose answer to ``/health`` depends on ``mode``:
    healthy (200 "all good"), down (503), slow (answers after ``delay`` seconds),
    wrong-body (200 "maintenance"), redirect-loop (302 to itself), echo (200 with the
    request's Authorization header repeated in its body and an X-Echo header). With
    ``location`` set, ``/health`` redirects there (302) and ``/landing`` answers as the mode
    says."""

    mode: Mode = "healthy"
    delay: float = 30.0
    requests: list[str] = field(default_factory=list)
    #: The client's port of each request: requests on one connection share it.
    peers: list[int] = field(default_factory=list)
    port: int = 0
    scheme: str = "http"
    location: str | None = None
    #: The path and headers of each request, in order.
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: With it set, every answer sets this cookie (``Set-Cookie: session=...``).
    cookie: str | None = None

    @property
    def url(self) -> str:
        """The URL of ``/health``."""
        return f"{self.scheme}://{HOST}:{self.port}/health"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer as the mode says."""
        self.requests.append(request.method)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer[1] if peer else 0)
        self.received.append((request.path, dict(request.headers)))
        response = await self._answer(request)
        if self.cookie is not None:
            response.set_cookie("session", self.cookie)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.location is not None and request.path == "/health":
            raise web.HTTPFound(self.location)
        if self.mode == "down":
            return web.Response(status=503, text="unavailable")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "wrong-body":
            return web.Response(text="maintenance")
        if self.mode == "redirect-loop":
            raise web.HTTPFound("/health")
        if self.mode == "echo":
            auth = request.headers.get("Authorization", "")
            return web.Response(text=f"you sent {auth}", headers={"X-Echo": auth})
        return web.Response(text="all good", headers={"X-Served-By": "loopback"})


@contextlib.asynccontextmanager
async def http_target(tls: ssl.SSLContext | None = None) -> AsyncIterator[HttpTarget]:
    """Serve an HttpTarget (over TLS with ``tls``) until the block ends."""
    target = HttpTarget(scheme="https" if tls else "http")
    app = web.Application()
    app.router.add_route("*", "/health", target.handle)
    app.router.add_route("*", "/landing", target.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=tls)
    await site.start()
    target.port = runner.addresses[0][1]
    try:
        yield target
    finally:
        await runner.cleanup()


@dataclass
class DnsZone:
    """What the DNS server answers: (name, type) -> records in text form; a name not in it
    is NXDOMAIN, one in ``failing`` is SERVFAIL."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    udp_queries: int = 0
    tcp_queries: int = 0

    def answer(self, wire: bytes, udp: bool) -> bytes:
        """The response to a query, truncated (TC, no answer) over UDP past 512 bytes."""
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text()
        kind = dns.rdatatype.to_text(question.rdtype)
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, kind) in self.records:
            rrset = dns.rrset.from_text_list(name, 60, "IN", kind, self.records[name, kind])
            response.answer.append(rrset)
        full = response.to_wire()
        if udp and len(full) > 512:
            response.answer = []
            response.flags |= dns.flags.TC
            return response.to_wire()
        return full


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: DnsZone) -> None:
        self.zone = zone
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.zone.udp_queries += 1
        assert self.transport is not None
        self.transport.sendto(self.zone.answer(data, udp=True), addr)


@contextlib.asynccontextmanager
async def dns_server(zone: DnsZone) -> AsyncIterator[int]:
    """Serve ``zone`` over UDP and TCP on the same loopback port (yielded)."""
    loop = asyncio.get_running_loop()

    async def over_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            size = int.from_bytes(await reader.readexactly(2), "big")
            zone.tcp_queries += 1
            answer = zone.answer(await reader.readexactly(size), udp=False)
            writer.write(len(answer).to_bytes(2, "big") + answer)
            await writer.drain()
        writer.close()

    for _ in range(20):  # a UDP port whose TCP twin is free too
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(zone), local_addr=(HOST, 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(over_tcp, HOST, port)
        except OSError:
            transport.close()
            continue
        try:
            yield port
        finally:
            transport.close()
            tcp.close()
            await tcp.wait_closed()
        return
    raise RuntimeError("no free UDP and TCP port pair on loopback")
