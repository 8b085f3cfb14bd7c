"""The one supervisor: the registry of stages, ``mendline run`` (every stage in one process,
restarted when it fails) and the single-stage commands."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mendline.analyzers.backoff import Backoff
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import is_outage
from mendline.stages import alert, analyze, consume, heal, monitor, relay, web
from mendline.stages._endpoints import serving_endpoints
from mendline.stages._signals import stop_on_signals
from mendline.stages._telemetry import StageContext, Telemetry
from mendline.stages._waiting import wait_any

__all__ = ["STAGES", "Stage", "freeze_startup", "run_pipeline", "run_stage", "run_stages"]

log = logging.getLogger("mendline")


@dataclass(frozen=True)
class Stage:
    """A long-running stage. ``run(settings, stop, context)`` connects (waiting out an
    outage), works until ``stop`` is set, finishes what it has in flight and logs what it
    did; it tells ``context`` when it is ready and what it counts. ``check``, if given,
    raises ConfigError for what can be found wrong before any stage starts."""

    run: Callable[[Settings, asyncio.Event, StageContext], Awaitable[None]]
    check: Callable[[Settings], object] | None = None


#: Every stage, in the order ``mendline run`` starts them. A new stage is a module with
#: ``async def run(settings, stop, context) -> None`` and a line here.
STAGES: Mapping[str, Stage] = {
    "relay": Stage(relay.run),
    "consume": Stage(consume.run, check=consume.check),
    "analyze": Stage(analyze.run),
    "alert": Stage(alert.run, check=alert.routing_table),
    "monitor": Stage(monitor.run, check=monitor.check),
    "heal": Stage(heal.run, check=heal.check),
    "web": Stage(web.run),
}


def freeze_startup() -> None:
    """Move what exists now (modules, classes, compiled models: everything a started process
    keeps) out of the garbage collector's reach. A full collection otherwise walks all of it,
    tens of milliseconds during which no request is answered and no record read; frozen,
    only what the stages made since is walked."""
    gc.collect()
    gc.freeze()


async def run_stages(settings: Settings, only: list[str] | None = None) -> int:
    """``mendline run``: the stages (all, or ``only`` these) in one process, each restarted
    when it fails, until SIGINT or SIGTERM stops them all cleanly; with ``metrics_port``
    set, serving /healthz, /readyz and /metrics meanwhile. The process's objects made so far
    are frozen first (``freeze_startup``): it is the command's process."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    telemetry = Telemetry()
    freeze_startup()
    async with serving_endpoints(settings, telemetry):
        await run_pipeline(settings, stop, only, telemetry=telemetry)
    return 0


async def run_stage(name: str, settings: Settings) -> int:
    """``mendline consume``, ``analyze``, ``alert``, ``monitor``, ``heal`` or ``web``: the
    stage called ``name`` until SIGINT or SIGTERM; what it has in flight is finished. It is
    not restarted: a failure ends the command (its process supervisor restarts it). With
    ``metrics_port`` set, it serves /healthz, /readyz and /metrics meanwhile. The process's
    objects made so far are frozen first (``freeze_startup``): it is the command's process."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    telemetry = Telemetry()
    context = telemetry.stage(name)
    freeze_startup()
    async with serving_endpoints(settings, telemetry):
        try:
            await STAGES[name].run(settings, stop, context)
        finally:
            context.not_ready("stopped")
    return 0


async def run_pipeline(
    settings: Settings,
    stop: asyncio.Event,
    only: list[str] | None = None,
    *,
    stages: Mapping[str, Stage] = STAGES,
    telemetry: Telemetry | None = None,
) -> None:
    """The ``stages`` (all, or ``only`` these) as tasks, each restarted with backoff when it
    fails, until ``stop``; installs no signal handlers (the caller owns ``stop``). Each is
    given its context in ``telemetry`` (a new one if None: nothing is served then).

    A ConfigError (found by a stage's ``check`` before any starts, or raised by a stage) is
    nothing a restart would mend: it stops every stage, and is raised once they finished.
    """
    chosen = {name: stages[name] for name in (only or list(stages))}
    for stage in chosen.values():
        if stage.check is not None:
            stage.check(settings)  # a bad routing file, a missing secret: say so first
    telemetry = telemetry or Telemetry()
    contexts = {name: telemetry.stage(name) for name in chosen}  # each starting, not ready
    outcomes = await asyncio.gather(
        *(_supervised(stage, settings, stop, contexts[name]) for name, stage in chosen.items()),
        return_exceptions=True,  # the others finish what they have in flight first
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


# Seconds a stage must have run before its failure counts as a new one (short waits again).
_RAN_WELL = 30.0


async def _supervised(
    stage: Stage, settings: Settings, stop: asyncio.Event, context: StageContext
) -> None:
    backoff = Backoff(1.0, 60.0)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await stage.run(settings, stop, context)
            context.not_ready("stopped")
            return
        except ConfigError:
            context.not_ready("stopped: its configuration is invalid")
            stop.set()
            raise
        except Exception as exc:
            if loop.time() - started > _RAN_WELL:
                backoff.reset()  # it ran a while: a new failure, not the same one again
            first = backoff.attempts == 0
            delay = backoff.next()
            context.not_ready("failed; restarting")
            if is_outage(exc):
                # An outage is not a bug: one line, not a traceback, and one per outage.
                (log.warning if first else log.debug)(
                    "mendline: the %s stage stopped: PostgreSQL unavailable (%s); restarting"
                    " in %.1f s",
                    context.name,
                    exc,
                    delay,
                )
            else:
                log.exception(
                    "mendline: the %s stage failed; restarting in %.1f s", context.name, delay
                )
            await wait_any(stop, None, delay)
