"""What a suggested fix or patch would do that a person must check first: shell commands,
downloads, code execution. An LLM wrote it after reading attacker-controlled event text."""

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
        re.compile(r"\bos\.(?:system|popen|exec[lv]p?e?|spawn[lv]p?e?)\s*\("),
        re.compile(r"\bsubprocess\.\w+\s*\([^\n]*\bshell\s*=\s*True"),
        re.compile(
            r"\bsubprocess\.(?:run|call|check_call|check_output|Popen|getoutput|getstatusoutput)"
            r"\s*\(\s*[fbru]*['\"]"
        ),
        re.compile(r"\b(?:commands\.getoutput|pty\.spawn)\s*\("),
        re.compile(r"(?:^|[\s`])sudo\s+\w"),
        re.compile(r"(?:^|\n)\s*\$\s+\w"),  # a command line, as shown in a terminal
    ),
    "code_execution": (
        # Not ast.literal_eval (a \w before it), nor model.eval() (a dot before it).
        re.compile(r"(?<![\w.])(?:eval|exec|execfile)\s*\("),
        re.compile(r"\bcompile\s*\([^\n]*['\"]exec['\"]"),
        re.compile(r"\b__import__\s*\("),
        re.compile(r"\bimportlib\.import_module\s*\("),
        re.compile(r"\bnew\s+Function\s*\("),
        re.compile(r"\bRuntime\.getRuntime\(\)\.exec\b"),
    ),
    "unsafe_deserialization": (
        re.compile(
            r"\b(?:c?pickle|dill|marshal|jsonpickle|shelve)\.(?:loads?|Unpickler|decode|open)\b"
        ),
        re.compile(r"\byaml\.load\s*\((?![^)\n]*Safe)"),
        re.compile(r"\byaml\.(?:unsafe_load|full_load)\b"),
    ),
    "world_writable": (
        re.compile(r"\bchmod\s+(?:-\w+\s+)*0?[0-7]?(?:777|666)\b"),
        re.compile(r"\bchmod\s+(?:-\w+\s+)*[ugoa]*[ao][ugoa]*\+\w*w", _I),
        re.compile(r"\bos\.chmod\s*\([^\n]*\b0o?[0-7]?(?:777|666)\b"),
    ),
    "fetches_url": (
        re.compile(rf"\b(?:{_DOWNLOADERS}|download|pip\s+install)\b[^\n]*\b(?:https?|ftp)://", _I),
        re.compile(r"\bgit\+(?:https?|ssh)://", _I),
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
