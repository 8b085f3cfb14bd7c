"""What a suggested fix or patch would do that a person must check first: shell commands and
subprocesses, downloads and network calls, code execution, unsafe loading, new dependencies.
An LLM wrote it after reading attacker-controlled event text."""

from __future__ import annotations

import re

from mendline.schemas.finding import RISKS, Risk

__all__ = ["fix_risks", "patch_added_lines"]

_I = re.IGNORECASE
_SHELLS = (
    r"(?:sudo\s+)?(?:(?:ba|z|k|da|fi)?sh|python[\d.]*|perl|ruby|node|php|iex|invoke-expression)\b"
)
_DOWNLOADERS = r"(?:curl|wget|iwr|invoke-webrequest|invoke-restmethod|fetch)"

# Each risk with the patterns that show it, in the added lines of a patch and in the prose of
# a suggested fix alike (both can be copied into a terminal or a file).
_PATTERNS: dict[Risk, tuple[re.Pattern[str], ...]] = {
    "pipe_to_shell": (
        re.compile(rf"\b{_DOWNLOADERS}\b[^\n]*\|\s*{_SHELLS}", _I),
        re.compile(rf"\b(?:ba|z)?sh\b[^\n]*(?:<\(|\$\(|`)\s*{_DOWNLOADERS}\b", _I),
    ),
    "destructive_command": (
        re.compile(r"\brm\s+(?:-\w+\s+)*-\w*(?:r\w*f|f\w*r)\w*\b", _I),
        re.compile(r"\brm\s+(?:-\w+\s+)*-\w*r\w*\s+/(?:\s|$|\*)", _I),
        re.compile(r"\bmkfs(?:\.\w+)?\b"),
        re.compile(r"\bdd\s+[^\n]*\bof=/dev/"),
        re.compile(r">\s*/dev/(?:sd|nvme|hd|xvd)"),
        re.compile(r"\bshutil\.rmtree\s*\("),
        re.compile(r"\b(?:DROP\s+(?:TABLE|DATABASE|SCHEMA)|TRUNCATE\s+TABLE)\b", _I),
        re.compile(r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),  # a fork bomb
    ),
    "shell_command": (
        re.compile(r"\bos\.(?:system|popen|exec\w*|spawn\w*|posix_spawnp?|forkpty)\s*\("),
        re.compile(r"\bposix_spawnp?\s*\("),
        # Any subprocess call, whatever its arguments: a list runs a program just the same.
        re.compile(
            r"\bsubprocess\.(?:run|call|check_call|check_output|Popen|getoutput|getstatusoutput)"
            r"\s*\("
        ),
        # Imported by name, then called bare: `from os import system` ... `system(cmd)` (no
        # space before the parenthesis: "the file system (ext4)" is prose).
        re.compile(r"\bfrom\s+(?:subprocess|pty|commands)\s+import\b"),
        re.compile(r"\bfrom\s+os\s+import\s+[^\n]*\b(?:system|popen|exec\w*|spawn\w*|posix_spawn)"),
        re.compile(r"(?<![\w.])(?:system|Popen|check_output|check_call|getoutput)\("),
        re.compile(r"\bcreate_subprocess_(?:shell|exec)\s*\("),
        # shell= with anything but a false literal, as a keyword or a setting.
        re.compile(r"(?<![\w.])shell\s*=(?!=)\s*(?!False\b|None\b|0\b|''|\"\"|[,)\n])"),
        # A shell or an interpreter given a program to run with -c, in argv or on a line.
        re.compile(rf"['\"](?:[\w./-]*/)?{_SHELLS}['\"]\s*,\s*['\"]-\w*c['\"]", _I),
        re.compile(rf"\b{_SHELLS}\s+(?:-\w+\s+)*-\w*c\b", _I),
        re.compile(r"\b(?:commands\.getoutput|pty\.spawn)\s*\("),
        re.compile(r"(?:^|[\s`])sudo\s+\w"),
        re.compile(r"(?:^|\n)\s*\$\s+\w"),  # a command line, as shown in a terminal
        re.compile(r"\b(?:curl|wget)\b(?!-)"),  # a download tool to run
    ),
    "code_execution": (
        # Not ast.literal_eval (a \w before it), model.eval() or re.compile() (a dot before it).
        re.compile(r"(?<![\w.])(?:eval|exec|execfile)\s*\("),
        re.compile(r"(?<![\w.])compile\("),  # not "compile (with -O2)" in prose
        re.compile(r"\bbuiltins\.(?:eval|exec|compile|__import__)\b"),
        re.compile(r"\b__builtins__\b"),
        re.compile(r"\b__import__\s*\("),
        re.compile(r"\bimportlib\.import_module\s*\("),
        re.compile(r"\bnew\s+Function\s*\("),
        re.compile(r"\bRuntime\.getRuntime\(\)\.exec\b"),
    ),
    "unsafe_deserialization": (
        re.compile(
            r"\b(?:c?pickle|dill|marshal|jsonpickle|shelve|joblib)\.(?:loads?|Unpickler|decode|open)\b"
        ),
        re.compile(r"\bfrom\s+(?:c?pickle|dill|marshal|jsonpickle|shelve)\s+import\b"),
        # torch.load unpickles unless told weights_only=True.
        re.compile(r"\btorch\.load\s*\((?![^)\n]*\bweights_only\s*=\s*True)"),
        # Not an UnsafeLoader: that "Safe" is no safe loader.
        re.compile(r"\byaml\.load(?:_all)?\s*\((?![^)\n]*\bC?SafeLoader\b)"),
        re.compile(r"\byaml\.(?:unsafe_load|full_load)\w*\b"),
    ),
    "world_writable": (
        re.compile(r"\bchmod\s+(?:-\w+\s+)*0?[0-7]?(?:777|666)\b"),
        re.compile(r"\bchmod\s+(?:-\w+\s+)*[ugoa]*[ao][ugoa]*\+\w*w", _I),
        re.compile(r"\bos\.chmod\s*\([^\n]*\b0o?[0-7]?(?:777|666)\b"),
    ),
    "fetches_url": (
        re.compile(rf"\b(?:{_DOWNLOADERS}|download|pip\s+install)\b[^\n]*\b(?:https?|ftp)://", _I),
        re.compile(r"\bgit\+(?:https?|ssh)://", _I),
        # Network clients: a call, not a mention ("except requests.exceptions.Timeout").
        re.compile(r"\burllib\.request\.\w+"),
        re.compile(r"(?<![\w.])(?:urlopen|urlretrieve)\s*\("),
        re.compile(r"\b(?:requests|httpx)\.(?:\w+\.)*\w+\s*\("),
        re.compile(r"\baiohttp\.(?:ClientSession|request)\b"),
        re.compile(r"\bhttp\.client\.HTTPS?Connection\b"),
    ),
    "dependency_change": (
        re.compile(
            r"\b(?:pip[\d.]*|uv\s+pip|pipx|npm|pnpm|yarn|gem|cargo|go|apt(?:-get)?|brew|conda)"
            r"\s+(?:-\S+\s+)*install\b",
            _I,
        ),
        re.compile(r"\b(?:npm|pnpm)\s+i\b|\b(?:poetry|uv|yarn|pnpm)\s+add\b", _I),
        re.compile(r"\b(?:npx|pnpx|bunx|uvx)\s+\S", _I),
    ),
}
# Any URL added by a patch is something the patched code (or its build) would fetch.
_URL = re.compile(r"\b(?:https?|ftp)://", _I)


def patch_added_lines(patch: str) -> str:
    """The lines a unified diff adds (``+`` lines, not the ``+++`` file header), joined."""
    return "\n".join(
        line[1:]
        for line in patch.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    )


def fix_risks(suggested_fix: str, fix_patch: str | None) -> list[Risk]:
    """The risks (``RISKS`` order, each once) of what ``suggested_fix`` says to do and of the
    lines ``fix_patch`` adds: lines it removes are not looked at."""
    added = patch_added_lines(fix_patch) if fix_patch else ""
    found: set[Risk] = set()
    for risk, patterns in _PATTERNS.items():
        if any(p.search(text) for p in patterns for text in (suggested_fix, added) if text):
            found.add(risk)
    if added and _URL.search(added):
        found.add("fetches_url")
    return [risk for risk in RISKS if risk in found]
