"""Stopping on signals, as the stage commands and the demo do: the first stops cleanly, the
second forces."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from mendline.stages import stop_on_signals

# A stage command in miniature: stops on the first signal, then is stuck in its "batch".
_COMMAND = textwrap.dedent(
    """
    import asyncio
    from mendline.stages import stop_on_signals

    async def main():
        stop = asyncio.Event()
        stop_on_signals(stop)
        print("ready", flush=True)
        await stop.wait()
        print("stopping", flush=True)
        await asyncio.sleep(600)  # a batch that does not finish
        print("finished", flush=True)

    asyncio.run(main())
    """
)


async def test_the_first_signal_sets_stop_and_the_second_calls_on_second() -> None:
    stop = asyncio.Event()
    seconds: list[str] = []
    stop_on_signals(stop, on_second=lambda: seconds.append("second"))
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(stop.wait(), 10)
    assert seconds == []
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        if seconds:
            break
        await asyncio.sleep(0.01)
    assert seconds == ["second"]


def test_by_default_a_second_signal_ends_the_process_at_once_with_130() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", _COMMAND], env=env, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline().strip() == "stopping"
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 130
        assert "finished" not in process.stdout.read()
