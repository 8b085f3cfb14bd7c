"""Recall and precision of the scrubber: provider credentials, structures that are not dicts,
every text field of an event, and what must survive (source code, counters, ids)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mendline.analyzers.grouping import CREDENTIALS, FILTERED, Credential, Scrubber

PEM_LINES = [
    "-----BEGIN PRIVATE KEY-----",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    "-----END PRIVATE KEY-----",
]


@pytest.mark.parametrize("credential", CREDENTIALS, ids=lambda c: c.provider)
def test_each_providers_credential_goes_and_its_near_miss_stays(credential: Credential) -> None:
    scrubber = Scrubber()
    scrubbed = scrubber.scrub_text(f"request failed with {credential.example} (retrying)")
    assert credential.example not in scrubbed
    assert FILTERED in scrubbed
    assert scrubbed.endswith(" (retrying)")
    assert scrubber.scrub_text(credential.near_miss) == credential.near_miss


def test_the_provider_table_covers_the_providers_teams_use() -> None:
    names = " ".join(credential.provider for credential in CREDENTIALS)
    for provider in (
        "OpenAI",
        "Anthropic",
        "Google API",
        "Google OAuth",
        "AWS access key",
        "AWS secret",
        "Azure storage",
        "Azure shared access",
        "Slack token",
        "Slack app",
        "Slack webhook",
        "SendGrid",
        "Twilio",
        "Stripe",
        "GitLab",
        "Hugging Face",
        "npm",
        "PyPI",
        "GitHub",
    ):
        assert provider in names


# Texts with a secret, and what they must become.
SECRETS = [
    ("GET /cb?code=4/0AX4XfWhQ&state=xyz", "GET /cb?code=[Filtered]&state=xyz"),
    (
        "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20240501&X-Amz-Signature=9f2c0e1d&X-Amz-Expires=300",
        "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=[Filtered]&X-Amz-Signature=[Filtered]&X-Amz-Expires=300",
    ),
    (
        "https://app.example.com/cb#access_token=ya29.abc&token_type=bearer&expires_in=3600",
        "https://app.example.com/cb#access_token=[Filtered]&token_type=bearer&expires_in=3600",
    ),
    (
        "https://x.example.com/y?id_token=eyX.abc&a=1",
        "https://x.example.com/y?id_token=[Filtered]&a=1",
    ),
    (
        "https://x.example.com/y?access%5Ftoken=zzz",
        "https://x.example.com/y?access%5Ftoken=[Filtered]",
    ),
    (
        "https://x.example.com/login?next=https%3A%2F%2Fy%2Fcb%3Ftoken%3Dabc123&lang=en",
        "https://x.example.com/login?next=[Filtered]&lang=en",
    ),
    (
        "https://x.example.com/cb?%70assword=hunter2&a=1",
        "https://x.example.com/cb?%70assword=[Filtered]&a=1",
    ),
    (
        "https://x.example.com/cb?pass%77ord=hunter2xyz",
        "https://x.example.com/cb?pass%77ord=[Filtered]",
    ),
    (
        "https://x.example.com/cb?%74oken=abcdef123456",
        "https://x.example.com/cb?%74oken=[Filtered]",
    ),
    (
        "https://x.example.com/cb?api%5Fkey=abc123def",
        "https://x.example.com/cb?api%5Fkey=[Filtered]",
    ),
    (
        "https://x.example.com/cb?api%2Dkey=abc123def",
        "https://x.example.com/cb?api%2Dkey=[Filtered]",
    ),
    ("https://x.example.com/cb?sig%6Eature=abc", "https://x.example.com/cb?sig%6Eature=[Filtered]"),
    ("blob?sv=2022-11-02&sig=p9k3Xv0yTq%2BZr1wO8m", "blob?sv=2022-11-02&sig=[Filtered]"),
    ("pwd=s3cret", "pwd=[Filtered]"),
    ("curl -u bob:hunter2 https://x", "curl -u bob:[Filtered] https://x"),
    ("curl --user=bob:hunter2 https://x", "curl --user=bob:[Filtered] https://x"),
    ("connecting with pass: hunter2", "connecting with pass: [Filtered]"),
    ("MYSQL_PWD=abc now", "MYSQL_PWD=[Filtered] now"),
    ("db_passwd=abc", "db_passwd=[Filtered]"),
    ("signature=abc123", "signature=[Filtered]"),
    ("AccountKey=abc;EndpointSuffix=x", "AccountKey=[Filtered];EndpointSuffix=x"),
    ("credentials: admin:admin", "credentials: [Filtered]"),
    ('{"private_key": "xyz"}', '{"private_key": "[Filtered]"}'),
    ("password: 1234", "password: [Filtered]"),
    ("invoice 4539578763621486 failed", "invoice [Filtered] failed"),
    ("card_number=4539578763621486", "card_number=[Filtered]"),
    (
        '{"type": "service_account", "private_key_id": "1a2b3c", '
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n'
        '-----END PRIVATE KEY-----\\n"}',
        '{"type": "service_account", "private_key_id": "[Filtered]", '
        '"private_key": "[Filtered]\\n"}',
    ),
]

# Texts without a secret: they must come through unchanged.
KEEPERS = [
    "token_count=42",
    "session_timeout: 30",
    "max_tokens=4096 exceeded",
    "tokenizer=gpt2",
    "author=bob",
    "auth_method=password",
    "oauth_provider=google",
    "is_authenticated=true",
    "bypass=1",
    "docker run -u 1000:1000 img",
    "mysql -u root db",
    "signal=9 received",
    "passed: 12, failed: 0",
    "order_id=4539578763621486",
    "https://api.example.com/v1/orders?limit=10&page=2#top",
    "https://x.example.com/search?q%5Bname%5D=shoes&page%5Fsize=20",
    "UPDATE users SET password = %s WHERE id = %s",
    "INSERT INTO users (email, password) VALUES (?, ?)",
    "sk-learn and risk-free",
    "design_signature_version: 2",
    'api_key_id: "kid_1"',
    'credit_card_last4: "4242"',
    'card_brand: "visa"',
]

# Source lines: code, whose identifiers stay; literal values that are secrets go.
CODE_LINES = [
    ("session = Session()", "session = Session()"),
    ('token = request.headers.get("X-Token")', 'token = request.headers.get("X-Token")'),
    ("author = book.author", "author = book.author"),
    ('password = form["password"]', 'password = form["password"]'),
    ("db.connect(user=user, password=password)", "db.connect(user=user, password=password)"),
    (
        'headers = {"Authorization": f"Bearer {token}"}',
        'headers = {"Authorization": f"Bearer {token}"}',
    ),
    ('cache_key = f"session:{sid}"', 'cache_key = f"session:{sid}"'),
    ('log.info(f"password={pw!r}")', 'log.info(f"password={pw!r}")'),
    ('url = f"{base}?token={token}"', 'url = f"{base}?token={token}"'),
    ('url = f"{base}?token=abc123&s={s}"', 'url = f"{base}?token=[Filtered]&s={s}"'),
    ('password = "hunter2"', 'password = "[Filtered]"'),
    (
        'url = "https://x.example.com/cb?token=abc&s=1"',
        'url = "https://x.example.com/cb?token=[Filtered]&s=1"',
    ),
    ('OPENAI_KEY = "sk-proj-' + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4" + '"', 'OPENAI_KEY = "[Filtered]"'),
]


@pytest.mark.parametrize(("text", "expected"), SECRETS)
def test_secrets_go(text: str, expected: str) -> None:
    scrubber = Scrubber()
    assert scrubber.scrub_text(text) == expected
    assert scrubber.scrub_text(expected) == expected


@pytest.mark.parametrize("text", KEEPERS)
def test_keepers_stay(text: str) -> None:
    assert Scrubber().scrub_text(text) == text


@pytest.mark.parametrize(("line", "expected"), CODE_LINES)
def test_source_lines_keep_their_code_and_lose_literal_secrets(line: str, expected: str) -> None:
    event = _event()
    event["exceptions"][0]["frames"][0]["context_line"] = line
    Scrubber().scrub_event(event)
    assert event["exceptions"][0]["frames"][0]["context_line"] == expected


def test_keys_are_judged_by_meaning_and_numbers_only_under_keys_naming_the_secret() -> None:
    value = {
        "token_count": 42,
        "max_tokens": 4096,
        "is_authenticated": True,
        "session_expired": False,
        "has_token": True,
        "author": "Ann",
        "tokenizer": "gpt2",
        "oauth_provider": "google",
        "auth_method": "password",
        "maxTokens": 5,
        "order_id": "4539578763621486",
        "invoice_no": "4539578763621486",
        "password": 1234,
        "api_key": 98765,
        "tokens": 3,
        "session_id": "abc",
        "sessionId": "abc",
        "X-Amz-Security-Token": "abc",
        "mysql_pwd": "abc",
        "sig": "abc",
        "tokens_list": [1, 2, 3],
        "api_key_id": "kid_1",
        "credit_card_last4": "4242",
        "card_brand": "visa",
        "payment_type": "card",
    }
    assert Scrubber().scrub_value(value) == {
        **value,
        "password": FILTERED,
        "api_key": FILTERED,
        "session_id": FILTERED,
        "sessionId": FILTERED,
        "X-Amz-Security-Token": FILTERED,
        "mysql_pwd": FILTERED,
        "sig": FILTERED,
    }
    assert Scrubber().scrub_value({"tokens": [1, 2, 3], "password": [1, 2]}) == {
        "tokens": [1, 2, 3],
        "password": FILTERED,
    }
    assert Scrubber().scrub_value({"tokens": ["a", 2]}) == {"tokens": FILTERED}
    # The same number under a key that does not say it is an id is a card.
    assert Scrubber().scrub_value({"card": "4539578763621486"}) == {"card": FILTERED}


def test_lists_of_pairs_lose_the_values_named_by_secret_keys() -> None:
    headers = [
        (b"authorization", b"Bearer abc"),
        (b"accept", b"application/json"),
        ("Cookie", "sid=1"),
        ["X-Api-Key", "k-123"],
        ("token_count", 3),
    ]
    assert Scrubber().scrub_value({"headers": headers}) == {
        "headers": [
            [b"authorization", FILTERED],
            [b"accept", b"application/json"],
            ["Cookie", FILTERED],
            ["X-Api-Key", FILTERED],
            ["token_count", 3],
        ]
    }
    query = [["q", "shoes"], ["access_token", "abc"]]
    assert Scrubber().scrub_value(query) == [["q", "shoes"], ["access_token", FILTERED]]
    # Name/value entries: Kubernetes env lists, header lists, AWS tags.
    entries = {
        "env_list": [{"name": "DB_PASSWORD", "value": "hunter4"}, {"name": "HOME", "value": "/"}],
        "headers": [{"name": "Authorization", "value": "abc"}],
        "Tags": [{"Key": "api_key", "Value": "x"}, {"Key": "team", "Value": "core"}],
    }
    assert Scrubber().scrub_value(entries) == {
        "env_list": [{"name": "DB_PASSWORD", "value": FILTERED}, {"name": "HOME", "value": "/"}],
        "headers": [{"name": "Authorization", "value": FILTERED}],
        "Tags": [{"Key": "api_key", "Value": FILTERED}, {"Key": "team", "Value": "core"}],
    }
    # A 2-item list on its own is a list of names, not a pair.
    assert Scrubber().scrub_value({"fields": ["password", "email"]}) == {
        "fields": ["password", "email"]
    }


def test_argv_loses_the_values_of_secret_flags() -> None:
    argv = [
        "mysql", "-u", "root", "-p", "hunter2", "--token", "abc", "--api-key=xyz",
        "--password", "pw", "--verbose", "-p", "8080:80", "--secret", "--dry-run",
    ]  # fmt: skip
    assert Scrubber().scrub_value({"argv": argv}) == {
        "argv": [
            "mysql",
            "-u",
            "root",
            "-p",
            FILTERED,
            "--token",
            FILTERED,
            "--api-key=[Filtered]",
            "--password",
            FILTERED,
            "--verbose",
            "-p",
            "8080:80",
            "--secret",
            "--dry-run",
        ]
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["mysql", "-uroot", "-phunter2", "db"], ["mysql", "-uroot", f"-p{FILTERED}", "db"]),
        (["mysql", "-p8080", "-p8080:80"], ["mysql", "-p8080", "-p8080:80"]),
        (
            ["curl", "-u", "bob:hunter2", "https://x"],
            ["curl", "-u", f"bob:{FILTERED}", "https://x"],
        ),
        (["wget", "--user", "bob:pw9"], ["wget", "--user", f"bob:{FILTERED}"]),
        (["mysql", "-u", "root"], ["mysql", "-u", "root"]),
        (["docker", "run", "-u", "1000:1000"], ["docker", "run", "-u", "1000:1000"]),
        (["redis-cli", "-a", "hunter2"], ["redis-cli", "-a", FILTERED]),
        (["/usr/bin/redis-cli", "-a", "hunter2"], ["/usr/bin/redis-cli", "-a", FILTERED]),
        (["cp", "-a", "src", "dst"], ["cp", "-a", "src", "dst"]),
        (["/usr/bin/mysqldump", "-psecret9"], ["/usr/bin/mysqldump", f"-p{FILTERED}"]),
        (["gcc", "-pthread", "-pedantic", "a.c"], ["gcc", "-pthread", "-pedantic", "a.c"]),
        (["find", ".", "-print"], ["find", ".", "-print"]),
    ],
)
def test_argv_forms_lose_their_passwords(argv: list[str], expected: list[str]) -> None:
    assert Scrubber().scrub_value(argv) == expected


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("UPDATE users SET password = %s WHERE id = %s", ["hunter2", 7], [FILTERED, 7]),
        (
            "INSERT INTO users (email, password_hash, api_key) VALUES (%s, %s, %s), (%s, %s, %s)",
            ["a@x", "h1", "k1", "b@x", "h2", "k2"],
            ["a@x", FILTERED, FILTERED, "b@x", FILTERED, FILTERED],
        ),
        ("SELECT * FROM t WHERE token = $2 AND id = $1", [7, "tok"], [7, FILTERED]),
        ("UPDATE t SET name = ? WHERE token = ?", ["Ann", "tok"], ["Ann", FILTERED]),
        ("SELECT * FROM users WHERE id = %s", [4], [4]),
        ("SELECT * FROM author WHERE token_count > %s", [4], [4]),
    ],
)
def test_sql_parameters_at_secret_columns_go(sql: str, params: list[Any], expected: Any) -> None:
    scrubbed = Scrubber().scrub_value({"sql": sql, "params": params})
    assert scrubbed == {"sql": sql, "params": expected}


def test_bytes_are_checked_as_text() -> None:
    scrubber = Scrubber()
    assert scrubber.scrub_value({"body": b"password=hunter2&a=1"}) == {
        "body": "password=[Filtered]&a=1"
    }
    assert scrubber.scrub_value({"body": b"\xff plain"}) == {"body": b"\xff plain"}


def test_a_private_key_split_over_list_items_is_filtered_to_its_end_line() -> None:
    value = {"lines": ["before", *PEM_LINES, "after"]}
    assert Scrubber().scrub_value(value) == {
        "lines": ["before", FILTERED, FILTERED, FILTERED, FILTERED, "after"]
    }


def test_a_private_key_split_over_frames_and_fields_is_filtered() -> None:
    event = _event()
    frames = event["exceptions"][0]["frames"]
    for frame, line in zip(frames, PEM_LINES[:3], strict=True):
        frame["context_line"] = line
    event["context"]["rest"] = f"{PEM_LINES[3]} then ok"
    Scrubber().scrub_event(event)
    assert [frame["context_line"] for frame in frames] == [FILTERED] * 3
    assert event["context"]["rest"] == f"{FILTERED} then ok"


TEXT_FIELDS = [
    ("service", lambda e: e),
    ("environment", lambda e: e),
    ("release", lambda e: e),
    ("host", lambda e: e),
    ("logger", lambda e: e),
    ("type", lambda e: e["exceptions"][0]),
    ("module", lambda e: e["exceptions"][0]),
    ("filename", lambda e: e["exceptions"][0]["frames"][1]),
    ("function", lambda e: e["exceptions"][0]["frames"][1]),
    ("module", lambda e: e["exceptions"][0]["frames"][1]),
]


@pytest.mark.parametrize(("name", "where"), TEXT_FIELDS)
def test_every_stored_text_field_is_scrubbed(name: str, where: Any) -> None:
    token = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
    event = _event()
    where(event)[name] = f"x-{token}"
    scrubber = Scrubber()
    assert not scrubber.is_clean(event)
    scrubber.scrub_event(event)
    assert where(event)[name] == f"x-{FILTERED}"


def _event() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": "0" * 32,
        "timestamp": "2024-05-01T12:34:56.123456Z",
        "service": "checkout",
        "environment": "production",
        "release": "1.2.3",
        "host": "web-1",
        "level": "error",
        "logger": "app.orders",
        "message": "Failed to process order 84213",
        "exceptions": [
            {
                "type": "ConnectionError",
                "module": "requests.exceptions",
                "value": "Max retries exceeded",
                "frames": [
                    {
                        "filename": f"/app/orders{i}.py",
                        "module": f"app.orders{i}",
                        "function": "submit",
                        "lineno": 10 + i,
                        "context_line": f"response = client.post(url, timeout={i})",
                        "in_app": True,
                    }
                    for i in range(3)
                ],
            }
        ],
        "context": {"path": "/api/v1/orders/84213", "attempt": 3},
        "tags": {"region": "eu-west-1"},
    }


def _cases() -> list[dict[str, Any]]:
    """Events built from every case of this module: secrets, keepers and structures."""
    events = []
    for text in [*(t for t, _ in SECRETS), *KEEPERS, *(c.example for c in CREDENTIALS)]:
        for field in ("message", "context", "context_line"):
            event = _event()
            if field == "message":
                event["message"] = text
            elif field == "context":
                event["context"]["detail"] = text
            else:
                event["exceptions"][0]["frames"][2]["context_line"] = text
            events.append(event)
    for line, _ in CODE_LINES:
        event = _event()
        event["exceptions"][0]["frames"][0]["context_line"] = line
        events.append(event)
    structures: list[Any] = [
        {"headers": [["authorization", "Bearer abc"]]},
        {"headers": [["accept", "json"]]},
        {"argv": ["run", "--token", "abc"]},
        {"argv": ["run", "-p", "8080"]},
        {"argv": ["mysql", "-uroot", "-phunter2", "db"]},
        {"argv": ["mysql", "-p8080"]},
        {"argv": ["curl", "-u", "bob:hunter2", "https://x"]},
        {"argv": ["docker", "-u", "1000:1000"]},
        {"argv": ["redis-cli", "-a", "hunter2"]},
        {"argv": ["cp", "-a", "x"]},
        {"sql": "UPDATE users SET password = %s", "params": ["x"]},
        {"sql": "SELECT 1 WHERE id = %s", "params": [1]},
        {"lines": PEM_LINES},
        {"token_count": 42, "password": FILTERED},
        {"password": 1234},
        {"tokens": [1, 2, 3]},
        {"tokens": ["abc", 2]},
        {"api_key_id": "kid_1", "credit_card_last4": "4242", "card_brand": "visa"},
        {"args": ["x", 1], "msg": "retry"},
        {"env_list": [{"name": "DB_PASSWORD", "value": "hunter4"}]},
        {"env_list": [{"name": "HOME", "value": "/root"}]},
        {"h": [{"name": "Authorization", "value": "abc"}]},
        {"Tags": [{"Key": "api_key", "Value": "x"}]},
    ]
    for context in structures:
        event = _event()
        event["context"] = context
        events.append(event)
    for name in ("service", "host"):
        event = _event()
        event[name] = "internal-42"  # matched by the user pattern below, alone only
        events.append(event)
    return events


@pytest.mark.parametrize("patterns", [[], [r"^internal-\d+$"]])
@pytest.mark.parametrize("event", _cases())
def test_is_clean_agrees_with_scrub_event(event: dict[str, Any], patterns: list[str]) -> None:
    scrubber = Scrubber(extra_patterns=patterns)
    clean = scrubber.is_clean(event)
    scrubbed = scrubber.scrub_event(copy.deepcopy(event))
    assert clean == (scrubbed == event)
    # Scrubbed output is clean: a second pass (the consumer's) keeps it as it is.
    assert Scrubber(extra_patterns=patterns).is_clean(scrubbed)


def test_hostile_strings_after_an_open_key_and_in_code_lines_come_back() -> None:
    # Without atomic matching, the base64 run would be split into lines in every possible
    # way (exponential); without a running scan, each pair would rescan the line (quadratic).
    run = "A" * 5000 + "!"
    value = Scrubber().scrub_value([PEM_LINES[0], run, PEM_LINES[3]])
    assert value == [FILTERED, run, FILTERED]
    event = _event()
    event["exceptions"][0]["frames"][0]["context_line"] = "f('x') " + "password=a " * 500
    Scrubber().scrub_event(event)
    assert event["exceptions"][0]["frames"][0]["context_line"].count("password=a") == 500
