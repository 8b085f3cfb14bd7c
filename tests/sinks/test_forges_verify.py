"""Verification commands: no shell, no secret in their environment, a timeout, an output
limit that keeps head and tail, and the first failure ending the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mendline.sinks.forges import FILES, VerifyPlan, command_environment, verify

PY = sys.executable


def _plan(*commands: tuple[str, ...], **options: object) -> VerifyPlan:
    return VerifyPlan(checks=commands, **options)  # type: ignore[arg-type]


async def test_the_commands_environment_holds_no_secret_of_mendlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MENDLINE_DATABASE_URL", "postgresql://mendline:pw@db/mendline")
    monkeypatch.setenv("MENDLINE_LLM_API_KEY", "sk-live-abc")
    monkeypatch.setenv("mendline_lower", "x")
    monkeypatch.setenv("DEPLOY_TOKEN", "t0ken")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abc")
    monkeypatch.setenv("CACHE_URL", "redis://user:hunter2@cache:6379/0")
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    monkeypatch.setenv("HARMLESS_SETTING", "1")
    printer = (PY, "-c", "import json, os; print(json.dumps(sorted(os.environ)))")

    checked = await verify(tmp_path, _plan(printer), [])

    names = json.loads(checked.commands[0].output)
    assert "HARMLESS_SETTING" in names and "PATH" in names and "PWD" in names
    for gone in ("DEPLOY_TOKEN", "AWS_SECRET_ACCESS_KEY", "CACHE_URL", "GIT_DIR", "mendline_lower"):
        assert gone not in names
    assert not [name for name in names if name.upper().startswith("MENDLINE_")]


def test_command_environment_keeps_what_programs_need() -> None:
    kept = command_environment({"PATH": "/usr/bin", "HOME": "/home/x", "LANG": "C.UTF-8"})
    assert kept == {"PATH": "/usr/bin", "HOME": "/home/x", "LANG": "C.UTF-8"}


async def test_a_command_that_runs_too_long_is_killed_and_fails(tmp_path: Path) -> None:
    sleeper = (PY, "-c", "import time; print('started', flush=True); time.sleep(60)")
    after = (PY, "-c", "print('never')")

    checked = await verify(tmp_path, _plan(sleeper, after, timeout=0.5), [])

    assert not checked.passed and len(checked.commands) == 1  # the run ends at the failure
    (outcome,) = checked.commands
    assert (outcome.timed_out, outcome.exit_code) == (True, None)
    assert "started" in outcome.output


async def test_output_over_the_limit_keeps_its_head_and_tail(tmp_path: Path) -> None:
    talker = (PY, "-c", "print('HEAD' + 'x' * 100000 + 'TAIL')")

    checked = await verify(tmp_path, _plan(talker, output_limit=1000), [])

    output = checked.commands[0].output
    assert output.startswith("HEAD") and output.rstrip().endswith("TAIL")
    assert "characters left out ...]" in output and len(output) < 1100


async def test_output_is_scrubbed_and_stderr_is_kept(tmp_path: Path) -> None:
    leaky = (PY, "-c", "import sys; print('password=hunter2'); print('oops', file=sys.stderr)")
    checked = await verify(tmp_path, _plan(leaky), [])
    output = checked.commands[0].output
    assert "hunter2" not in output and "oops" in output and checked.passed


async def test_by_default_the_changed_python_files_are_compiled_before_the_tests(
    tmp_path: Path,
) -> None:
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("def (:\n")
    tests = (PY, "-c", "print('tests ran')")

    good = await verify(tmp_path, VerifyPlan(test_command=tests), ["good.py", "README.md"])
    bad = await verify(tmp_path, VerifyPlan(test_command=tests), ["good.py", "bad.py"])

    assert good.passed and good.commands[0].argv == [PY, "-m", "py_compile", "./good.py"]
    assert good.commands[-1].output.strip() == "tests ran"
    assert not bad.passed and len(bad.commands) == 1
    assert "SyntaxError" in bad.commands[0].output or "invalid syntax" in bad.commands[0].output


async def test_a_files_command_is_skipped_without_python_files_and_a_missing_program_fails(
    tmp_path: Path,
) -> None:
    plan = _plan(("mypy", FILES), ("no-such-program-here",))
    checked = await verify(tmp_path, plan, ["README.md"])
    (outcome,) = checked.commands
    assert outcome.argv == ["no-such-program-here"] and outcome.exit_code is None
    assert outcome.output.startswith("cannot run:") and not checked.passed


async def test_a_shell_is_never_involved(tmp_path: Path) -> None:
    checked = await verify(
        tmp_path, _plan((PY, "-c", "import sys; print(sys.argv)", "$(id) ; ls")), []
    )
    assert "'$(id) ; ls'" in checked.commands[0].output


FINE_GRAINED = (
    "github_pat_11ABCDEF0123456789abc_abcdefijklmnopqrstuvwxyz0123456789ABCDEFIJKLMNOPQRSTUVW"
)


async def test_the_forge_token_never_reaches_the_commands_nor_their_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fine-grained GitHub token under a name that does not say "token", and a forge's
    # token of no known shape, named by the policy.
    monkeypatch.setenv("GITHUB_PAT", FINE_GRAINED)
    monkeypatch.setenv("FORGE_CREDENTIAL", "plain-looking-value-42")
    printer = (
        PY,
        "-c",
        "import json, os; print(json.dumps(sorted(os.environ)));"
        f" print({FINE_GRAINED!r}, 'plain-looking-value-42')",
    )

    checked = await verify(tmp_path, _plan(printer, secret_env=frozenset({"FORGE_CREDENTIAL"})), [])

    names, said = checked.commands[0].output.split("\n", 1)
    assert "GITHUB_PAT" not in json.loads(names) and "FORGE_CREDENTIAL" not in json.loads(names)
    assert FINE_GRAINED not in said and "plain-looking-value-42" not in said
    assert said.count("[Filtered]") == 2
