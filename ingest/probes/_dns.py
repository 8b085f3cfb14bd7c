"""The dns probe: one query to a nameserver (the check's, else the system's), UDP with a
TCP retry when the answer is truncated."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from mendline.ingest.probes._run import ProbeFailed, Seen, network_failure
from mendline.schemas.checks import DnsCheck

__all__ = ["probe_dns"]


def _nameserver(spec: str) -> tuple[str, int]:
    """``host`` or ``host:port`` (``[v6]:port`` for an IPv6 address with a port)."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


async def _address(host: str, port: int) -> str:
    """``host`` as an IP address (a nameserver given by name is resolved first)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise network_failure(exc, f"the nameserver {host}") from exc
    return str(infos[0][4][0])


def _answers(response: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list[str]:
    found: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != rdtype:
            continue  # e.g. the CNAMEs on the way to the A records
        for rdata in rrset:
            if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                found.append(str(rdata.address))
            elif rdtype == dns.rdatatype.TXT:
                found.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
            else:
                found.append(rdata.to_text())
    return found


async def _servers(check: DnsCheck) -> list[tuple[str, int]]:
    if check.nameserver is not None:
        try:
            host, port = _nameserver(check.nameserver)
        except ValueError as exc:
            raise ProbeFailed("config", f"{check.nameserver!r} is not host:port") from exc
        return [(await _address(host, port), port)]
    try:
        system = dns.resolver.Resolver()
    except dns.exception.DNSException as exc:
        raise ProbeFailed("config", f"no system nameserver is configured ({exc})") from exc
    return [(str(server), system.port) for server in system.nameservers]


async def _ask(
    query: dns.message.Message, address: str, port: int, timeout: float
) -> dns.message.Message:
    """The response over UDP (TCP when truncated). The UDP socket is connected, so that a
    closed port's ICMP answer comes back as ConnectionRefusedError instead of a timeout."""
    backend = dns.asyncbackend.get_default_backend()
    family = dns.inet.af_for_address(address)
    sock = await backend.make_socket(  # type: ignore[no-untyped-call]
        family, socket.SOCK_DGRAM, 0, None, (address, port)
    )
    async with sock:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, address, timeout=timeout, port=port, udp_sock=sock
        )
    return response


async def probe_dns(check: DnsCheck, seen: Seen) -> None:
    """Ask for ``check.query``'s ``check.record_type`` records: DNS_RCODE (NOERROR,
    NXDOMAIN, SERVFAIL, ...), DNS_ANSWER (addresses, TXT strings, or each record's text),
    RESPONSE_TIME (ms). An NXDOMAIN or SERVFAIL answer is observed, not an error; only no
    answer at all is (timeout, refused). System nameservers are tried in turn."""
    rdtype = dns.rdatatype.from_text(check.record_type)
    try:
        query = dns.message.make_query(dns.name.from_text(check.query), rdtype)
    except dns.exception.DNSException as exc:
        raise ProbeFailed("dns", f"{check.query!r} is not a DNS name ({exc})") from exc
    failure: ProbeFailed | None = None
    for address, port in await _servers(check):
        target = f"the nameserver {address}:{port}"
        started = time.perf_counter()
        try:
            response = await _ask(query, address, port, check.timeout)
        except dns.exception.Timeout as exc:
            failure = ProbeFailed("timeout", f"{target} did not answer in time")
            failure.__cause__ = exc
            continue
        except (OSError, EOFError) as exc:
            failure = network_failure(exc, target)
            continue
        except dns.exception.DNSException as exc:
            failure = ProbeFailed("other", f"{target} sent an answer that cannot be read ({exc})")
            continue
        seen.timings["dns"] = time.perf_counter() - started
        seen.values["RESPONSE_TIME"] = seen.timings["dns"] * 1000.0
        seen.values["DNS_RCODE"] = dns.rcode.to_text(response.rcode())
        seen.values["DNS_ANSWER"] = _answers(response, rdtype)
        return
    raise failure or ProbeFailed("config", "no nameserver to ask")
