"""The long-running stages (consume, analyze, alert), one module each, and the one supervisor
that runs them: ``mendline run`` and the single-stage commands."""

from mendline.stages._supervisor import (
    STAGES,
    alert_stage,
    analyze_stage,
    connect_patiently,
    connect_store_patiently,
    consume_stage,
    run_alert,
    run_analyze,
    run_consume,
    run_pipeline,
    run_stages,
)

__all__ = [
    "STAGES",
    "alert_stage",
    "analyze_stage",
    "connect_patiently",
    "connect_store_patiently",
    "consume_stage",
    "run_alert",
    "run_analyze",
    "run_consume",
    "run_pipeline",
    "run_stages",
]
