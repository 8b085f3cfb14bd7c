"""At exit with Kafka unreachable, what is queued goes to the spool at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mendline.devstack import free_port

APP = textwrap.dedent(
    """
    from mendline.ingest import ErrorEventProcessor
    processor = ErrorEventProcessor("leaving")
    for i in range(300):
        processor(None, "error", {"event": "while down", "i": i})
    """
)


def test_with_kafka_refusing_the_atexit_flush_spools_at_once_not_after_the_timeout(
    tmp_path: Path,
) -> None:
    # An hour of shutdown timeout: a flush that waited for it would hit the run's timeout.
    result = subprocess.run(
        [sys.executable, "-c", APP],
        env={
            **os.environ,
            "MENDLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nobody listens there
            "MENDLINE_SPOOL_DIR": str(tmp_path),
            "MENDLINE_SHUTDOWN_TIMEOUT": "3600",
            "MENDLINE_ROLLUP_WINDOW": "60",  # one window, however slow the box
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [
        line
        for path in sorted((tmp_path / "leaving").glob("slot-*/*.spool"))
        for line in path.read_bytes().splitlines()
    ]
    events = [json.loads(line.partition(b" ")[2]) for line in lines]
    # The first ten in full; the storm's other 290 rolled up into one event, sent (here:
    # spooled) at exit too, which the last of them stands for.
    spooled = sorted((e["context"]["i"], e.get("count", 1)) for e in events)
    assert spooled == [*((i, 1) for i in range(10)), (299, 290)]
