"""The environments git and the verification commands run with: never mendline's secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mendline.analyzers.grouping import child_environment

__all__ = ["command_environment", "git_environment", "with_git_setting"]

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


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for git: without mendline's settings (``MENDLINE_*``) and the variables
    that redirect git elsewhere, in English, never prompting. The rest stays (git may need
    ``SSH_AUTH_SOCK``, a proxy or a credential helper's variables to push)."""
    kept = {k: v for k, v in environ.items() if not _ours(k) and not _GIT_REDIRECTS.fullmatch(k)}
    return kept | _GIT_FIXED


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for the verification commands, which run the repository's code: without
    mendline's settings (every ``MENDLINE_*``), without any variable whose name says it is a
    secret (``*_TOKEN``, ``*PASSWORD*``, ``API_KEY``...) or whose value holds one (a URL with
    a password, a provider's token), and without git's redirections and settings."""
    return {
        name: value
        for name, value in child_environment(environ).items()
        if not _GIT_REDIRECTS.fullmatch(name) and not _GIT_SETTINGS.fullmatch(name)
    }


def with_git_setting(env: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """``env`` with one more git setting, given as ``GIT_CONFIG_KEY_<n>``/``VALUE_<n>`` after
    any already there: a secret set so never appears in a command line."""
    raw = env.get("GIT_CONFIG_COUNT", "")
    count = int(raw) if raw.isdigit() else 0
    return {
        **env,
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": key,
        f"GIT_CONFIG_VALUE_{count}": value,
    }
