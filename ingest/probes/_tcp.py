"""The tcp probe: resolve the host, connect to its addresses in turn, and close."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from mendline.ingest.probes._run import Seen, network_failure
from mendline.schemas.checks import TcpCheck

__all__ = ["connect", "probe_tcp"]


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def connect(host: str, port: int, seen: Seen) -> socket.socket:
    """A socket connected to ``host:port`` (its addresses tried in the resolver's order);
    records the ``dns`` and ``connect`` timings and IP, CONNECTED; a failure is raised as a
    ProbeFailed."""
    loop = asyncio.get_running_loop()
    seen.values["CONNECTED"] = False
    target = _target(host, port)
    started = time.perf_counter()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise network_failure(exc, target) from exc
    seen.timings["dns"] = time.perf_counter() - started
    last: OSError | None = None
    connecting = time.perf_counter()
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        seen.timings["connect"] = time.perf_counter() - connecting
        seen.values["CONNECTED"] = True
        seen.values["IP"] = str(address[0])
        return sock
    assert last is not None  # getaddrinfo answers at least one address or raises
    raise network_failure(last, target) from last


async def probe_tcp(check: TcpCheck, seen: Seen) -> None:
    """Connect to the check's host and port: CONNECTED, IP, RESPONSE_TIME (connect, ms)."""
    sock = await connect(check.host, check.port, seen)
    with contextlib.closing(sock):
        seen.values["RESPONSE_TIME"] = seen.timings["connect"] * 1000.0
