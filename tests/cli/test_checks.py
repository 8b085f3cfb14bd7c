"""``mendline checks check`` and ``mendline checks example``: the table, --json, every problem
of a bad file with its line, unset variables as warnings, and no secret printed."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from mendline.cli import main
from tests.cli_helpers import failure, json_object, run

SHIPPED = resources.files("mendline.analyzers.health").joinpath("checks.example.toml")
SECRET_URL = "https://monitor:pa55word@api.internal/health?token=t0ps3cret"


@pytest.fixture
def no_check_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERS_DATABASE_URL", "PAYMENTS_HEALTH_TOKEN", "MENDLINE_CHECKS_FILE"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.toml"
    path.write_text(text)
    return path


@pytest.mark.usefixtures("no_check_variables")
def test_check_lists_the_example_and_warns_of_unset_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SHIPPED.read_text("utf-8"))
    assert main(["checks", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"{path}: valid, 6 checks"
    assert lines[1].split() == ["name", "kind", "every", "target", "conditions"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["redis"].split() == ["redis", "tcp", "5m", "redis.internal:6379", "1"]
    assert rows["orders-db"].split()[1:3] == ["postgres", "15m"]
    assert rows["payments-api"].split() == [
        "payments-api",
        "http",
        "30m",
        "https://payments.internal/health",
        "3",
    ]
    assert "$MENDLINE_KAFKA_BOOTSTRAP mendline/mendline.errors" in rows["errors-consumer-lag"]
    assert "cron 0 3 * * * (Europe/Paris)" in rows["nightly-export"]
    assert err.splitlines() == [
        'warning: check "orders-db" (postgres): ORDERS_DATABASE_URL (dsn_env) is not set',
        'warning: check "payments-api" (http): PAYMENTS_HEALTH_TOKEN'
        " (headers_env.Authorization) is not set",
    ]


@pytest.mark.usefixtures("no_check_variables")
def test_check_json_reads_the_setting_and_prints_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SHIPPED.read_text("utf-8"))
    monkeypatch.setenv("MENDLINE_CHECKS_FILE", str(path))
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgresql://app:db-s3cret@db/orders")
    monkeypatch.setenv("PAYMENTS_HEALTH_TOKEN", "Bearer tok-s3cret")
    assert main(["checks", "check", "--json"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    shown = json.loads(out)
    assert shown["source"] == str(path) and shown["valid"] is True
    assert shown["warnings"] == []
    api = next(check for check in shown["checks"] if check["name"] == "payments-api")
    assert api["conditions"] == ["[STATUS] == 200", "[RESPONSE_TIME] < 500", "[BODY].status == UP"]
    assert api["every"] == "30m"
    lines = SHIPPED.read_text("utf-8").splitlines()
    assert lines[api["line"] - 1] == "[[checks]]"
    assert lines[api["line"]] == 'name = "payments-api"'


def test_check_filters_the_secrets_of_a_url_and_escapes_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'[[checks]]\nname = "api"\nkind = "http"\nurl = "{SECRET_URL}"\n'
        '[[checks]]\nname = "q"\nkind = "dns"\nquery = "evil\\u001b[2Jexample.com"\n',
    )
    assert main(["checks", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pa55word" not in out and "t0ps3cret" not in out
    assert "api.internal/health" in out
    assert "\x1b" not in out and "evil\\x1b[2Jexample.com A" in out


def test_a_bad_file_prints_every_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[[checks]]\nname = "a"\nkind = "htp"\n'
        '[[checks]]\nname = "b"\nkind = "http"\nurl = "https://x"\n'
        'conditions = ["[STATSU] == 200"]\n',
    )
    assert main(["checks", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f'mendline: {path}:3: checks[0].kind: "htp" is not a check kind; did you mean "http"?'
        ' (use "http", "tcp", "dns", "tls", "postgres", "kafka" or "heartbeat")',
        f"mendline: {path}:8: checks[1].conditions[0]: unknown placeholder [STATSU];"
        " did you mean [STATUS]?",
        "hint: the README's section on the checks file shows the format;"
        " `mendline checks example` prints a file to start from",
    ]
    assert main(["checks", "check", "--json", str(path)]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["valid"] is False and len(shown["problems"]) == 2
    assert shown["problems"][1].startswith(f"{path}:8: checks[1].conditions[0]")


def test_no_file_is_one_error_with_a_hint(tmp_path: Path) -> None:
    message, hint = failure(run("checks", "check", env={"MENDLINE_CHECKS_FILE": ""}))
    assert message == "no checks file: MENDLINE_CHECKS_FILE is unset"
    assert "mendline checks example > checks.toml" in hint
    message, _ = failure(run("checks", "check", str(tmp_path / "nope.toml")))
    assert (
        message
        == f"{tmp_path / 'nope.toml'}: cannot read the checks file: No such file or directory"
    )


def test_example_prints_the_shipped_file_even_with_bad_settings() -> None:
    result = run("checks", "example", env={"MENDLINE_ALERT_LEASE": "not a number"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == SHIPPED.read_text("utf-8")


def test_check_json_through_the_real_command(tmp_path: Path) -> None:
    path = write(tmp_path, '[[checks]]\nname = "db"\nkind = "tcp"\nhost = "db"\nport = 5432\n')
    shown = json_object(run("checks", "check", "--json", str(path)))
    assert shown["checks"] == [
        {
            "name": "db",
            "kind": "tcp",
            "line": 1,
            "every": "5m",
            "target": "db:5432",
            "conditions": ["[CONNECTED] == true"],
        }
    ]


def test_run_prints_each_condition_with_what_it_observed_and_exits_1_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    import threading

    from aiohttp import web

    port: list[int] = []
    loop = asyncio.new_event_loop()

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "UP"})

    async def down(_: web.Request) -> web.Response:
        return web.Response(status=503, text="\x1b[2Jbusy")

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/ok", ok)
        app.router.add_get("/down", down)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        return runner

    runner = loop.run_until_complete(serve())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        path = write(
            tmp_path,
            f'[[checks]]\nname = "up"\nkind = "http"\nurl = "http://127.0.0.1:{port[0]}/ok"\n'
            'conditions = ["[STATUS] == 200", "[BODY].status == UP"]\n'
            f'[[checks]]\nname = "down"\nkind = "http"\nurl = "http://127.0.0.1:{port[0]}/down"\n'
            'conditions = ["[STATUS] == 200", "[BODY] == pat(*ready*)"]\n',
        )
        assert main(["checks", "run", "up", "--file", str(path)]) == 0
        out, _ = capsys.readouterr()
        assert out.splitlines()[0].endswith("): success")
        assert "ok   [BODY].status == UP  (observed: UP)" in out
        assert main(["checks", "run", "down", "--file", str(path)]) == 1
        out, _ = capsys.readouterr()
        assert "FAIL [STATUS] == 200  (observed: 503)" in out
        assert "\x1b" not in out  # the body's escape sequence is shown, not obeyed
        assert main(["checks", "run", "down", "--file", str(path), "--json"]) == 1
        shown = json.loads(capsys.readouterr().out)
        assert shown["success"] is False and shown["conditions"][0]["observed"] == "503"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_run_names_the_checks_when_the_name_is_unknown_and_refuses_a_heartbeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[[checks]]\nname = "nightly"\nkind = "heartbeat"\ncron = "0 3 * * *"\n',
    )
    assert main(["checks", "run", "nope", "--file", str(path)]) != 0
    assert "(it has: nightly)" in capsys.readouterr().err
    assert main(["checks", "run", "nightly", "--file", str(path)]) != 0
    assert "judged on the check-ins" in capsys.readouterr().err
