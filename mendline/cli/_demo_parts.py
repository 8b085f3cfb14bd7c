"""The demo's surroundings: the Slack and SMTP stand-ins, the sample app process."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from mendline.cli.output import Screen, shorten
from mendline.schemas.errors import MendlineError
from mendline.schemas.settings import Settings

__all__ = ["SampleApp", "StandIns", "sample_app"]


class StandIns:
    """Loopback stand-ins for a Slack incoming webhook and an SMTP server that print what
    they receive, as the people on call would see it."""

    def __init__(self, screen: Screen) -> None:
        self._screen = screen
        self.received: dict[str, int] = {"slack": 0, "email": 0}
        """Messages received, per stand-in."""
        self.slack_url = ""
        """The webhook URL to give the Slack receiver."""
        self.smtp_port = 0
        """The SMTP stand-in's port on 127.0.0.1."""
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.Server | None = None

    async def __aenter__(self) -> StandIns:
        try:
            from aiosmtpd.smtp import SMTP
        except ImportError as exc:
            raise MendlineError(
                "the demo needs aiosmtpd for its stand-in mail server",
                hint="install the demo's extra: pip install 'mendline[devstack]'",
            ) from exc
        app = web.Application()
        app.router.add_post("/services/demo", self._slack)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.slack_url = f"http://{host}:{port}/services/demo"
        loop = asyncio.get_running_loop()
        self._smtp = await loop.create_server(
            lambda: SMTP(self, hostname="smtp.demo.invalid"), "127.0.0.1", 0
        )
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._smtp is not None:
            self._smtp.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _slack(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received["slack"] += 1
        lines = [line for line in (body.get("text") or "").splitlines() if line.strip()][:4]
        shown = "\n         ".join(shorten(line, 110) for line in lines)
        self._screen.say(f"  slack  {shown}", style="cyan")
        return web.Response(text="ok")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: one email arrived."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received["email"] += 1
        to = ", ".join(envelope.rcpt_tos)
        self._screen.say(f"  email  to {to}: {message['Subject']}", style="magenta")
        return "250 OK"


@dataclass(frozen=True)
class SampleApp:
    """The sample shop's process, as it runs."""

    url: str
    log: Path

    def log_tail(self, lines: int = 8) -> str:
        """The last lines the app wrote (its own log lines, and any traceback)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


_LISTENING = "listening on "


@contextlib.asynccontextmanager
async def sample_app(
    settings: Settings, workdir: Path, *, service: str, release: str, environment: str
) -> AsyncIterator[SampleApp]:
    """The sample shop as its own process (as an app runs), pointed at ``settings``' broker
    and topic; it dies with this process, whatever ends it."""
    from mendline.devstack import spawn

    log = workdir / f"{service}.log"
    argv = [sys.executable, "-m", "mendline.sample_app", "--port", "0", "--service", service]
    argv += ["--release", release, "--environment", environment]
    process = spawn(argv, log=log, env=_app_environ(settings, workdir), cwd=workdir, run_as=None)
    try:
        url = await _listening(process, log)
        if url is None:
            app = SampleApp("", log)
            raise MendlineError(
                f"the sample app did not start; it said: {app.log_tail(1) or 'nothing'}",
                hint="run again with --debug, or start it alone: python -m mendline.sample_app",
            )
        yield SampleApp(url, log)
    finally:
        if process.poll() is None:
            process.terminate()  # it flushes what it has queued, then exits
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


def _app_environ(settings: Settings, workdir: Path) -> dict[str, str]:
    """The app's environment: the caller's, without its MENDLINE_* settings (they may point at
    production), plus what it needs to reach the demo's broker."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MENDLINE_")}
    kafka = {
        "MENDLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MENDLINE_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "MENDLINE_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "MENDLINE_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "MENDLINE_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password.get_secret_value()
        if settings.kafka_sasl_password
        else None,
        "MENDLINE_KAFKA_SSL_CAFILE": str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_cafile
        else None,
        "MENDLINE_ERRORS_TOPIC": settings.errors_topic,
        "MENDLINE_EMIT_LEVEL": "error",  # the demo counts on exactly the errors it expects
        # The shop's frames are its own code, even where mendline is installed in
        # site-packages: its findings' patches need them.
        "MENDLINE_IN_APP_INCLUDE": '["mendline.sample_app"]',
        "MENDLINE_SPOOL_DIR": str(workdir / "app-spool"),
    }
    environ.update({k: v for k, v in kafka.items() if v is not None})
    return environ


async def _listening(
    process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> str | None:
    """The URL of the app's one ``listening on URL`` line, or None if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        url = await asyncio.to_thread(_listening_url, log)
        if url is not None:
            return url
        await asyncio.sleep(0.05)
    return None


def _listening_url(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines() if log.exists() else ():
        if line.startswith(_LISTENING):
            return line.removeprefix(_LISTENING).strip()
    return None
