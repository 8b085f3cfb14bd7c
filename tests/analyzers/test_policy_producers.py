"""Which producer may claim which service: the signature check, as a table."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess

import pytest

from mendline.analyzers.policy import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    ProducerAuthMode,
    ProducerKeys,
    check_producer,
    parse_producer_keys,
    sign_value,
    signature_headers,
)
from mendline.schemas.errors import ConfigError

VALUE = b'{"schema_version":1,"service":"billing","message":"boom"}'
OLD = b"billing-old-key-0123456789"
NEW = b"billing-new-key-0123456789"
OTHER = b"checkout-key-0123456789abc"
KEYS = ProducerKeys({"billing": (NEW, OLD), "checkout": (OTHER,)})
EXHAUSTIVE = ProducerKeys(KEYS.keys, exhaustive=True)


def signed(key: bytes, value: bytes = VALUE, key_id: str = "billing") -> list[tuple[str, bytes]]:
    return signature_headers(key, key_id, value)


def sig(text: str) -> list[tuple[str, bytes | None]]:
    return [(SIGNATURE_HEADER, text.encode())]


GOOD = sign_value(NEW, VALUE)

# headers, service, keys, the reason, and the action in warn and enforce mode
CASES: list[tuple[str, list[tuple[str, bytes | None]], str, ProducerKeys, str, str, str]] = [
    ("signed with the new key", [*signed(NEW)], "billing", KEYS, "signed", "accept", "accept"),
    ("signed with the old key", [*signed(OLD)], "billing", KEYS, "signed", "accept", "accept"),
    ("no key id header", sig(GOOD), "billing", KEYS, "signed", "accept", "accept"),
    ("unsigned", [], "billing", KEYS, "missing_signature", "warn", "reject"),
    (
        "other headers only",
        [("trace", b"1")],
        "billing",
        KEYS,
        "missing_signature",
        "warn",
        "reject",
    ),
    ("another service's key", [*signed(OTHER)], "billing", KEYS, "bad_signature", "warn", "reject"),
    (
        "signed over other bytes",
        [*signed(NEW, VALUE + b" ")],
        "billing",
        KEYS,
        "bad_signature",
        "warn",
        "reject",
    ),
    (
        "signed as checkout, claims billing",
        [*signed(OTHER, key_id="checkout")],
        "billing",
        KEYS,
        "wrong_key_id",
        "warn",
        "reject",
    ),
    (
        "upper-case hex",
        sig(GOOD.upper().replace("V1", "v1")),
        "billing",
        KEYS,
        "malformed_signature",
        "warn",
        "reject",
    ),
    ("no version", sig(GOOD[3:]), "billing", KEYS, "malformed_signature", "warn", "reject"),
    ("v2", sig("v2=" + GOOD[3:]), "billing", KEYS, "malformed_signature", "warn", "reject"),
    ("short", sig(GOOD[:-2]), "billing", KEYS, "malformed_signature", "warn", "reject"),
    (
        "not ascii",
        [(SIGNATURE_HEADER, "v1=é".encode())],
        "billing",
        KEYS,
        "malformed_signature",
        "warn",
        "reject",
    ),
    (
        "null header",
        [(SIGNATURE_HEADER, None)],
        "billing",
        KEYS,
        "malformed_signature",
        "warn",
        "reject",
    ),
    (
        "two signatures, one good",
        [*sig(GOOD), *sig(sign_value(OTHER, VALUE))],
        "billing",
        KEYS,
        "malformed_signature",
        "warn",
        "reject",
    ),
    ("unlisted, unsigned", [], "cron", KEYS, "no_keys", "accept", "accept"),
    (
        "unlisted, signed",
        [*signed(NEW, key_id="cron")],
        "cron",
        KEYS,
        "no_keys",
        "accept",
        "accept",
    ),
    ("unlisted, exhaustive", [], "cron", EXHAUSTIVE, "unlisted", "warn", "reject"),
    (
        "unlisted, exhaustive, signed",
        [*signed(NEW, key_id="cron")],
        "cron",
        EXHAUSTIVE,
        "unlisted",
        "warn",
        "reject",
    ),
    ("listed, exhaustive", [*signed(OLD)], "billing", EXHAUSTIVE, "signed", "accept", "accept"),
    (
        "service case matters",
        [*signed(NEW, key_id="Billing")],
        "Billing",
        EXHAUSTIVE,
        "unlisted",
        "warn",
        "reject",
    ),
]


@pytest.mark.parametrize(
    ("headers", "service", "keys", "reason", "warn", "enforce"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_the_verdict_by_mode(
    headers: list[tuple[str, bytes | None]],
    service: str,
    keys: ProducerKeys,
    reason: str,
    warn: str,
    enforce: str,
) -> None:
    modes: dict[ProducerAuthMode, str] = {"off": "accept", "warn": warn, "enforce": enforce}
    for mode, action in modes.items():
        verdict = check_producer(headers, VALUE, service, keys, mode)
        assert verdict.action == action, mode
        assert verdict.reason == ("not_checked" if mode == "off" else reason), mode


def test_an_empty_or_missing_value_is_checked_as_no_bytes() -> None:
    headers = [(SIGNATURE_HEADER, sign_value(NEW, b"").encode())]
    assert check_producer(headers, None, "billing", KEYS, "enforce").reason == "signed"
    assert check_producer(headers, VALUE, "billing", KEYS, "enforce").reason == "bad_signature"


def test_details_bound_what_an_attacker_wrote() -> None:
    service = "x" * 10_000 + "\n"
    verdict = check_producer([], VALUE, service, EXHAUSTIVE, "enforce")
    assert verdict.action == "reject" and len(verdict.detail) < 200 and "\n" not in verdict.detail


def test_the_signature_is_hmac_sha256_of_the_value_in_lower_hex() -> None:
    expected = hmac.new(NEW, VALUE, hashlib.sha256).hexdigest()
    assert sign_value(NEW, VALUE) == "v1=" + expected
    assert signature_headers(NEW, "billing", VALUE) == [
        (SIGNATURE_HEADER, f"v1={expected}".encode()),
        (KEY_ID_HEADER, b"billing"),
    ]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl here")
def test_the_shell_recipe_in_the_producer_docs_gives_the_same_signature() -> None:
    key = "k" * 32
    out = subprocess.run(
        ["sh", "-c", 'printf \'%s\' "$VALUE" | openssl dgst -sha256 -hmac "$KEY" -r'],
        env={"VALUE": VALUE.decode(), "KEY": key, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "v1=" + out.split()[0] == sign_value(key.encode(), VALUE)


def test_a_key_file_lists_one_key_or_several_per_service() -> None:
    keys = parse_producer_keys(
        {"exhaustive": True, "services": {"billing": ["n" * 16, "o" * 16], "cron": "c" * 20}}
    )
    assert keys.exhaustive is True
    assert keys.keys == {"billing": (b"n" * 16, b"o" * 16), "cron": (b"c" * 20,)}
    assert parse_producer_keys({}) == ProducerKeys({}, exhaustive=False)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"exhaustive": "yes"}, "exhaustive must be true or false"),
        ({"services": ["billing"]}, "must be a table"),
        ({"services": {"billing": []}}, "needs a key or a list of keys"),
        ({"services": {"billing": 12345678901234567}}, "needs a key or a list of keys"),
        ({"services": {"billing": "short-secret"}}, "at least 16 characters"),
        ({"services": {"billing": ["n" * 16, 7]}}, "at least 16 characters"),
        ({"service": {"billing": "n" * 16}}, "unknown key(s) service"),
    ],
)
def test_a_bad_key_file_is_a_config_error_that_never_shows_a_key(
    data: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_producer_keys(data, "keys.toml")
    assert says in str(caught.value) and str(caught.value).startswith("keys.toml: ")
    assert "short-secret" not in str(caught.value) and "n" * 16 not in str(caught.value)
