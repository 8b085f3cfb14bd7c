"""``mendline fix policy check`` and ``fix policy example``: the summary of the shipped default
and of a file with a repository (a real git clone) and a remediation, --json, every problem
of a bad file with its line, unset variables as warnings, and the example printed even when
the settings do not load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mendline.analyzers.policy import shipped_policy_text
from mendline.cli import main
from tests.cli_helpers import failure, json_object, run


@pytest.fixture(autouse=True)
def no_policy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MENDLINE_FIX_POLICY_FILE", "SHOP_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def policy_file(tmp_path: Path) -> Path:
    """A policy with a repository (a real clone in ``tmp_path``) and a remediation."""
    clone = tmp_path / "shop"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    path = tmp_path / "fixes.toml"
    path.write_text(
        "[[repositories]]\n"
        'name = "shop"\n'
        f'path = "{clone}"\n'
        'delivery = "pull_request"\n'
        'forge = "github"\n'
        'project = "acme/shop"\n'
        'token_env = "SHOP_TOKEN"\n'
        "[[repositories.mappings]]\n"
        'stack_root = "app/"\n'
        'source_root = "src/app/"\n'
        "[[repositories]]\n"
        'name = "gone"\n'
        f'path = "{tmp_path / "gone"}"\n'
        "[[repositories.mappings]]\n"
        'stack_root = "gone/"\n'
        "[[remediations]]\n"
        'name = "restart"\n'
        'when = { check = "worker", labels = { severity = ["error", "critical"] } }\n'
        'command = ["systemctl", "restart", "worker"]\n'
        'cooldown = "30m"\n'
    )
    return path


def test_check_without_a_file_summarises_the_shipped_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["fix", "policy", "check"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "the shipped default: valid, 0 repositories, 0 remediations",
        "  auto: severity low or medium; kind style, formatting or import; confidence >= 0.8;"
        " paths **/*.py; at most 20 changed lines and 3 an hour per repository",
        "  approval: one approver; two for severity critical; kind config or dependency",
        "  deny: 34 paths, 6 patterns, 9 risks, dependency changes",
        "  no repository: no fix is applied until [[repositories]] names one",
    ]
    assert err == ""


def test_check_a_file_lists_repositories_remediations_and_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_file(tmp_path)
    assert main(["fix", "policy", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"{path}: valid, 2 repositories, 1 remediation"
    assert lines[4:] == [
        f"  repository shop: {tmp_path / 'shop'}, from main, delivery pull_request"
        " (github acme/shop); app/ -> src/app/",
        f"  repository gone: {tmp_path / 'gone'}, from main, delivery branch; gone/ -> (the root)",
        "  remediation restart: when check worker, severity=error|critical:"
        " systemctl restart worker (approval, cooldown 30m, 3 an hour)",
    ]
    assert err.splitlines() == [
        'warning: repository "shop": SHOP_TOKEN (token_env) is not set',
        f'warning: repository "gone": {tmp_path / "gone"} is not a folder here',
    ]


def test_check_json_reads_the_setting_and_prints_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_file(tmp_path)
    monkeypatch.setenv("MENDLINE_FIX_POLICY_FILE", str(path))
    monkeypatch.setenv("SHOP_TOKEN", "ghp_t0ps3cret")
    assert main(["fix", "policy", "check", "--json"]) == 0
    out = capsys.readouterr().out
    assert "t0ps3cret" not in out
    shown = json.loads(out)
    assert shown["source"] == str(path) and shown["valid"] is True
    assert shown["warnings"] == [f'repository "gone": {tmp_path / "gone"} is not a folder here']
    shop = shown["policy"]["repositories"][0]
    assert (shop["name"], shop["token_env"], shop["mappings"]) == (
        "shop",
        "SHOP_TOKEN",
        [{"stack_root": "app/", "source_root": "src/app/"}],
    )
    assert shown["policy"]["remediations"][0]["cooldown"] == 1800.0
    assert shown["policy"]["auto"]["kinds"] == ["style", "formatting", "import"]


def test_a_bad_file_prints_every_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fixes.toml"
    path.write_text('[auto]\nkinds = ["styel"]\n[[repositories]]\nname = "shop"\n')
    assert main(["fix", "policy", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f'mendline: {path}:2: auto.kinds[0]: "styel" is not allowed; did you mean "style"?'
        " (use style, formatting, import, guard, config, logic or dependency)",
        f"mendline: {path}:3: repositories[0].path: missing",
        f"mendline: {path}:3: repositories[0].mappings: missing",
        "hint: the README's section on the fix policy shows the format;"
        " `mendline fix policy example` prints the shipped default to start from",
    ]
    assert main(["fix", "policy", "check", "--json", str(path)]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["valid"] is False and len(shown["problems"]) == 3
    assert shown["problems"][0].startswith(f"{path}:2: auto.kinds[0]")


def test_a_file_that_cannot_be_read_is_one_problem(tmp_path: Path) -> None:
    result = run("fix", "policy", "check", str(tmp_path / "nope.toml"))
    message, hint = failure(result)
    assert message == (
        f"{tmp_path / 'nope.toml'}: cannot read the fix policy file: No such file or directory"
    )
    assert "mendline fix policy example" in hint


def test_example_prints_the_shipped_default_even_with_bad_settings() -> None:
    result = run("fix", "policy", "example", env={"MENDLINE_ALERT_LEASE": "not a number"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == shipped_policy_text()


def test_check_through_the_real_command(tmp_path: Path) -> None:
    path = tmp_path / "fixes.toml"
    path.write_text(shipped_policy_text())
    shown = json_object(run("fix", "policy", "check", "--json", str(path)))
    assert shown["valid"] is True and shown["policy"]["repositories"] == []
