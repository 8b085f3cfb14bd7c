"""Programs mendline runs (verification commands, remediations, git): an argv without a
shell, its own process group stopped whole on timeout or cancellation, its output's head and
tail with secrets filtered, and an environment without mendline's settings or secrets."""

from mendline.sinks.commands._environment import command_environment, git_environment
from mendline.sinks.commands._output import OutputCapture, filtered
from mendline.sinks.commands._run import (
    KILL_GRACE,
    OUTPUT_GRACE,
    OutputSink,
    ProgramRun,
    run_program,
)

__all__ = [
    "KILL_GRACE",
    "OUTPUT_GRACE",
    "OutputCapture",
    "OutputSink",
    "ProgramRun",
    "command_environment",
    "filtered",
    "git_environment",
    "run_program",
]
