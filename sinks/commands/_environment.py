"""The environments of the programs mendline runs (verification commands, remediations,
git): never mendline's settings, and for the commands no secret."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mendline.analyzers.grouping import child_environment

__all__ = ["command_environment", "git_environment"]

# Variables that would point git at another repository or index than the one we name (set
# when mendline itself runs inside a git hook, say).
_GIT_REDIRECTS = re.compile(
    r"GIT_(DIR|WORK_TREE|INDEX_FILE|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES|COMMON_DIR"
    r"|NAMESPACE|PREFIX)"
)
# Configuration handed to git through the environment (a CI's authorization header...).
_GIT_SETTINGS = re.compile(r"GIT_CONFIG_(PARAMETERS|COUNT|KEY_\d+|VALUE_\d+)")
# English messages (they end up in refusals people read), no prompt for credentials (no
# one is there to answer), no editor, no pager.
_GIT_FIXED = {
    "LC_ALL": "C",
    "LANGUAGE": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
}


def _ours(name: str) -> bool:
    return name.upper().startswith("MENDLINE_")


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a command that runs someone else's code (a repository's tests, a
    remediation): ``child_environment``'s (no ``MENDLINE_*``, no variable whose name or
    value looks secret), also without git's redirections and settings (``GIT_DIR``,
    ``GIT_CONFIG_*``). A command gets what else it needs from its own configuration."""
    return {
        name: value
        for name, value in child_environment(environ).items()
        if not _GIT_REDIRECTS.fullmatch(name) and not _GIT_SETTINGS.fullmatch(name)
    }


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for git: without mendline's settings (``MENDLINE_*``) and the variables
    that redirect git elsewhere, in English, never prompting. The rest stays (git may need
    ``SSH_AUTH_SOCK``, a proxy or a credential helper's variables to push)."""
    kept = {k: v for k, v in environ.items() if not _ours(k) and not _GIT_REDIRECTS.fullmatch(k)}
    return kept | _GIT_FIXED
