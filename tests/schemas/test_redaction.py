"""redact_url: the secrets of URL-like settings go, the hosts, ports, users and databases stay."""

from __future__ import annotations

import pytest

from mendline.schemas.redaction import FILTERED, redact_url, url_secrets

F = FILTERED

# (what is shown unredacted, what must be shown, the secret that must not appear)
CASES = [
    # PostgreSQL URLs, percent-escaped as the RFC wants and as people write them
    ("postgresql://u:p%40ss@h/db", f"postgresql://u:{F}@h/db", "p%40ss"),
    ("postgresql://u:p@ss#w rd@h:5432/db", f"postgresql://u:{F}@h:5432/db", "ss#w"),
    ("postgresql://u:pa/ss@h:5432/db", f"postgresql://u:{F}@h:5432/db", "pa/ss"),
    (
        "postgresql://u:pa:ss@h:5432/db?sslmode=require",
        f"postgresql://u:{F}@h:5432/db?sslmode=require",
        "pa:ss",
    ),
    ("postgresql://u:p@ss:word@h/db", f"postgresql://u:{F}@h/db", "word"),
    ("postgresql://u:p@ss#word", f"postgresql://u:{F}@ss#word", "u:p@"),
    ("postgresql://u:two words@h:5432/db", f"postgresql://u:{F}@h:5432/db", "two words"),
    (
        "postgresql://u:p%20w%23@db.internal:6432/app",
        f"postgresql://u:{F}@db.internal:6432/app",
        "p%20w",
    ),
    ("postgresql://u:pw@[::1]:5432/db", f"postgresql://u:{F}@[::1]:5432/db", ":pw@"),
    ("postgresql://u:pw@/db?host=/run/pg", f"postgresql://u:{F}@/db?host=/run/pg", ":pw@"),
    ("postgresql://u:pw@h1:5432,h2:5433/db", f"postgresql://u:{F}@h1:5432,h2:5433/db", ":pw@"),
    ("postgresql://u@h/db?password=secret", f"postgresql://u@h/db?password={F}", "secret"),
    ("postgres://app:pa55word@127.0.0.1:abc/db", f"postgres://app:{F}@127.0.0.1:abc/db", "pa55"),
    # keyword DSNs
    ("host=h password=secret dbname=x", f"host=h password={F} dbname=x", "secret"),
    ("host=h password='a b' dbname=x", f"host=h password={F} dbname=x", "a b"),
    (r"host=h password='it\'s' dbname=x", f"host=h password={F} dbname=x", "it"),
    (r"host=db password=my\ secret user=app", f"host=db password={F} user=app", "secret"),
    ("host=h PASSWORD = s3cret port=5432", f"host=h PASSWORD = {F} port=5432", "s3cret"),
    # Kafka bootstrap lists with SASL user info, and a SASL URL
    ("alice:s3cret@k1:9093,k2:9093", f"alice:{F}@k1:9093,k2:9093", "s3cret"),
    ("SASL_SSL://alice:s3cret@k1:9093", f"SASL_SSL://alice:{F}@k1:9093", "s3cret"),
    # LLM base URLs: user info, a bare token as user, keys in the query
    ("https://user:sk-abc123@llm.internal/v1", f"https://user:{F}@llm.internal/v1", "sk-abc"),
    ("https://sk-abc123@llm.internal/v1", f"https://{F}@llm.internal/v1", "sk-abc"),
    (
        "https://gen.example.com/v1?key=AIza123&alt=json",
        f"https://gen.example.com/v1?key={F}&alt=json",
        "AIza",
    ),
    ("https://h/v1?api_key=abc123", f"https://h/v1?api_key={F}", "abc123"),
    ("https://h/v1?x=1&token=abc123#top", f"https://h/v1?x=1&token={F}#top", "abc123"),
    (
        "https://h/v1?api-version=2024-06-01&sig=zz9",
        f"https://h/v1?api-version=2024-06-01&sig={F}",
        "zz9",
    ),
    # Slack and PagerDuty URLs whose path is the secret
    (
        "https://hooks.slack.com/services/T0/B0/XyZ123",
        f"https://hooks.slack.com/services/{F}",
        "XyZ123",
    ),
    (
        "https://events.pagerduty.com/integration/abc123/enqueue",
        f"https://events.pagerduty.com/integration/{F}",
        "abc123",
    ),
    # inside messages and tracebacks
    (
        "cannot reach PostgreSQL at postgresql://app:pa55word@db:5432/x: refused",
        f"cannot reach PostgreSQL at postgresql://app:{F}@db:5432/x: refused",
        "pa55word",
    ),
    (
        "  File x\nValueError: 'postgresql://u:p@ss#w rd@h:5432/db'\n",
        f"  File x\nValueError: 'postgresql://u:{F}@h:5432/db'\n",
        "w rd",
    ),
]

# What has nothing to filter stays exactly as it is.
KEPT = [
    "postgresql://postgres@127.0.0.1:9/x: connection refused",
    "postgresql://h:5432/db failed; mail ops@example.org",
    "http://localhost:8080/v1",
    "https://api.openai.com/v1?api-version=2024-06-01",
    "https://events.pagerduty.com/v2/enqueue",
    "127.0.0.1:9092,kafka-2:9092",
    "host=db port=5432 dbname=mendline user=app sslmode=verify-full",
    "token_count=42 author=someone",
]


@pytest.mark.parametrize(("text", "shown", "secret"), CASES, ids=[c[0] for c in CASES])
def test_the_secret_goes_and_the_rest_stays(text: str, shown: str, secret: str) -> None:
    assert redact_url(text) == shown
    assert secret not in redact_url(text)


@pytest.mark.parametrize("text", KEPT)
def test_what_holds_no_secret_is_kept(text: str) -> None:
    assert redact_url(text) == text


def test_the_user_and_host_stay_after_a_url_with_a_password_and_an_address_later() -> None:
    text = "postgresql://u:pw@h/db failed for admin@example.com"
    assert redact_url(text) == f"postgresql://u:{F}@h/db failed for admin@example.com"


def test_known_secrets_are_filtered_wherever_they_appear() -> None:
    url = "postgresql://u:p%40ss w@h/db"
    secrets = url_secrets(url)
    assert "p@ss w" in secrets  # percent-decoded, as a driver would say it
    message = "invalid port in 'p@ss w', for host h"  # a driver's words, no URL in them
    assert redact_url(message, secrets) == f"invalid port in '{F}', for host h"
    assert redact_url("xyz abc", ["abc"]) == "xyz abc"  # under 4 characters: ordinary words


def test_redacting_twice_changes_nothing() -> None:
    for text, shown, _ in CASES:
        assert redact_url(shown) == shown, text
