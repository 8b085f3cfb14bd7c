"""Remediations' runner: a command (an argv list, never a shell) or an HTTP call, within a
timeout, as one ``RemediationOutcome`` with its output trimmed and its secrets filtered;
``run_remediation`` runs one of the policy file as it says.

What runs it, once the store has let a run go (``RemediationStore.ask`` or ``start``), is
the heal stage's worker, which watches the checks and issues; see
``mendline.sinks.postgres.RemediationStore``.
"""

from mendline.sinks.remediation._command import (
    KILL_GRACE,
    OUTPUT_GRACE,
    command_environment,
    run_command,
)
from mendline.sinks.remediation._http import call_http
from mendline.sinks.remediation._output import OUTPUT_LIMIT, OutputCapture
from mendline.sinks.remediation._remediate import run_remediation

__all__ = [
    "KILL_GRACE",
    "OUTPUT_GRACE",
    "OUTPUT_LIMIT",
    "OutputCapture",
    "call_http",
    "command_environment",
    "run_command",
    "run_remediation",
]
