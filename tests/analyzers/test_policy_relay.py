"""The relay's decisions: a browser's Origin against a key's allowed origins, the heartbeat
a key's Sentry check-in speaks for, and the correction of an SDK's drifted clock."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import clock_correction, heartbeat_name, origin_allowed


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://shop.example.com", ("*",), True),
        ("null", ("*",), True),
        ("null", ("shop.example.com",), False),
        ("https://shop.example.com", ("shop.example.com",), True),
        ("http://shop.example.com:8080", ("shop.example.com",), True),
        ("https://shop.example.com", ("https://shop.example.com",), True),
        ("http://shop.example.com", ("https://shop.example.com",), False),
        ("https://shop.example.com:8443", ("https://shop.example.com:8443",), True),
        ("https://shop.example.com", ("https://shop.example.com:8443",), False),
        ("https://a.example.com", ("*.example.com",), True),
        ("https://example.com", ("*.example.com",), False),
        ("https://evil-example.com", ("*.example.com",), False),
        ("https://shop.example.com:443.evil.com", ("shop.example.com",), False),
        ("https://shop.example.com/path", ("shop.example.com",), False),
    ],
)
def test_an_origin_is_allowed_as_the_key_says(
    origin: str, allowed: tuple[str, ...], expected: bool
) -> None:
    assert origin_allowed(origin, allowed) is expected


@pytest.mark.parametrize(
    ("service", "slug", "expected"),
    [
        ("checkout", "nightly-export", "checkout.nightly-export"),
        ("shop.api", "nightly", "shop.api.nightly"),
        ("shop", "api.nightly", None),  # would be service shop.api's check
        ("mendline", "clock", None),  # mendline's own
        ("my shop", "nightly", None),  # no check name holds a space
        ("checkout", "x" * 100, None),  # over a check name's 100 characters
    ],
)
def test_a_check_in_speaks_for_its_keys_services_heartbeat(
    service: str, slug: str, expected: str | None
) -> None:
    assert heartbeat_name(service, slug) == expected


NOW = 1_796_607_000.0
HOUR = 3600.0


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [
        (None, 0.0),  # no sent_at: nothing known of the SDK's clock
        (NOW, 0.0),
        (NOW - 30, 0.0),  # latency
        (NOW - 54 * 60, 0.0),  # under 55 minutes: a clock a little off, or a slow network
        (NOW - 55 * 60, 55 * 60),  # from 55 minutes: a time zone, or a clock wrongly set
        (NOW - 24 * HOUR, 24 * HOUR),  # the SDK's clock a day behind: its events a day later
        (NOW + 2 * HOUR, -2 * HOUR),  # two hours ahead: two hours earlier
        (NOW + 54 * 60, 0.0),
    ],
)
def test_an_sdks_clock_is_corrected_from_55_minutes_off(
    sent_at: float | None, expected: float
) -> None:
    assert clock_correction(sent_at, NOW) == expected
