"""``mendline web`` on the command line: a port in use is one line and a hint; ``run --only``
knows the web stage. (Bad --host and --port values: tests/cli/test_cli.py.)"""

from __future__ import annotations

import socket

import pytest

from tests.cli_helpers import failure, migrated_env, run, usage_error

UNREACHABLE_DATABASE = "postgresql://postgres:pa55word@127.0.0.1:9/x"


def test_run_names_the_web_stage_among_the_stages() -> None:
    result = run("run", "--only", "nothing", env={"MENDLINE_DATABASE_URL": UNREACHABLE_DATABASE})
    assert ", heal, web; not nothing" in usage_error(result)
    assert "web" in run("run", "--help").stdout


@pytest.mark.integration
async def test_a_port_in_use_is_one_line_and_a_hint(fresh_db_url: str) -> None:
    env = await migrated_env(fresh_db_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error, hint = failure(run("web", "--port", str(port), env=env, timeout=60))
    assert error.startswith(f"cannot serve the dashboard on 127.0.0.1:{port}")
    assert "MENDLINE_WEB_PORT" in hint
