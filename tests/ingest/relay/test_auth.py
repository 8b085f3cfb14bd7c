"""Authentication found where Relay looks for it, refused as Relay refuses it, and DSNs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mendline.ingest.relay._auth import (
    Dsn,
    SentryAuth,
    check_envelope_dsn,
    format_dsn,
    parse_dsn,
    request_auth,
)
from mendline.schemas.errors import RelayRefused

KEY = "abc123abc123abc123abc123abc12312"
OTHER = "0123456789abcdef0123456789abcdef"
DSN = f"http://{KEY}@127.0.0.1:9111/prefix/42"
NODE_QUERY = f"sentry_version=7&sentry_key={KEY}&sentry_client=sentry.javascript.node%2F11.12.0"
PYTHON_HEADER = f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2.76.0"


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("headers", "query", "envelope_header", "auth"),
    [
        # what the SDKs send (observed)
        ({"X-Sentry-Auth": PYTHON_HEADER}, "", None, SentryAuth(KEY, 7, "sentry.python/2.76.0")),
        ({}, NODE_QUERY, None, SentryAuth(KEY, 7, "sentry.javascript.node/11.12.0")),
        (
            {
                "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=sentry.go/0.30, "
                f"sentry_key={KEY}"
            },
            "",
            None,
            SentryAuth(KEY, 7, "sentry.go/0.30"),
        ),
        # header names in any case; the "Sentry" word in any case
        ({"x-sentry-auth": f"sentry sentry_key={KEY}"}, "", None, SentryAuth(KEY)),
        ({"X-SENTRY-AUTH": f"SENTRY sentry_key={KEY}"}, "", None, SentryAuth(KEY)),
        ({"Authorization": f"Sentry sentry_key={KEY}"}, "", None, SentryAuth(KEY)),
        ({"Authorization": basic(f"{KEY}:")}, "", None, SentryAuth(KEY)),
        ({"Authorization": basic(f"{KEY}:secret")}, "", None, SentryAuth(KEY)),
        # sentry-types' parsing: pairs trimmed, unknown keys and bare words skipped, the last
        # of repeated keys wins, a version's integer part, no version is 7
        (
            {"X-Sentry-Auth": f"Sentry  sentry_key = {KEY} ,sentry_secret=s, nonsense, x=1"},
            "",
            None,
            SentryAuth(KEY),
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key=nope, sentry_key={KEY}"},
            "",
            None,
            SentryAuth(KEY),
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7.0"},
            "",
            None,
            SentryAuth(KEY, 7),
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=8"},
            "",
            None,
            SentryAuth(KEY, 8),
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=5"},
            "",
            None,
            SentryAuth(KEY, 5),
        ),
        # the key's flags (Relay's ProjectKey::parse_with_flags) are taken off
        ({}, f"sentry_key={KEY}.no-cache", None, SentryAuth(KEY)),
        # a header that is not Sentry's is not authentication: the query is the one source
        (
            {"Authorization": "Bearer abc", "X-Sentry-Auth": "token"},
            f"sentry_key={KEY}",
            None,
            SentryAuth(KEY),
        ),
        # a Basic header that does not decode is not a source either
        ({"Authorization": "Basic !!!"}, f"sentry_key={KEY}", None, SentryAuth(KEY)),
        ({"Authorization": basic("no colon")}, f"sentry_key={KEY}", None, SentryAuth(KEY)),
        # the envelope header's dsn, only when nothing else is there
        ({}, "", {"dsn": DSN}, SentryAuth(KEY)),
        (
            {},
            "",
            {"dsn": DSN, "version": 7, "client": "sentry.go/0.30"},
            SentryAuth(KEY, 7, "sentry.go/0.30"),
        ),
        (
            {},
            NODE_QUERY,
            {"dsn": f"http://{OTHER}@h/42"},
            SentryAuth(KEY, 7, "sentry.javascript.node/11.12.0"),
        ),
        # a query without sentry_ parameters is not a source
        ({}, "foo=bar", {"dsn": DSN}, SentryAuth(KEY)),
    ],
)
def test_where_authentication_is_found(
    headers: dict[str, str], query: str, envelope_header: dict[str, Any] | None, auth: SentryAuth
) -> None:
    assert request_auth(headers, query, envelope_header) == auth


@pytest.mark.parametrize(
    ("headers", "query", "envelope_header", "status", "reason", "detail"),
    [
        ({}, "", None, 401, "missing_auth", "missing authorization information"),
        (
            {"User-Agent": "x"},
            "a=b",
            None,
            401,
            "missing_auth",
            "missing authorization information",
        ),
        ({}, "", {}, 401, "missing_auth", "bad envelope authentication header"),
        ({}, "", {"dsn": "not a dsn"}, 401, "bad_auth", "bad envelope authentication header"),
        ({}, "", {"dsn": 42}, 401, "bad_auth", "bad envelope authentication header"),
        (
            {},
            "",
            {"dsn": DSN, "version": "7"},
            401,
            "bad_auth",
            "bad envelope authentication header",
        ),
        # two sources at once
        (
            {"X-Sentry-Auth": PYTHON_HEADER},
            NODE_QUERY,
            None,
            401,
            "bad_auth",
            "multiple authorization payloads detected",
        ),
        (
            {"X-Sentry-Auth": PYTHON_HEADER, "Authorization": f"Sentry sentry_key={KEY}"},
            "",
            None,
            401,
            "bad_auth",
            "multiple authorization payloads detected",
        ),
        (
            {"X-Sentry-Auth": PYTHON_HEADER, "Authorization": basic(f"{KEY}:")},
            "",
            None,
            401,
            "bad_auth",
            "multiple authorization payloads detected",
        ),
        (
            {"Authorization": basic(f"{KEY}:")},
            NODE_QUERY,
            None,
            401,
            "bad_auth",
            "multiple authorization payloads detected",
        ),
        # what does not parse
        ({"X-Sentry-Auth": "Sentry "}, "", None, 401, "bad_auth", "bad x-sentry-auth header"),
        (
            {"X-Sentry-Auth": "Sentry sentry_key="},
            "",
            None,
            401,
            "bad_auth",
            "bad x-sentry-auth header",
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=seven"},
            "",
            None,
            401,
            "bad_auth",
            "bad x-sentry-auth header",
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=-1"},
            "",
            None,
            401,
            "bad_auth",
            "bad x-sentry-auth header",
        ),
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=70000"},
            "",
            None,
            401,
            "bad_auth",
            "bad x-sentry-auth header",
        ),
        ({}, "sentry_version=7", None, 401, "bad_auth", "bad x-sentry-auth header"),
        ({}, "x=sentry_key", None, 401, "bad_auth", "bad x-sentry-auth header"),  # as Relay
        # the header is read before another source is looked at
        (
            {"X-Sentry-Auth": "Sentry sentry_version=7"},
            NODE_QUERY,
            None,
            401,
            "bad_auth",
            "bad x-sentry-auth header",
        ),
        # keys that are not 32 ASCII characters
        ({}, "sentry_key=short", None, 400, "bad_key", "bad sentry DSN public key"),
        ({}, f"sentry_key={KEY}0", None, 400, "bad_key", "bad sentry DSN public key"),
        ({}, "sentry_key=" + "é" * 32, None, 400, "bad_key", "bad sentry DSN public key"),
        ({"Authorization": basic("short:")}, "", None, 400, "bad_key", "bad sentry DSN public key"),
        # versions Relay does not speak
        (
            {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=9"},
            "",
            None,
            400,
            "unsupported_version",
            "unsupported protocol version (9)",
        ),
        (
            {},
            "",
            {"dsn": DSN, "version": 10},
            400,
            "unsupported_version",
            "unsupported protocol version (10)",
        ),
    ],
)
def test_authentication_refused_as_relay_refuses_it(
    headers: dict[str, str],
    query: str,
    envelope_header: dict[str, Any] | None,
    status: int,
    reason: str,
    detail: str,
) -> None:
    with pytest.raises(RelayRefused) as refused:
        request_auth(headers, query, envelope_header)
    assert (refused.value.status, refused.value.reason, refused.value.detail) == (
        status,
        reason,
        detail,
    )


def test_the_first_of_repeated_headers_is_read() -> None:
    headers = [("X-Sentry-Auth", f"Sentry sentry_key={KEY}"), ("x-sentry-auth", "Sentry x=1")]

    class Repeated(dict[str, str]):
        def items(self) -> Any:
            return iter(headers)

    assert request_auth(Repeated(), "") == SentryAuth(KEY)


# --- the envelope header's dsn against the request ----------------------------------------


@pytest.mark.parametrize(
    ("header", "key", "project_id"),
    [
        ({}, KEY, 42),  # no dsn: nothing to compare
        ({"dsn": DSN}, KEY, 42),
        ({"dsn": f"https://{KEY}:secret@sentry.example.com/42"}, KEY, 42),
        ({"dsn": DSN}, KEY, None),  # the legacy /api/store/: no project in the URL
    ],
)
def test_an_envelope_dsn_that_matches(
    header: dict[str, Any], key: str, project_id: int | None
) -> None:
    check_envelope_dsn(header, key, project_id)


@pytest.mark.parametrize(
    ("header", "key", "project_id", "causes"),
    [
        ({"dsn": DSN}, KEY, 43, ("project id header mismatch between envelope and request",)),
        ({"dsn": DSN}, OTHER, 42, ("public key header mismatch between envelope and request",)),
        ({"dsn": DSN}, OTHER, None, ("public key header mismatch between envelope and request",)),
        ({"dsn": "http://h/42"}, KEY, 42, ("invalid envelope header", "the DSN has no public key")),
    ],
)
def test_an_envelope_dsn_that_does_not_match(
    header: dict[str, Any], key: str, project_id: int | None, causes: tuple[str, ...]
) -> None:
    with pytest.raises(RelayRefused) as refused:
        check_envelope_dsn(header, key, project_id)
    assert (refused.value.status, refused.value.reason) == (400, "bad_envelope")
    assert refused.value.detail == "invalid event envelope"
    assert refused.value.causes == causes


# --- DSNs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "dsn"),
    [
        ("http://127.0.0.1:9111", f"http://{KEY}@127.0.0.1:9111/42"),
        ("http://127.0.0.1:9111/", f"http://{KEY}@127.0.0.1:9111/42"),
        ("http://127.0.0.1:9111/prefix", f"http://{KEY}@127.0.0.1:9111/prefix/42"),
        ("http://127.0.0.1:9111/prefix/", f"http://{KEY}@127.0.0.1:9111/prefix/42"),
        ("https://errors.example.com/a/b", f"https://{KEY}@errors.example.com/a/b/42"),
        ("https://[::1]:8443", f"https://{KEY}@[::1]:8443/42"),
    ],
)
def test_format_and_parse_a_dsn(public_url: str, dsn: str) -> None:
    assert format_dsn(public_url, KEY, 42) == dsn
    parsed = parse_dsn(dsn)
    assert parsed == Dsn(public_url.rstrip("/"), KEY, 42)
    assert format_dsn(parsed.public_url, parsed.public_key, parsed.project_id) == dsn


def test_a_dsns_prefix_is_where_the_sdks_post() -> None:
    # Python: "%s://%s%sapi/%s/%s/"; JavaScript: `${base}${path}/api/` (notes, section 3)
    dsn = parse_dsn(format_dsn("http://127.0.0.1:9111/prefix", KEY, 42))
    assert f"{dsn.public_url}/api/{dsn.project_id}/envelope/" == (
        "http://127.0.0.1:9111/prefix/api/42/envelope/"
    )


@pytest.mark.parametrize(
    ("public_url", "key", "project_id"),
    [
        ("ftp://example.com", KEY, 42),
        ("example.com", KEY, 42),
        ("http://", KEY, 42),
        ("http://user:pw@example.com", KEY, 42),
        ("http://example.com/?a=1", KEY, 42),
        ("http://example.com:99999", KEY, 42),
        ("http://example.com:port", KEY, 42),
        ("http://example.com/#x", KEY, 42),
        ("http://example.com", "short", 42),
        ("http://example.com", "abc-23abc123abc123abc123abc12312", 42),  # not \w: the JS SDK
        ("http://example.com", KEY, 0),
        ("http://example.com", KEY, True),
    ],
)
def test_format_dsn_refuses(public_url: str, key: str, project_id: int) -> None:
    with pytest.raises(ValueError):
        format_dsn(public_url, key, project_id)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a url",
        f"ftp://{KEY}@example.com/42",
        "http://example.com/42",  # no key
        f"http://{KEY}@/42",  # no host
        "http://short@example.com/42",
        f"http://{KEY}@example.com/",  # no project
        f"http://{KEY}@example.com/42/",  # a trailing slash, which SDKs refuse too
        f"http://{KEY}@example.com/abc",
        f"http://{KEY}@example.com:port/42",
        f"http://{KEY}@example.com/٤٢",  # digits, but not ASCII ones
    ],
)
def test_parse_dsn_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_dsn(text)
