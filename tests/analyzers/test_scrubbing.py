from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from mendline.analyzers.grouping.scrubbing import FILTERED, Scrubber, scrub
from mendline.schemas.errors import ConfigError

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Z1fUaF8kUrWqBIgFFHYh3m5q\n"
    "x0FVDRyEJEvzXx5zMlCCXkHTvXEAK1cH4lKMcGm3cGN0dBo0xvIyoXHVU8W3d6Xd\n"
    "-----END RSA PRIVATE KEY-----"
)
GITHUB_PAT = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
GITHUB_FINE = (
    "github_pat_11ABCDEFG0aBcDeFgHiJkLmN_"
    + "oPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678"
)
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

# A secret of each kind inside a string, and what it must become.
SECRET_TEXTS = [
    ("GET /orders failed: Bearer abc.def", "GET /orders failed: Bearer [Filtered]"),
    ("header was BEARER 9f8e7d6c5b4a", "header was BEARER [Filtered]"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [Filtered]"),
    ("authorization: Bearer abc123 rejected", "authorization: Bearer [Filtered] rejected"),
    (
        "cannot reach postgresql://app:s3cr3t-pw@db:5432/app",
        "cannot reach postgresql://app:[Filtered]@db:5432/app",
    ),
    ("redis://:hunter2@cache:6379/0 refused", "redis://:[Filtered]@cache:6379/0 refused"),
    ("charge of card 4111 1111 1111 1111 declined", "charge of card [Filtered] declined"),
    ("card=4242-4242-4242-4242", "card=[Filtered]"),
    ("amex 3782 822463 10005 expired", "amex [Filtered] expired"),
    ("mc 5555555555554444.", "mc [Filtered]."),
    ("card 4111 1111 1111 1111 12/25", "card [Filtered]/25"),
    (f"loaded key {PEM} from disk", "loaded key [Filtered] from disk"),
    (
        "truncated -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "truncated [Filtered]",
    ),
    (f"jwt {JWT} expired", "jwt [Filtered] expired"),
    ("aws AKIAIOSFODNN7EXAMPLE denied", "aws [Filtered] denied"),
    ("temporary ASIAY34FZKBOKMUTVV7A denied", "temporary [Filtered] denied"),
    (f"slack {SLACK} revoked", "slack [Filtered] revoked"),
    (f"github {GITHUB_PAT} revoked", "github [Filtered] revoked"),
    (f"github {GITHUB_FINE} revoked", "github [Filtered] revoked"),
    (f"stripe {STRIPE} rejected", "stripe [Filtered] rejected"),
    ("restricted rk_live_51HbcDEfGhIjKlMn0p rejected", "restricted [Filtered] rejected"),
    ("login failed password=hunter2", "login failed password=[Filtered]"),
    ("login failed PASSWORD=hunter2 for bob", "login failed PASSWORD=[Filtered] for bob"),
    ("GET /callback?token=abc123&state=xyz", "GET /callback?token=[Filtered]&state=xyz"),
    ('payload {"api_key": "abc def", "id": 7}', 'payload {"api_key": "[Filtered]", "id": 7}'),
    (
        'nested {\\"password\\": \\"p w\\", \\"u\\": 1}',
        'nested {\\"password\\": \\"[Filtered]\\", \\"u\\": 1}',
    ),
    ("X-Api-Key: abc123", "X-Api-Key: [Filtered]"),
    ("DB_PASSWORD: 'hunter2'", "DB_PASSWORD: '[Filtered]'"),
    ("client_secret=s3cr3t&grant_type=x", "client_secret=[Filtered]&grant_type=x"),
    (
        "Cookie: theme=dark; sessionid=abc; lang=en",
        "Cookie: [Filtered]; sessionid=[Filtered]; lang=en",
    ),
    ('API_KEY = "sk_test_abc123"', 'API_KEY = "[Filtered]"'),
    ('token := "abc123"', 'token := "[Filtered]"'),
    ("{:auth_token => 'abc123'}", "{:auth_token => '[Filtered]'}"),
    ("sentry dsn=https://abc@o1.ingest.sentry.io/1", "sentry dsn=[Filtered]"),
    ("token=" + JWT, "token=[Filtered]"),
    ("Пароль не подошёл: password=hunter2 ✓", "Пароль не подошёл: password=[Filtered] ✓"),
]

# Strings that hold no secret and must come through unchanged.
NOT_SECRETS = [
    "order 4111111111111112 shipped",  # 16 digits, fails Luhn
    "order 4111 1111 1111 1112 shipped",
    "at epoch ms 1714567890129",  # Luhn-valid, but no card starts with 17
    "batch 20240501123408 done",  # Luhn-valid compact timestamp, no card starts with 20
    "failed to authorize payment",
    "the token expired",
    "request 3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f failed",
    "etag d41d8cd98f00b204e9800998ecf8427e",
    "at 2024-05-01T12:34:56.123456Z",
    "GET https://api.example.com/v1/orders?limit=10 returned 502",
    "mail sent to bob@example.com via smtp://mail.example.com:25",
    "missing bearer token",
    "Bearer",
    "scheme was Bearer ",
    "if password == expected:",
    "KeyError: 'token'",
    "std::token::parse failed",
    "total 1234.56 EUR",
    "timezone Asia/Tokyo",
    "session.commit()",
    "phone +4915112345678",
]

EVENT: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "0" * 32,
    "timestamp": "2024-05-01T12:34:56.123456Z",
    "service": "checkout",
    "environment": "production",
    "level": "error",
    "message": "Failed to process order 84213 for customer 1192: upstream returned HTTP 502",
    "exceptions": [
        {
            "type": "ConnectionError",
            "value": "HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded",
            "frames": [
                {
                    "filename": "/app/orders.py",
                    "function": "submit",
                    "lineno": 10 + i,
                    "context_line": f"response = client.post(url, json=payload, timeout={i})",
                    "in_app": True,
                }
                for i in range(3)
            ],
        }
    ],
    "context": {"path": "/api/v1/orders/84213", "method": "POST", "attempt": 3},
    "tags": {"region": "eu-west-1", "team": "checkout"},
}


@pytest.mark.parametrize(("text", "expected"), SECRET_TEXTS)
def test_secrets_inside_strings_are_filtered(text: str, expected: str) -> None:
    assert Scrubber().scrub_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), SECRET_TEXTS)
def test_scrubbing_twice_changes_nothing_more(text: str, expected: str) -> None:
    assert Scrubber().scrub_text(expected) == expected


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_strings_without_secrets_are_left_alone(text: str) -> None:
    assert Scrubber().scrub_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "DB_PASSWORD",
        "passwd",
        "X-Auth-Token",
        "Authorization",
        "Set-Cookie",
        "cookie",
        "sessionid",
        "privateKey",
        "private-key",
        "api-key",
        "apiKey",
        "client_secret",
        "csrftoken",
        "SENTRY_DSN",
        "aws_credentials",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert Scrubber().is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["user", "order_id", "path", "attempt", "region", "message", "action", "keys"]
)
def test_ordinary_keys(key: str) -> None:
    assert not Scrubber().is_secret_key(key)


def test_values_under_secret_keys_are_filtered_whole_at_any_depth() -> None:
    value = {
        "user": "bob",
        "password": "hunter2",
        "headers": {"Authorization": "Bearer abc", "Accept": "json"},
        "credentials": {"user": "bob", "pin": 1234},
        "items": [{"id": 1, "api_key": ["a", "b"]}, ("x", "token=abc")],
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "missing": None,
    }
    assert Scrubber().scrub_value(value) == {
        "user": "bob",
        "password": FILTERED,
        "headers": {"Authorization": FILTERED, "Accept": "json"},
        "credentials": FILTERED,
        "items": [{"id": 1, "api_key": FILTERED}, ["x", "token=[Filtered]"]],
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "missing": None,
    }


def test_authorize_in_a_value_is_not_a_secret_key() -> None:
    value = {"action": "authorize", "step": "token refresh"}
    assert Scrubber().scrub_value(value) == value


def test_scrub_value_does_not_modify_its_input() -> None:
    value = {"password": "x", "nested": {"msg": "password=y", "list": ["token=z"]}}
    before = copy.deepcopy(value)
    scrubbed = Scrubber().scrub_value(value)
    assert value == before
    assert scrubbed["nested"]["list"] == ["token=[Filtered]"]


def test_scrub_is_scrub_value_with_the_default_scrubber() -> None:
    assert scrub({"password": "x", "note": "Bearer abc"}) == {
        "password": FILTERED,
        "note": "Bearer [Filtered]",
    }
    assert scrub("login password=hunter2") == "login password=[Filtered]"
    assert scrub(42) == 42


def test_values_nested_absurdly_deep_are_filtered_without_recursion_errors() -> None:
    deep: Any = "password=hunter2 in the depths"
    for _ in range(5000):
        deep = {"a": [deep]}
    scrubbed = Scrubber().scrub_value(deep)
    assert "hunter2" not in repr(scrubbed)
    shallow = {"a": {"b": {"c": ["kept"]}}}
    assert Scrubber().scrub_value(shallow) == shallow


def test_extra_keys_are_matched_like_the_built_in_ones() -> None:
    scrubber = Scrubber(extra_keys=["ssn", "X-Internal-Id"])
    assert scrubber.is_secret_key("customer_SSN")
    assert scrubber.is_secret_key("x_internal_id")
    assert scrubber.is_secret_key("password")
    assert scrubber.scrub_text("lookup ssn=123-45-6789 failed") == "lookup ssn=[Filtered] failed"
    assert scrubber.scrub_value({"ssn": "123"}) == {"ssn": FILTERED}
    assert not Scrubber().is_secret_key("ssn")


def test_extra_patterns_filter_their_whole_match() -> None:
    scrubber = Scrubber(extra_patterns=[r"\b\d{3}-\d{2}-\d{4}\b", r"^internal-\d+$"])
    assert scrubber.scrub_text("ssn 123-45-6789 found") == "ssn [Filtered] found"
    assert scrubber.scrub_text("internal-42") == FILTERED
    assert scrubber.scrub_text("not internal-42") == "not internal-42"
    assert Scrubber().scrub_text("ssn 123-45-6789 found") == "ssn 123-45-6789 found"


def test_extra_patterns_apply_to_each_field_of_an_event() -> None:
    event = copy.deepcopy(EVENT)
    event["tags"]["build"] = "internal-42"
    Scrubber(extra_patterns=[r"^internal-\d+$"]).scrub_event(event)
    assert event["tags"]["build"] == FILTERED
    assert event["tags"]["region"] == "eu-west-1"


def test_an_invalid_extra_pattern_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=re.escape("'(unclosed'")):
        Scrubber(extra_patterns=["ok", "(unclosed"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra_patterns": ["a*"]},  # matches the empty string: would fill every gap
        {"extra_keys": [""]},  # the empty key is in every key
        {"extra_keys": "ssn"},  # a string, not a list of them
        {"extra_patterns": [b"abc"]},
    ],
)
def test_unusable_configuration_is_a_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Scrubber(**kwargs)


def test_an_event_without_secrets_is_left_as_it_was() -> None:
    event = copy.deepcopy(EVENT)
    assert Scrubber().scrub_event(event) is event
    assert event == EVENT


def test_scrub_event_scrubs_every_field_in_place() -> None:
    event = copy.deepcopy(EVENT)
    event["message"] = "login failed password=hunter2"
    exc = event["exceptions"][0]
    exc["value"] = "cannot reach postgresql://app:s3cr3t@db/app"
    exc["frames"][1]["context_line"] = f'STRIPE_KEY = "{STRIPE}"'
    event["context"]["headers"] = {"Authorization": "Bearer abc", "Accept": "json"}
    event["context"]["note"] = "card 4111 1111 1111 1111"
    event["tags"]["api_key"] = "k-123"
    event["tags"]["note"] = "Bearer abc"
    frames = exc["frames"]
    returned = Scrubber().scrub_event(event)
    assert returned is event
    assert event["exceptions"][0] is exc and exc["frames"] is frames  # modified in place
    assert event["message"] == "login failed password=[Filtered]"
    assert exc["value"] == "cannot reach postgresql://app:[Filtered]@db/app"
    assert frames[1]["context_line"] == 'STRIPE_KEY = "[Filtered]"'
    assert frames[0] == EVENT["exceptions"][0]["frames"][0]
    assert event["context"] == {
        **EVENT["context"],
        "headers": {"Authorization": FILTERED, "Accept": "json"},
        "note": "card [Filtered]",
    }
    assert event["tags"] == {**EVENT["tags"], "api_key": FILTERED, "note": "Bearer [Filtered]"}


FIELDS = ["message", "value", "context_line", "context", "nested context", "tag"]

# In a source line, a value that is not in a string literal is code (an identifier, a call),
# never filtered: these rows stay as they are there (their secrets are in other fields' text).
UNQUOTED_IN_CODE = {
    "Authorization: Basic dXNlcjpwYXNz",
    "login failed password=hunter2",
    "login failed PASSWORD=hunter2 for bob",
    "X-Api-Key: abc123",
    "client_secret=s3cr3t&grant_type=x",
    "Cookie: theme=dark; sessionid=abc; lang=en",
    "sentry dsn=https://abc@o1.ingest.sentry.io/1",
    "Пароль не подошёл: password=hunter2 ✓",
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("text", "expected"), SECRET_TEXTS)
def test_each_kind_of_secret_is_found_in_each_field_of_an_event(
    text: str, expected: str, field: str
) -> None:
    event = copy.deepcopy(EVENT)
    exc = event["exceptions"][0]
    if field == "message":
        event["message"] = text
    elif field == "value":
        exc["value"] = text
    elif field == "context_line":
        exc["frames"][2]["context_line"] = text
    elif field == "context":
        event["context"]["detail"] = text
    elif field == "nested context":
        event["context"]["request"] = {"log": ["first", {"line": text}]}
    else:
        event["tags"]["detail"] = text
    Scrubber().scrub_event(event)
    found = {
        "message": lambda: event["message"],
        "value": lambda: exc["value"],
        "context_line": lambda: exc["frames"][2]["context_line"],
        "context": lambda: event["context"]["detail"],
        "nested context": lambda: event["context"]["request"]["log"][1]["line"],
        "tag": lambda: event["tags"]["detail"],
    }[field]()
    if field == "context_line" and text in UNQUOTED_IN_CODE:
        expected = text
    assert found == expected


def test_scrub_event_tolerates_missing_and_odd_fields() -> None:
    scrubber = Scrubber()
    assert scrubber.scrub_event({}) == {}
    odd: dict[str, Any] = {
        "message": None,
        "exceptions": [None, {"value": 3, "frames": None}, {"frames": [None, {}]}],
        "context": ["password=x"],
        "tags": None,
    }
    scrubber.scrub_event(odd)
    assert odd == {
        "message": None,
        "exceptions": [None, {"value": 3, "frames": None}, {"frames": [None, {}]}],
        "context": ["password=[Filtered]"],
        "tags": None,
    }


def test_results_do_not_depend_on_what_was_scrubbed_before() -> None:
    scrubber = Scrubber()
    for _ in range(3):
        assert scrubber.scrub_text("session.commit()") == "session.commit()"
        assert scrubber.scrub_text("session=abc") == "session=[Filtered]"
        assert scrubber.is_secret_key("session_id")
        assert scrubber.scrub_value({"session_id": "x"}) == {"session_id": FILTERED}


def test_keys_and_custom_fingerprints_are_scrubbed_too() -> None:
    event = {
        "message": "m",
        "context": {"backends": {"postgres://admin:hunter2@db/x": "down"}},
        "tags": {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl": "x"},
        "fingerprint": ["{{ default }}", "ghp_" + "a" * 36],
    }
    out = Scrubber().scrub_event(event)
    text = repr(out)
    for secret in ("hunter2", "eyJhbGciOiJIUzI1NiJ9", "ghp_aaaa"):
        assert secret not in text
    assert out["context"]["backends"] == {"postgres://admin:[Filtered]@db/x": "down"}
    assert out["fingerprint"][0] == "{{ default }}"


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        ((), (), True),
        ((["tenant_secret"], []), (["tenant_secret"], []), True),
        ((["tenant_secret"], []), (["TENANT-SECRET"], []), True),  # keys match alike
        ((["a", "b"], []), (["b", "a"], []), True),
        ((), (["tenant_secret"], []), False),
        ((), ([], [r"ACME-\d+"]), False),
        (([], [r"ACME-\d+"]), ([], [r"ACME-\d{2,}"]), False),
        ((["acme"], []), ([], ["acme"]), False),  # a key is not a pattern
    ],
)
def test_the_rules_id_says_whether_two_scrubbers_filter_alike(
    one: tuple[list[str], list[str]], two: tuple[list[str], list[str]], same: bool
) -> None:
    first, second = Scrubber(*one), Scrubber(*two)
    assert first.rules_id is not None and len(first.rules_id) == 32
    assert (first.rules_id == second.rules_id) is same
