"""The consumer's producer check: the keys file, and what warn and enforce do with a verdict."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mendline.analyzers.policy import ProducerKeys, signature_headers
from mendline.ingest.consumer import ProducerCheck, load_producer_keys, producer_check
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import load_settings

KEY = "billing-key-0123456789abcdef"
VALUE = b'{"service":"billing"}'
KEYS = ProducerKeys({"billing": (KEY.encode(),)})


def write_keys(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "producers.toml"
    path.write_text(text)
    return path


def test_off_by_default_reads_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    assert producer_check(load_settings()) is None
    assert producer_check(load_settings(producer_keys_file=missing)) is None


def test_a_mode_without_a_keys_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"producer_keys_file: .*enforce needs the keys"):
        load_settings(producer_auth="enforce")


def test_the_keys_file_is_read_once_at_start(tmp_path: Path) -> None:
    path = write_keys(
        tmp_path, f'exhaustive = true\n[services]\nbilling = ["{KEY}", "{"o" * 16}"]\n'
    )
    check = producer_check(load_settings(producer_auth="enforce", producer_keys_file=path))
    assert check is not None and check.mode == "enforce"
    assert check.keys == ProducerKeys({"billing": (KEY.encode(), b"o" * 16)}, exhaustive=True)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read the producer keys file"),
        (f'[services]\nbilling = "{KEY}\n', "is not valid TOML"),
        ('[services]\nbilling = "short-secret"\n', "at least 16 characters"),
    ],
)
def test_a_bad_keys_file_fails_the_start_without_showing_a_key(
    tmp_path: Path, text: str | None, says: str
) -> None:
    path = tmp_path / "producers.toml" if text is None else write_keys(tmp_path, text)
    with pytest.raises(ConfigError, match=says) as caught:
        load_producer_keys(path)
    assert KEY not in str(caught.value) and "short-secret" not in str(caught.value)
    assert "MENDLINE_PRODUCER_KEYS_FILE" in str(caught.value.hint)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # tomllib's own words would quote the key's illegal character; only where is said.
        (f'[services]\nbilling = "{KEY}\x01"\n', ":2: the producer keys file is not valid TOML"),
        (f'exhaustive = false\n[services]\nbilling = "{KEY}\n', ":3: the producer keys file"),
        ("[services\n", ":1: the producer keys file is not valid TOML (column 10)"),
    ],
)
def test_invalid_toml_is_named_with_its_line_and_no_part_of_a_key(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write_keys(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_producer_keys(path)
    assert str(caught.value).startswith(f"{path}{says}")
    assert "\\x01" not in str(caught.value) and KEY not in str(caught.value)


def test_enforce_refuses_with_the_reason_and_stores_nothing_uncounted() -> None:
    check = ProducerCheck(KEYS, "enforce")
    good = signature_headers(KEY.encode(), "billing", VALUE)
    assert check.refusal(good, VALUE, "billing") is None
    refusal = check.refusal([], VALUE, "billing")
    assert refusal is not None and refusal.startswith("missing_signature: ")
    assert check.checked == 2 and check.warned == {}


def test_warn_stores_counts_and_logs_once_a_service(caplog: pytest.LogCaptureFixture) -> None:
    check = ProducerCheck(KEYS, "warn")
    forged = signature_headers(b"x" * 16, "billing", VALUE)
    with caplog.at_level(logging.WARNING, logger="mendline.consume"):
        for _ in range(3):
            assert check.refusal([], VALUE, "billing") is None
            assert check.refusal(forged, VALUE, "billing") is None
    assert check.warned == {"missing_signature": 3, "bad_signature": 3}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "missing_signature" in lines[0] and "'billing'" in lines[0]


def test_warnings_name_a_bounded_number_of_services(caplog: pytest.LogCaptureFixture) -> None:
    check = ProducerCheck(ProducerKeys(exhaustive=True), "warn")
    with caplog.at_level(logging.WARNING, logger="mendline.consume"):
        for n in range(1500):
            check.refusal([], VALUE, f"made-up-{n}")
    assert check.warned == {"unlisted": 1500}
    assert len(caplog.records) == 1000
