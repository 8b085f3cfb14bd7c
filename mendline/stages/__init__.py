"""The long-running stages, one module each (``consume``, ``analyze``, ``alert``, ``monitor``,
``heal``, ``web``, each with ``async def run(settings, stop, context)``), the one supervisor
that runs them and restarts a failed one (``mendline run``), ``run_stage`` for the
single-stage commands, the one way to stop on signals, and what the stages tell ``/readyz``
and ``/metrics`` (a Telemetry per process run, a StageContext per stage, the Metrics
registry)."""

from mendline.stages._endpoints import endpoints_app, serving_endpoints
from mendline.stages._metrics import CONTENT_TYPE, Counter, Gauge, Histogram, Metrics
from mendline.stages._signals import stop_on_signals
from mendline.stages._supervisor import STAGES, Stage, run_pipeline, run_stage, run_stages
from mendline.stages._telemetry import StageContext, StatsMetric, Telemetry
from mendline.stages._waiting import connect_patiently

__all__ = [
    "CONTENT_TYPE",
    "STAGES",
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "Stage",
    "StageContext",
    "StatsMetric",
    "Telemetry",
    "connect_patiently",
    "endpoints_app",
    "run_pipeline",
    "run_stage",
    "run_stages",
    "serving_endpoints",
    "stop_on_signals",
]
