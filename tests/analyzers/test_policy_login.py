"""The dashboard's door, decided purely: table tests of passwords, the back-off of failed
logins, session timeouts, local redirects, forwarded headers, Origin and CSRF checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from mendline.analyzers.policy.login import (
    ACCOUNT_LONGEST_WAIT,
    FORGET_FAILURES_AFTER,
    LONGEST_WAIT,
    FailureCount,
    TrustedProxies,
    account_key,
    address_key,
    after_failure,
    after_forgiving,
    backoff,
    csrf_refusal,
    expected_origin,
    forwarded_client,
    forwarded_scheme,
    hash_password,
    host_refusal,
    local_path,
    longest_wait,
    needs_touch,
    new_session_secret,
    origin_of,
    origin_refusal,
    pair_key,
    password_refusal,
    session_end,
    verify_password,
    wait_left,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("name", "password", "refused"),
    [
        ("alice", "short", "a password has at least 12 characters"),
        ("alice", "x" * 11, "a password has at least 12 characters"),
        ("alice", "x" * 12, None),
        ("alice", "x" * 1025, "a password has at most 1024 characters"),
        ("alice-the-admin", "Alice-The-Admin", "a password may not be the user's name"),
        ("alice-the-admin", " alice-the-admin ", "a password may not be the user's name"),
        ("alice", "correct horse battery staple", None),
        ("alice", "\ud800" * 12, "a password must be text (it holds an unpaired surrogate)"),
    ],
)
def test_what_may_be_a_password(name: str, password: str, refused: str | None) -> None:
    assert password_refusal(name, password) == refused


def test_passwords_are_argon2id_with_the_library_defaults() -> None:
    stored = hash_password("correct horse battery staple")
    defaults = PasswordHasher()
    assert stored.startswith("$argon2id$")
    assert f"m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}" in stored
    assert hash_password("correct horse battery staple") != stored  # salted
    assert verify_password(stored, "correct horse battery staple").matches
    assert not verify_password(stored, "correct horse battery stapler").matches
    assert not verify_password("not a hash", "anything").matches


def test_a_hash_with_weaker_parameters_asks_to_be_made_again() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a long password")
    verdict = verify_password(weak, "a long password")
    assert verdict.matches and verdict.needs_rehash
    assert not verify_password(weak, "another password").needs_rehash
    assert not verify_password(hash_password("a long password"), "a long password").needs_rehash


@pytest.mark.parametrize(
    ("failures", "free", "wait"),
    [
        (0, 5, 0),
        (4, 5, 0),
        (5, 5, 1),
        (6, 5, 2),
        (7, 5, 4),
        (14, 5, 512),
        (15, 5, 900),  # 1024 s, capped at 15 minutes
        (500, 5, 900),
        (1, 1, 1),
        (2, 1, 2),
    ],
)
def test_backoff_doubles_after_the_free_failures_up_to_15_minutes(
    failures: int, free: int, wait: int
) -> None:
    assert backoff(failures, free) == timedelta(seconds=wait)
    assert backoff(failures, free) <= LONGEST_WAIT


def test_failures_count_up_block_and_are_forgotten_after_a_quiet_day() -> None:
    first = after_failure(None, NOW, free=2)
    assert first == FailureCount(1, NOW, None)
    second = after_failure(first, NOW + S, free=2)
    assert second == FailureCount(2, NOW + S, NOW + 2 * S)  # the 2nd free one: wait 2**0 s
    third = after_failure(second, NOW + 3 * S, free=2)
    assert third == FailureCount(3, NOW + 3 * S, NOW + 5 * S)
    later = NOW + 3 * S + FORGET_FAILURES_AFTER
    assert after_failure(third, later, free=2) == FailureCount(1, later, None)


def test_the_wait_left_is_the_longest_block_in_whole_seconds() -> None:
    account = FailureCount(6, NOW, NOW + 2 * S)
    address = FailureCount(9, NOW, NOW + timedelta(milliseconds=30_200))
    assert wait_left([account, address, None], NOW) == 31
    assert wait_left([account], NOW + timedelta(milliseconds=1_999)) == 1
    assert wait_left([account], NOW + 2 * S) is None
    assert wait_left([FailureCount(1, NOW, None), None], NOW) is None
    assert wait_left([], NOW) is None


@pytest.mark.parametrize(
    ("failures", "forgiven", "left", "blocked_for"),
    [
        (3, 3, None, None),  # all made on the account that logged in: the address is clean
        (3, 5, None, None),
        (7, 2, 5, 8),  # guesses at other accounts stay, and the wait they earn (2**(5-2))
        (7, 0, 7, 32),
    ],
)
def test_a_success_forgives_the_address_only_its_own_accounts_failures(
    failures: int, forgiven: int, left: int | None, blocked_for: int | None
) -> None:
    before = FailureCount(failures, NOW, NOW + timedelta(seconds=2 ** (failures - 2)))
    after = after_forgiving(before, forgiven, NOW + S, free=2)
    if left is None:
        assert after is None
    else:
        assert after == FailureCount(left, NOW, NOW + (blocked_for or 0) * S)


def test_forgiving_below_the_free_failures_lifts_the_block() -> None:
    before = FailureCount(6, NOW, NOW + timedelta(seconds=16))
    after = after_forgiving(before, 5, NOW + S, free=5)
    assert after == FailureCount(1, NOW, None)
    still = after_forgiving(FailureCount(8, NOW, NOW + 8 * S), 1, NOW + S, free=5)
    assert still == FailureCount(7, NOW, NOW + 4 * S)
    served = after_forgiving(FailureCount(8, NOW, NOW + 8 * S), 1, NOW + 5 * S, free=5)
    assert served == FailureCount(7, NOW, None)  # its wait already passed


def test_the_keys_are_bounded_and_tell_an_account_from_an_address() -> None:
    assert account_key("alice").startswith("user:")
    assert account_key("alice") != account_key("alicE")
    assert address_key("10.0.0.5") == "addr:10.0.0.5"
    assert pair_key("alice", "10.0.0.5").startswith("pair:")
    assert pair_key("alice", "10.0.0.5") != pair_key("alice", "10.0.0.6")
    assert len(account_key("x" * 10_000)) == len(account_key("x"))
    assert len(pair_key("x" * 10_000, "y" * 10_000)) <= 400


def test_a_name_typed_is_kept_only_as_a_digest() -> None:
    # A password typed into the name field must not sit in the table for a day.
    typed = "correct-horse-battery-staple"
    assert typed not in account_key(typed) and typed not in pair_key(typed, "10.0.0.5")


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("2001:db8::1", "2001:db8::ffff:1234", True),  # one client holds a whole /64
        ("2001:db8:0:1::1", "2001:db8::1", False),
        ("::ffff:192.0.2.1", "192.0.2.1", True),  # IPv4-mapped: the IPv4 address
        ("192.0.2.1", "192.0.2.2", False),
        ("unknown", "unknown", True),
    ],
)
def test_addresses_are_counted_by_what_one_client_holds(one: str, other: str, same: bool) -> None:
    assert (address_key(one) == address_key(other)) is same
    assert (pair_key("alice", one) == pair_key("alice", other)) is same


@pytest.mark.parametrize(
    ("key", "longest"),
    [
        (account_key("alice"), ACCOUNT_LONGEST_WAIT),
        (address_key("10.0.0.5"), LONGEST_WAIT),
        (pair_key("alice", "10.0.0.5"), LONGEST_WAIT),
    ],
)
def test_an_account_waits_a_minute_at_most_an_address_longer(key: str, longest: timedelta) -> None:
    assert longest_wait(key) == longest
    assert backoff(40, 5, longest_wait(key)) == longest


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("created", "last_seen", "expires", "disabled", "ended"),
    [
        (-HOUR, -S, 10 * HOUR, None, None),
        (-HOUR, -12 * HOUR, 10 * HOUR, None, "idle"),
        (-HOUR, -12 * HOUR + S, 10 * HOUR, None, None),
        (-HOUR, -S, timedelta(0), None, "expired"),
        (-168 * HOUR, -S, 10 * HOUR, None, "expired"),  # older than the longest (lowered)
        (-HOUR, -S, 10 * HOUR, -S, "disabled"),
        (-HOUR, -S, 10 * HOUR, HOUR, None),  # a disabling yet to come does not count
    ],
)
def test_a_session_ends_by_its_timeouts_or_its_users_disabling(
    created: timedelta,
    last_seen: timedelta,
    expires: timedelta,
    disabled: timedelta | None,
    ended: str | None,
) -> None:
    assert (
        session_end(
            now=NOW,
            created_at=NOW + created,
            last_seen_at=NOW + last_seen,
            expires_at=NOW + expires,
            idle=12 * HOUR,
            longest=168 * HOUR,
            user_disabled_at=None if disabled is None else NOW + disabled,
        )
        == ended
    )


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not needs_touch(NOW, NOW - 59 * S)
    assert needs_touch(NOW, NOW - 60 * S)


def test_session_secrets_are_random_and_43_characters() -> None:
    secrets = {new_session_secret() for _ in range(50)}
    assert len(secrets) == 50 and {len(s) for s in secrets} == {43}


@pytest.mark.parametrize(
    ("target", "sent_to"),
    [
        ("/issues?tab=regressed", "/issues?tab=regressed"),
        ("/", "/"),
        ("/fixes/12#diff", "/fixes/12#diff"),
        (None, "/"),
        ("", "/"),
        ("issues", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/ok path", "/"),
        ("/" + "a" * 2001, "/"),
        (["/issues"], "/"),
    ],
)
def test_a_login_sends_the_browser_only_to_a_path_of_this_site(
    target: object, sent_to: str
) -> None:
    assert local_path(target) == sent_to


PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer's header: ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1"),  # forged left hop
        ("127.0.0.1", "10.1.2.3, 10.4.5.6", "10.1.2.3"),  # all trusted: the left-most
        ("127.0.0.1", "garbage, 10.4.5.6", "10.4.5.6"),  # who passed the garbage on
        ("127.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),  # v4-mapped peer
        ("fd00::5", "2001:db8::7", "2001:db8::7"),
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_the_client_address_believes_forwarded_hops_only_from_trusted_proxies(
    peer: str | None, forwarded_for: str | None, client: str
) -> None:
    assert forwarded_client(peer, forwarded_for, PROXIES) == client


@pytest.mark.parametrize(
    ("peer", "proto", "scheme"),
    [
        ("127.0.0.1", "https", "https"),
        ("127.0.0.1", "HTTPS, http", "https"),
        ("127.0.0.1", "gopher", "http"),
        ("203.0.113.9", "https", "http"),
        ("127.0.0.1", None, "http"),
    ],
)
def test_the_scheme_believes_forwarded_proto_only_from_trusted_proxies(
    peer: str, proto: str | None, scheme: str
) -> None:
    assert forwarded_scheme(peer, proto, "http", PROXIES) == scheme


def test_no_proxies_trust_nothing() -> None:
    none = TrustedProxies([])
    assert not none and "127.0.0.1" not in none
    assert forwarded_client("127.0.0.1", "198.51.100.1", none) == "127.0.0.1"
    assert None not in PROXIES and "not an address" not in PROXIES


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Mendline.Example.com/issues?x=1", "https://mendline.example.com"),
        ("https://mendline.example.com:443", "https://mendline.example.com"),
        ("http://127.0.0.1:8040/", "http://127.0.0.1:8040"),
        ("http://[::1]:8040", "http://[::1]:8040"),
        ("null", None),
        ("/issues", None),
        ("ftp://example.com", None),
        ("http://example.com:99999", None),
        (None, None),
    ],
)
def test_the_origin_of_a_url(url: str | None, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_the_expected_origin_is_the_public_urls_else_the_requests_own() -> None:
    assert expected_origin("https://m.example.com", "http", "127.0.0.1:1") == (
        "https://m.example.com"
    )
    assert expected_origin(None, "http", "127.0.0.1:8040") == "http://127.0.0.1:8040"
    assert expected_origin(None, "https", "m.example.com:443") == "https://m.example.com"


OWN = "http://127.0.0.1:8040"


@pytest.mark.parametrize(
    ("origin", "referer", "refused"),
    [
        (OWN, None, False),
        ("http://127.0.0.1:8040", "https://evil.example/", False),  # Origin decides
        (None, OWN + "/issues/3", False),  # no Origin: the Referer's
        ("https://evil.example", None, True),
        ("null", None, True),
        ("http://127.0.0.1:8041", None, True),
        ("https://127.0.0.1:8040", None, True),
        (None, "https://evil.example/?" + OWN, True),
        (None, None, True),
    ],
)
def test_a_change_must_come_from_the_dashboards_own_origin(
    origin: str | None, referer: str | None, refused: bool
) -> None:
    assert (origin_refusal(origin, referer, OWN) is not None) == refused


def test_origin_refusals_say_what_came_and_what_was_expected() -> None:
    assert origin_refusal(None, None, OWN) == (
        "a change needs an Origin (or Referer) header: send it from the dashboard's page"
    )
    assert origin_refusal("https://evil.example", None, OWN) == (
        "the change comes from another site (Origin 'https://evil.example'), not " + OWN
    )
    long = origin_refusal("https://" + "e" * 500, None, OWN)
    assert long is not None and len(long) < 200


@pytest.mark.parametrize(
    ("sent", "refusal"),
    [
        (["the-token"], None),
        ([None, "the-token"], None),
        (["wrong", "the-token"], None),
        (
            [],
            "a change needs the session's CSRF token (X-CSRF-Token or a csrf_token field)",
        ),
        (
            [None, ""],
            "a change needs the session's CSRF token (X-CSRF-Token or a csrf_token field)",
        ),
        (["wrong"], "the CSRF token is not this session's: reload the page and try again"),
        (["thé-token"], "the CSRF token is not this session's: reload the page and try again"),
    ],
)
def test_a_sessions_change_needs_its_csrf_token(
    sent: list[str | None], refusal: str | None
) -> None:
    assert csrf_refusal(sent, "the-token") == refusal


@pytest.mark.parametrize(
    ("host", "public_url", "taken"),
    [
        ("127.0.0.1:8040", None, True),
        ("[::1]:8040", None, True),
        ("10.1.2.3", None, True),  # an address: no rebinding names one
        ("localhost:8040", None, True),
        ("LOCALHOST.", None, True),
        ("rebind.evil.example:8040", None, False),  # a DNS-rebinding page's own name
        ("mendline.example.com", None, False),
        ("mendline.example.com", "https://mendline.example.com", True),
        ("Mendline.Example.com:443", "https://mendline.example.com", True),
        ("other.example.com", "https://mendline.example.com", False),
        ("", None, False),
    ],
)
def test_a_request_is_taken_only_for_the_dashboards_own_names(
    host: str, public_url: str | None, taken: bool
) -> None:
    assert (host_refusal(host, public_url) is None) is taken
