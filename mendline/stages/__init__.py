"""The long-running stages, one module each (``consume``, ``analyze``, ``alert``, ``monitor``,
each with ``async def run(settings, stop)``), the one supervisor that runs them and restarts
a failed one (``mendline run``), ``run_stage`` for the single-stage commands, and the one way
to stop on signals."""

from mendline.stages._signals import stop_on_signals
from mendline.stages._supervisor import STAGES, Stage, run_pipeline, run_stage, run_stages
from mendline.stages._waiting import connect_patiently

__all__ = [
    "STAGES",
    "Stage",
    "connect_patiently",
    "run_pipeline",
    "run_stage",
    "run_stages",
    "stop_on_signals",
]
