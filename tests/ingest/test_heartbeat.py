"""``mendline.heartbeat`` never raises into the job: a check-in it cannot make or queue is a
warning and a count, and the job's own exception goes on unchanged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mendline
from mendline.devstack import free_port
from mendline.ingest import Shipper, make_shipper, new_checkin
from mendline.schemas.settings import load_settings


@pytest.fixture
def shipper(tmp_path: Path) -> Iterator[Shipper]:
    """A shipper to a closed port: nothing it is given can be sent."""
    settings = load_settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", spool_dir=tmp_path / "spool"
    )
    made = make_shipper(settings, service="jobs")
    yield made
    made.shutdown(0)


def test_a_bad_check_name_is_a_warning_not_an_error_of_the_job(
    shipper: Shipper, caplog: pytest.LogCaptureFixture
) -> None:
    beat = mendline.heartbeat("not a name", shipper=shipper)
    with caplog.at_level(logging.WARNING, "mendline.ingest"), beat:
        done = True
    assert done and beat.failures == 2
    assert shipper.stats.received == 0
    assert "'start' check-in of 'not a name' was not sent" in caplog.text


def test_a_closed_shipper_does_not_break_the_job_and_its_error_goes_on(shipper: Shipper) -> None:
    shipper.shutdown(0)
    beat = mendline.heartbeat("nightly", shipper=shipper)

    @beat
    def job() -> None:
        raise LookupError("the job's own")

    with pytest.raises(LookupError, match="the job's own"):
        job()
    assert job.__name__ == "job" and beat.failures == 2


def test_a_checkin_message_is_scrubbed_then_cut_to_the_limit() -> None:
    checkin = new_checkin("nightly", "fail", message="password=hunter2pw " + "é" * 3000)
    assert checkin.message is not None and "hunter2pw" not in checkin.message
    assert len(checkin.message.encode()) <= 4000 and checkin.message.endswith("...")
    short = new_checkin("nightly", "fail", message="x" * 50, message_limit=20)
    assert short.message is not None and len(short.message) == 20


def test_with_scrubbing_settings_it_cannot_use_the_default_shipper_sends_nothing(
    tmp_path: Path,
) -> None:
    script = (
        "import mendline\n"
        "beat = mendline.heartbeat('nightly')\n"
        "with beat:\n"
        "    pass\n"
        "print(beat.failures)\n"
    )
    env = {
        **os.environ,
        "MENDLINE_SCRUB_EXTRA_PATTERNS": '["card=(\\\\d+"]',
        "MENDLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "MENDLINE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "2\n", done.stderr
    assert "MENDLINE_SCRUB_EXTRA_PATTERNS" in done.stderr
    assert "'start' check-in of 'nightly' was not sent" in done.stderr
