"""The web stage: ``mendline web`` and ``mendline run --only web`` serve the dashboard on the
migrated database, say where, and stop cleanly on SIGTERM with streams open; the stage waits
for a database that is not up yet; listening beyond loopback over plain HTTP is warned of."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Callable

import httpx
import pytest

from mendline.devstack import EmbeddedPostgres, free_port
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.schemas.settings import load_settings
from mendline.sinks.postgres import PeopleStore, append_audit, migrated_pool
from mendline.stages import Telemetry
from mendline.stages.web import exposed, run
from tests.integration.stage_helpers import wait_until

pytestmark = pytest.mark.integration

_SERVED = re.compile(r"dashboard at (http://127\.0\.0\.1:\d+)/")


async def viewer_token(url: str) -> str:
    """A viewer's API token on the (migrated) database at ``url``."""
    pool = await migrated_pool(url, 1)
    try:
        people = PeopleStore(pool, append_audit, origin="test")
        await people.add_user(SYSTEM_ACTOR, "vic", "viewer")
        token, _ = await people.create_token(SYSTEM_ACTOR, "vic")
        return token
    finally:
        await pool.close()


async def served_at(process: asyncio.subprocess.Process, seen: list[str]) -> str:
    """The dashboard's URL, from the line the command logs when it serves."""
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"the command ended first: {''.join(seen)}"
            seen.append(line)
            if found := _SERVED.search(line):
                return found.group(1)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["web", "--port", "0"], {}),
        (["run", "--only", "web"], {"MENDLINE_WEB_PORT": "0"}),
    ],
)
async def test_the_command_serves_the_dashboard_and_stops_on_sigterm(
    fresh_db_url: str, argv: list[str], env: dict[str, str]
) -> None:
    token = await viewer_token(fresh_db_url)
    environ = {**os.environ, "MENDLINE_DATABASE_URL": fresh_db_url, **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mendline", *argv, env=environ, stderr=asyncio.subprocess.PIPE
    )
    seen: list[str] = []
    try:
        url = await served_at(process, seen)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            assert (await client.get("/healthz")).text == "ok\n"
            async with client.stream("GET", "/live", params={"topic": "issues"}) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                while not (await anext(lines)).startswith("event: hello"):
                    pass
                process.send_signal(signal.SIGTERM)  # with the stream open
                async for _ in lines:  # it ends
                    pass
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    seen.append((await process.stderr.read()).decode())
    assert "Traceback" not in "".join(seen)


async def test_the_stage_waits_for_a_database_not_up_yet(
    postgres_factory: Callable[..., EmbeddedPostgres],
) -> None:
    server = postgres_factory(start=False)
    port = free_port()
    settings = load_settings(database_url=server.url, web_port=port)
    context = Telemetry().stage("web")
    stop = asyncio.Event()
    stage = asyncio.create_task(run(settings, stop, context))
    try:
        waiting = "connecting to PostgreSQL"
        await wait_until(lambda: context.waiting_for() == waiting, 30, "the stage waiting")
        server.start()
        # served, and its live updates listen
        await wait_until(lambda: context.waiting_for() is None, 60, "the stage ready")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(stage, 30)
    assert stage.result() is None


async def test_listening_beyond_loopback_without_https_is_warned_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    stop.set()  # warned of, then stopped before it connects or listens anywhere
    settings = load_settings(web_host="0.0.0.0", web_port=free_port())
    with caplog.at_level(logging.WARNING, logger="mendline.web"):
        await run(settings, stop, Telemetry().stage("web"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "mendline.web"]
    assert len(warnings) == 1 and "0.0.0.0 without TLS" in warnings[0]


def test_which_addresses_are_exposed() -> None:
    cases = [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("[::1]", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.168.1.4", "http://192.168.1.4:8040", True),
        ("0.0.0.0", "https://mendline.example.com", False),
        ("dashboard.internal", None, True),
    ]
    for host, public, expected in cases:
        settings = load_settings(web_host=host, web_public_url=public)
        assert exposed(settings) is expected, (host, public)
