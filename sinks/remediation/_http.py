"""A remediation's HTTP call (an orchestrator's restart API, say): one request, no redirect
followed, its answer's status and body, the header values (secrets) kept out of sight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx

from mendline.schemas.remediation import OutcomeResult, RemediationOutcome
from mendline.sinks.commands import OutputCapture, filtered
from mendline.sinks.remediation._outcome import OUTPUT_LIMIT, outcome

__all__ = ["call_http"]


async def call_http(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: str | bytes | None,
    timeout: float,
    *,
    output_limit: int = OUTPUT_LIMIT,
    verify_tls: bool = True,
    dry_run: bool = False,
) -> RemediationOutcome:
    """Send one ``method`` request to ``url`` with ``headers`` and ``body``, and return what
    it did: a 2xx answer is ``ok``; any other status, no answer or a broken exchange is
    ``failed``; no whole answer (body included) within ``timeout`` seconds is ``timed_out``.

    ``headers`` are the values the caller read from the environment variables the policy
    names: every value is treated as a secret, filtered from the output and from every
    message, never logged. No redirect is followed (a 3xx is ``failed``, naming where it
    pointed): the call changes something, and its credentials go to the URL the policy
    names and nowhere else. No proxy or ``.netrc`` is taken from the environment. The output
    is the answer's body, its head and tail up to ``output_limit`` characters, secrets
    filtered. ``dry_run``: nothing is sent; the outcome says what would have been."""
    method = method.upper()
    ran = filtered(f"{method} {url}")
    if dry_run:
        named = ", ".join(headers) or "none"
        detail = f"dry run: would call {ran} (headers: {named})"
        return outcome("http", "dry_run", ran, detail, None)
    secrets = _secrets(headers)
    capture = OutputCapture(output_limit)
    started = time.perf_counter()
    result: OutcomeResult = "failed"
    status: int | None = None
    try:
        async with asyncio.timeout(timeout):
            status, location = await _exchange(
                url, method, headers, body, timeout, verify_tls, capture
            )
    except TimeoutError:
        result, detail = "timed_out", f"no whole answer in {timeout:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = f"the call failed: {filtered(str(exc), secrets) or type(exc).__name__}"
    else:
        detail = f"answered {status}"
        if 200 <= status < 300:
            result = "ok"
        elif location is not None:
            detail += (
                f", redirecting to {filtered(location, secrets)}: redirects are not followed;"
                " name the final URL in the policy"
            )
    output = capture.text(secrets)
    return outcome("http", result, ran, detail, started, http_status=status, output=output)


def _secrets(headers: Mapping[str, str]) -> list[str]:
    """The header values, and the credential of each "Scheme credential" value (a server
    may echo the token without its "Bearer")."""
    found: list[str] = []
    for value in headers.values():
        found.append(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            found.append(credential.strip())
    return found


async def _exchange(
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: str | bytes | None,
    timeout: float,
    verify_tls: bool,
    capture: OutputCapture,
) -> tuple[int, str | None]:
    """Send the request and read the answer's body into ``capture``: (the status, the
    Location of a redirect or None)."""
    async with (
        httpx.AsyncClient(
            verify=verify_tls,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
        ) as client,
        client.stream(method, url, headers=dict(headers), content=body) as response,
    ):
        async for chunk in response.aiter_bytes():
            capture.feed(chunk)
        location = response.headers.get("location") if response.is_redirect else None
        return response.status_code, location
