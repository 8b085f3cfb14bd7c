"""The dns probe against a DNS server on loopback that answers from a table the test
writes (UDP, and TCP after a truncated UDP answer)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from mendline.devstack import free_port
from mendline.ingest.probes import observe
from mendline.schemas.checks import DnsCheck
from mendline.schemas.settings import Settings
from tests.loopback import HOST
from tests.probe_servers import DnsZone, dns_server

pytestmark = pytest.mark.integration

SETTINGS = Settings()


def dns_check(port: int, query: str, **fields: Any) -> DnsCheck:
    return DnsCheck(kind="dns", name="d", query=query, nameserver=f"{HOST}:{port}", **fields)


async def test_an_a_record_is_answered_with_its_addresses_and_noerror() -> None:
    zone = DnsZone(records={("api.example.", "A"): ["10.0.0.1", "10.0.0.2"]})
    async with dns_server(zone) as port:
        seen = await observe(dns_check(port, "api.example"), SETTINGS, {})
    assert seen.error is None
    assert seen.values["DNS_RCODE"] == "NOERROR"
    assert sorted(seen.values["DNS_ANSWER"]) == ["10.0.0.1", "10.0.0.2"]  # type: ignore[arg-type]
    assert isinstance(seen.values["RESPONSE_TIME"], float)
    assert zone.udp_queries == 1 and zone.tcp_queries == 0


async def test_txt_records_are_their_text_and_other_types_their_text_form() -> None:
    zone = DnsZone(
        records={
            ("example.", "TXT"): ['"v=spf1 -all"'],
            ("example.", "MX"): ["10 mail.example."],
        }
    )
    async with dns_server(zone) as port:
        txt = await observe(dns_check(port, "example", record_type="TXT"), SETTINGS, {})
        mx = await observe(dns_check(port, "example.", record_type="MX"), SETTINGS, {})
    assert txt.values["DNS_ANSWER"] == ["v=spf1 -all"]
    assert mx.values["DNS_ANSWER"] == ["10 mail.example."]


async def test_nxdomain_and_servfail_are_observed_not_errors() -> None:
    zone = DnsZone(records={("api.example.", "A"): ["10.0.0.1"]}, failing={"broken.example."})
    async with dns_server(zone) as port:
        missing = await observe(dns_check(port, "gone.example"), SETTINGS, {})
        failing = await observe(dns_check(port, "broken.example"), SETTINGS, {})
        no_aaaa = await observe(dns_check(port, "api.example", record_type="AAAA"), SETTINGS, {})
    assert (missing.error, missing.values["DNS_RCODE"], missing.values["DNS_ANSWER"]) == (
        None,
        "NXDOMAIN",
        [],
    )
    assert (failing.error, failing.values["DNS_RCODE"]) == (None, "SERVFAIL")
    assert (no_aaaa.values["DNS_RCODE"], no_aaaa.values["DNS_ANSWER"]) == ("NOERROR", [])


async def test_a_truncated_udp_answer_is_asked_again_over_tcp() -> None:
    many = [f'"{"x" * 200} {i}"' for i in range(10)]
    zone = DnsZone(records={("big.example.", "TXT"): many})
    async with dns_server(zone) as port:
        seen = await observe(dns_check(port, "big.example", record_type="TXT"), SETTINGS, {})
    assert seen.error is None
    assert len(seen.values["DNS_ANSWER"]) == 10  # type: ignore[arg-type]
    assert zone.udp_queries == 1 and zone.tcp_queries == 1


async def test_a_nameserver_that_never_answers_is_a_timeout() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))  # receives, never answers
    try:
        port = silent.getsockname()[1]
        seen = await observe(dns_check(port, "api.example", timeout=0.5), SETTINGS, {})
    finally:
        silent.close()
    assert seen.error_kind == "timeout"
    assert "DNS_RCODE" not in seen.values


async def test_a_nameserver_port_with_nothing_behind_it_is_refused() -> None:
    # The query's UDP socket is connected, so the ICMP "port unreachable" reaches it.
    seen = await observe(dns_check(free_port(), "api.example"), SETTINGS, {})
    assert seen.error_kind == "refused"
    assert seen.error is not None and "refused" in seen.error


async def test_a_nameserver_written_badly_is_a_config_error() -> None:
    check = DnsCheck(kind="dns", name="d", query="x.example", nameserver="127.0.0.1:fifty")
    seen = await observe(check, SETTINGS, {})
    assert seen.error_kind == "config" and "127.0.0.1:fifty" in (seen.error or "")


async def test_many_queries_at_once_each_get_their_answer() -> None:
    zone = DnsZone(records={(f"h{i}.example.", "A"): [f"10.0.1.{i}"] for i in range(20)})
    async with dns_server(zone) as port:
        results = await asyncio.gather(
            *(observe(dns_check(port, f"h{i}.example"), SETTINGS, {}) for i in range(20))
        )
    assert [r.values["DNS_ANSWER"] for r in results] == [[f"10.0.1.{i}"] for i in range(20)]
