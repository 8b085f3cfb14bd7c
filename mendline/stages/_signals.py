"""The one way a stage command stops on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

__all__ = ["stop_on_signals"]

log = logging.getLogger("mendline")

# The status of a process ended by a signal it was asked to stop on (128 + SIGINT).
_INTERRUPTED = 130


def stop_on_signals(stop: asyncio.Event, *, on_second: Callable[[], object] | None = None) -> None:
    """The first SIGINT or SIGTERM sets ``stop``: the stages finish what is in flight and
    return. A second one (or one after ``stop`` was set otherwise) calls ``on_second``; by
    default the process ends at once with status 130, the batch in flight uncommitted, so
    replayed, and nothing lost. ``mendline demo`` passes its main task's ``cancel`` instead,
    so that its clean-up (the sample app, the dev stack) still runs.

    Call it from the running event loop, in the main thread.
    """
    loop = asyncio.get_running_loop()
    second = on_second or _exit_at_once

    def on_signal() -> None:
        if stop.is_set():
            second()
            return
        log.info("mendline: stopping after the batch in flight (signal again to force)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def _exit_at_once() -> None:
    log.warning("mendline: second signal; exiting without finishing the batch")
    os._exit(_INTERRUPTED)
