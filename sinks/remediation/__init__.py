"""Remediations' runner: a command (an argv list, never a shell) or an HTTP call, within a
timeout, as one ``RemediationOutcome`` with its output trimmed and its secrets filtered;
``run_remediation`` runs one of the policy file as it says.

What runs it, once the store has let a run go (``RemediationStore.ask`` or ``start``), is
the heal stage's worker, which watches the checks and issues; see
``mendline.sinks.postgres.RemediationStore``.

Commands run through ``mendline.sinks.commands``, as the forges' verification commands do;
its names that remediations rely on are re-exported here.
"""

from mendline.sinks.commands import KILL_GRACE, OUTPUT_GRACE, OutputCapture, command_environment
from mendline.sinks.remediation._command import run_command
from mendline.sinks.remediation._http import call_http
from mendline.sinks.remediation._outcome import OUTPUT_LIMIT
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
