"""One remediation of the policy file run as it says: its command or its HTTP call, with the
header values read from the environment at the moment it runs."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mendline.schemas.fixpolicy import Remediation
from mendline.schemas.remediation import RemediationOutcome
from mendline.sinks.commands import filtered
from mendline.sinks.remediation._command import run_command
from mendline.sinks.remediation._http import call_http
from mendline.sinks.remediation._outcome import OUTPUT_LIMIT, outcome

__all__ = ["run_remediation"]


async def run_remediation(
    remediation: Remediation,
    environ: Mapping[str, str] | None = None,
    *,
    output_limit: int = OUTPUT_LIMIT,
) -> RemediationOutcome:
    """Run ``remediation`` within its ``timeout`` (a dry run when its ``dry_run`` says so)
    and return what it did.

    A command runs through ``run_command`` with ``environ`` (default: this process's) as its
    environment, filtered there. An HTTP call's headers are read from the variables its
    ``headers_env`` names in ``environ`` now, never earlier and never logged: one unset is a
    ``failed`` outcome naming the variable, and nothing is sent."""
    environ = os.environ if environ is None else environ
    if remediation.command is not None:
        return await run_command(
            remediation.command,
            remediation.timeout,
            output_limit,
            environ,
            dry_run=remediation.dry_run,
        )
    http = remediation.http
    assert http is not None  # a remediation has exactly one of them (the schema says so)
    headers: dict[str, str] = {}
    for header, variable in http.headers_env.items():
        value = environ.get(variable)
        if value is None and not remediation.dry_run:
            ran = filtered(f"{http.method} {http.url}")
            detail = f"the environment variable {variable} (header {header}) is not set: not sent"
            return outcome("http", "failed", ran, detail, None)
        headers[header] = value or ""
    return await call_http(
        http.url,
        http.method,
        headers,
        http.body,
        remediation.timeout,
        output_limit=output_limit,
        dry_run=remediation.dry_run,
    )
