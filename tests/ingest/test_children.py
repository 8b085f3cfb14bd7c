"""Errors logged in forked children (multiprocessing Process and Pool, a bare os.fork that
leaves through os._exit) reach Kafka or the spool, and no child complains about the
producer its parent had. Each app runs in its own interpreter: a forked pytest would run
pytest's exit hooks in the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mendline.devstack import free_port
from tests.integration.kafka_helpers import read_events, unique_topic

pytestmark = pytest.mark.integration

APP = textwrap.dedent(
    """
    import logging, multiprocessing, os, sys
    logging.basicConfig(level=logging.WARNING)  # what the app and aiokafka say goes to stderr
    from mendline.ingest import ErrorEventProcessor

    processor = ErrorEventProcessor("kids")

    def work(n):
        for i in range(5):
            try:
                raise KeyError(f"sku-{n}-{i}")
            except KeyError:
                processor(None, "exception", {"event": "child failed", "n": n, "i": i,
                                              "exc_info": True})
        return n

    processor(None, "error", {"event": "parent", "n": -1, "i": 0})
    if sys.argv[2] == "up":
        assert processor.shipper.flush(30)  # the parent's producer is connected at the fork
    fork = multiprocessing.get_context("fork")
    how = sys.argv[1]
    if how == "process":
        children = [fork.Process(target=work, args=(n,)) for n in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join()
            assert child.exitcode == 0
    elif how == "pool":
        with fork.Pool(2) as pool:  # leaving the block terminates the workers
            assert pool.map(work, range(4)) == list(range(4))
    else:  # a bare fork, leaving through os._exit (no exit hook at all) or sys.exit
        pid = os.fork()
        if pid == 0:
            work(0)
            os._exit(0) if how == "os._exit" else sys.exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    """
)


def run_app(how: str, bootstrap: str, topic: str, spool: Path, kafka: str = "up") -> str:
    """Run the app; returns its stderr (ResourceWarnings shown)."""
    result = subprocess.run(
        [sys.executable, "-W", "default::ResourceWarning", "-c", APP, how, kafka],
        env={
            **os.environ,
            "MENDLINE_KAFKA_BOOTSTRAP": bootstrap,
            "MENDLINE_ERRORS_TOPIC": topic,
            "MENDLINE_SPOOL_DIR": str(spool),
            "MENDLINE_SHUTDOWN_TIMEOUT": "20",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def child_events(events: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return sorted(
        (e["context"]["n"], e["context"]["i"], e["exceptions"][-1]["value"])
        for e in events
        if e["message"] == "child failed"
    )


def expected(children: int) -> list[tuple[int, int, str]]:
    return sorted((n, i, f"'sku-{n}-{i}'") for n in range(children) for i in range(5))


@pytest.mark.parametrize(
    ("how", "children"), [("process", 2), ("pool", 4), ("os._exit", 1), ("sys.exit", 1)]
)
async def test_errors_of_forked_children_reach_kafka_once_and_nobody_complains(
    kafka_bootstrap: str, tmp_path: Path, how: str, children: int
) -> None:
    topic = unique_topic("kids")
    stderr = run_app(how, kafka_bootstrap, topic, tmp_path / "spool")
    events = await read_events(kafka_bootstrap, topic, 5 * children + 1)
    # At least once: a child killed (Pool.terminate) or leaving through os._exit between
    # a send and noting it in its spool has those events sent again, with their event_id
    # (the consumer keeps one). Everything arrives; nothing is new twice.
    unique = {e["event_id"]: e for e in events}
    assert child_events(list(unique.values())) == expected(children)
    assert len(unique) == 5 * children + 1
    # The parent's producer, connections and loop stay the parent's: a child neither closes
    # them nor lets their finalizers complain ("Unclosed AIOKafkaProducer").
    assert "Unclosed" not in stderr and "Traceback" not in stderr, stderr
    assert not list((tmp_path / "spool" / "kids").glob("slot-*/*.spool"))  # all sent


def spooled(root: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted(root.glob("slot-*/*.spool")):
        for line in path.read_bytes().splitlines():
            events.append(json.loads(line.partition(b" ")[2]))
    return events


@pytest.mark.parametrize(("how", "children"), [("os._exit", 1), ("pool", 4)])
def test_with_kafka_unreachable_what_children_logged_waits_in_the_spool(
    tmp_path: Path, how: str, children: int
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    run_app(how, closed, unique_topic("kids"), tmp_path / "spool", kafka="down")
    events = spooled(tmp_path / "spool" / "kids")
    assert child_events(events) == expected(children)
    assert sum(1 for e in events if e["message"] == "parent") == 1
