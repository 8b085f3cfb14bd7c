"""The fix policy file's contents: which fixes are applied without a person, which need one or
two approvers, which are never applied; the repositories fixes go to, with their code
mappings; and the runbook remediations for systems (contracts only: no I/O).

The defaults of these models are the shipped default policy (a test keeps the shipped file
equal to ``FixPolicy()``): conservative, and with no repository, so that nothing is applied
until one is configured. Read a file with ``mendline.analyzers.policy.load_policy``; decide
with ``decide``, ``map_patch`` and ``remediation_decision`` there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mendline.schemas.checks import Duration
from mendline.schemas.finding import RISKS, Category, FixKind, Risk, Severity
from mendline.schemas.fix import DeliveryMode
from mendline.schemas.tomlfile import ENV_NAME

__all__ = [
    "DEFAULT_DENY_PATHS",
    "DEFAULT_DENY_PATTERNS",
    "FORGE_API_URLS",
    "ApprovalRules",
    "AutoRules",
    "CodeMapping",
    "DenyRules",
    "FixPolicy",
    "Forge",
    "HttpAction",
    "Remediation",
    "RemediationDecision",
    "RemediationVerdict",
    "RemediationWhen",
    "Repository",
    "TwoPerson",
]

#: The forges a repository's pull requests are opened on.
Forge = Literal["github", "gitlab"]
#: Each forge's public API, for a repository that gives no ``api_url``.
FORGE_API_URLS: dict[Forge, str] = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
}

#: The paths no fix may touch unless the policy file says otherwise: CI and hooks, database
#: migrations, secrets and keys, dependency manifests and locks, build scripts, git's own.
DEFAULT_DENY_PATHS: tuple[str, ...] = (
    # CI and what runs on developers' machines or in the build
    ".github/workflows/**",
    ".github/actions/**",
    ".gitlab-ci.yml",
    ".circleci/**",
    "Jenkinsfile",
    ".pre-commit-config.yaml",
    "**/Dockerfile*",
    # database migrations
    "**/migrations/**",
    "**/alembic/**",
    # secrets and keys
    "**/.env*",
    "**/*secret*",
    "**/*secret*/**",
    "**/*credential*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/id_rsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "**/.netrc",
    "**/.npmrc",
    "**/.pypirc",
    # dependencies: locks, manifests and the scripts that install
    "**/*.lock",
    "**/requirements*.txt",
    "**/requirements/**",
    "**/constraints*.txt",
    "**/Pipfile",
    "**/package.json",
    "**/package-lock.json",
    "**/pnpm-lock.yaml",
    "**/setup.py",
    # git's own files
    "**/.git/**",
    "**/.gitmodules",
)

#: What no added line may contain unless the policy file says otherwise (regular
#: expressions): code run from a string, a shell, new network destinations.
DEFAULT_DENY_PATTERNS: tuple[str, ...] = (
    r"(?<![\w.])(?:eval|exec)\s*\(",
    r"\bshell\s*=\s*True\b",
    r"\bos\.(?:system|popen)\s*\(",
    r"(?i)\b[a-z][a-z0-9+.-]*://",
    r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])",
    r"""["'](?:(?=[0-9A-Fa-f:]*[0-9A-Fa-f])[0-9A-Fa-f:]*::[0-9A-Fa-f:]*"""
    r"""|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4})["']""",
)

# The defaults that are lists of literals, typed (a lambda's list of strings is not).
_AUTO_SEVERITIES: tuple[Severity, ...] = ("low", "medium")
_AUTO_KINDS: tuple[FixKind, ...] = ("style", "formatting", "import")
_TWO_PERSON_SEVERITIES: tuple[Severity, ...] = ("critical",)
_TWO_PERSON_KINDS: tuple[FixKind, ...] = ("config", "dependency")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A git ref or remote name that git could not take for an option.
_GIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
_PROJECT = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+")
_HTTP_URL = re.compile(r"(?i)https?://[^/\s]+")
_METHOD = re.compile(r"[A-Z]{1,16}")


class _Model(BaseModel):
    # Strict: TOML has types, and "3" where a number belongs is a mistake worth telling.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# -- shared value checks -----------------------------------------------------------------


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a name (letters, digits, '.', '_' and '-', up to 100,"
            " starting with a letter or a digit)"
        )
    return value


def _env_name(value: str) -> str:
    # The value itself pasted where its variable's name belongs: do not echo it.
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            "is not an environment variable name (letters, digits and _): secrets come from"
            " environment variables, so put the value in one and name it here"
        )
    return value


def _no_credentials(value: str, instead: str) -> str:
    """``value`` (a URL) unless it carries a user or a password, which are not echoed."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value  # not a URL: the caller's own check says what is wrong
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"holds credentials: secrets come from environment variables ({instead});"
            " remove them from the URL"
        )
    return value


def _http_url(value: str, instead: str) -> str:
    if not _HTTP_URL.match(value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return _no_credentials(value, instead)


def _argv(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            'must be a list of strings (the program and its arguments, e.g. ["pytest", "-q"]),'
            " never a shell command line"
        )
    return value


def _non_empty_argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must name a program: an empty list runs nothing")
    if any(not arg for arg in value):
        raise ValueError("must not hold an empty string")
    return value


#: A command as the list of its program and arguments; run without a shell.
Argv = Annotated[list[str], BeforeValidator(_argv), AfterValidator(_non_empty_argv)]


def _glob(value: str) -> str:
    if not value:
        raise ValueError("an empty glob matches nothing")
    if value.startswith("/") or "\\" in value:
        raise ValueError(f"{value!r}: paths are relative to the repository, with / between folders")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r}: a path never goes up (..) in a repository")
    return value


#: A path glob, relative to the repository: ``*`` and ``?`` within a folder's name, ``**``
#: any folders; a glob without ``/`` matches a file's name in any folder.
Glob = Annotated[str, AfterValidator(_glob)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(
            f"{value!r} is not a regular expression: {exc.msg} at position {exc.pos}"
        ) from None
    return value


# -- the fix rules -----------------------------------------------------------------------


class AutoRules(_Model):
    """``[auto]``: the fixes applied without a person. Every condition must hold."""

    enabled: bool = Field(default=True, description="false: every fix needs a person.")
    severities: list[Severity] = Field(
        default_factory=lambda: list(_AUTO_SEVERITIES), description="The finding's severity."
    )
    kinds: list[FixKind] = Field(
        default_factory=lambda: list(_AUTO_KINDS),
        description="The finding's fix_kind; a finding without one never goes alone.",
    )
    min_confidence: float = Field(default=0.8, ge=0, le=1)
    paths: list[Glob] = Field(
        default_factory=lambda: ["**/*.py"],
        description="Every path the patch touches matches one (repository paths).",
    )
    max_changed_lines: int = Field(default=20, ge=1, description="Added plus removed lines.")
    max_per_hour: int = Field(
        default=3, ge=0, description="Automatic fixes per repository in the last hour."
    )


class TwoPerson(_Model):
    """``[approval.two_person]``: the fixes that need two approvers rather than one."""

    severities: list[Severity] = Field(default_factory=lambda: list(_TWO_PERSON_SEVERITIES))
    kinds: list[FixKind] = Field(default_factory=lambda: list(_TWO_PERSON_KINDS))
    categories: list[Category] = Field(default_factory=list)


class ApprovalRules(_Model):
    """``[approval]``: a fix neither denied nor automatic needs one approver, or two."""

    two_person: TwoPerson = Field(default_factory=TwoPerson)


class DenyRules(_Model):
    """``[deny]``: the fixes never applied. A list given replaces its default whole."""

    paths: list[Glob] = Field(
        default_factory=lambda: list(DEFAULT_DENY_PATHS),
        description="No path the patch touches may match one (repository paths).",
    )
    patterns: list[Annotated[str, AfterValidator(_regex)]] = Field(
        default_factory=lambda: list(DEFAULT_DENY_PATTERNS),
        description="No added line may match one (regular expressions, searched).",
    )
    risks: list[Risk] = Field(
        default_factory=lambda: list(RISKS),
        description="No risk of the finding, or found in its patch, may be one of these.",
    )
    dependency_changes: bool = Field(
        default=True,
        description="Deny changes to the dependencies in pyproject.toml and setup.cfg.",
    )


# -- repositories ------------------------------------------------------------------------


def _stack_root(value: str) -> str:
    if value and not value.endswith(("/", ".")):
        raise ValueError(
            f'{value!r}: end it with / for a path prefix ("app/") or . for a module'
            ' prefix ("app."), or leave it empty ("") to map every path'
        )
    return value


def _source_root(value: str) -> str:
    if value and not value.endswith("/"):
        raise ValueError(f'{value!r}: a folder of the repository ends with / ("src/app/")')
    if value.startswith("/") or "\\" in value:
        raise ValueError(f"{value!r}: relative to the repository's root, with / between folders")
    if any(part in ("..", ".") for part in value.split("/")[:-1]):
        raise ValueError(f"{value!r}: no . or .. folders: name the folder from the root")
    return value


class CodeMapping(_Model):
    """``[[repositories.mappings]]``: frame paths under ``stack_root`` are the repository's
    paths under ``source_root``, as Sentry's code mappings (the longest stack_root wins).

    ``stack_root`` is a path prefix ending in ``/`` (``app/``), a module prefix ending in
    ``.`` (``app.``, the same as ``app/``), or empty (every path)."""

    stack_root: Annotated[str, AfterValidator(_stack_root)]
    source_root: Annotated[str, AfterValidator(_source_root)] = ""

    @property
    def path_prefix(self) -> str:
        """``stack_root`` as a path prefix: ``app.orders.`` is ``app/orders/``."""
        if self.stack_root.endswith("."):
            return self.stack_root.replace(".", "/")
        return self.stack_root


class Repository(_Model):
    """``[[repositories]]``: a local clone fixes are made in (in worktrees of their own:
    mendline never touches its working tree) and how they reach people."""

    name: Annotated[str, AfterValidator(_name)]
    path: Path = Field(strict=False, description="The local clone, an absolute path.")
    base_branch: str = Field(default="main", description="What fixes are branched from.")
    remote: str | None = Field(
        default=None,
        description="A remote's name or URL to push to; unset: the clone's origin.",
    )
    delivery: DeliveryMode = "branch"
    forge: Forge | None = None
    api_url: str | None = Field(
        default=None, description="The forge's API; unset: its public one (FORGE_API_URLS)."
    )
    project: str | None = Field(default=None, description='On the forge: "owner/name".')
    token_env: Annotated[str, AfterValidator(_env_name)] | None = Field(
        default=None, description="The environment variable holding the forge's token."
    )
    verify: list[Argv] | None = Field(
        default=None,
        description="Commands run in the worktree to verify a fix; unset: the forges' defaults.",
    )
    test: Argv | None = Field(default=None, description="The test command.")
    verify_timeout: Duration = Field(default=600.0, gt=0)
    output_limit: int = Field(
        default=20_000, ge=1000, description="Characters of a command's output kept."
    )
    mappings: list[CodeMapping] = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{str(value)!r} is not an absolute path (the local clone)")
        return value

    @field_validator("base_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _GIT_NAME.fullmatch(value) or ".." in value or value.endswith((".", "/")):
            raise ValueError(f"{value!r} is not a branch name")
        return value

    @field_validator("remote")
    @classmethod
    def _remote(cls, value: str) -> str:
        if _GIT_NAME.fullmatch(value):
            return value
        if re.match(r"(?i)(?:https?|ssh|git)://\S+$|[\w.-]+@[\w.-]+:\S+$", value):
            return _no_credentials(value, "the forge's token_env")
        raise ValueError(
            f"{value!r} is not a remote: give a remote's name (origin) or its URL"
            " (https://, ssh:// or git@host:path)"
        )

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _http_url(value, "token_env")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT.fullmatch(value):
            raise ValueError(f'{value!r} is not a project: write "owner/name"')
        return value

    @model_validator(mode="after")
    def _forge_complete(self) -> Repository:
        if self.delivery == "pull_request" and self.forge is None:
            raise ValueError(
                'delivery = "pull_request" needs forge ("github" or "gitlab"), project and'
                " token_env"
            )
        if self.forge is not None:
            missing = [key for key in ("project", "token_env") if getattr(self, key) is None]
            if missing:
                raise ValueError(f'forge = "{self.forge}" needs {" and ".join(missing)}')
        return self

    @property
    def forge_api_url(self) -> str | None:
        """The forge's API: ``api_url``, else the forge's public one; None without a forge."""
        if self.forge is None:
            return None
        return self.api_url or FORGE_API_URLS[self.forge]


# -- remediations ------------------------------------------------------------------------


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class RemediationWhen(_Model):
    """``[remediations.when]``: what a remediation is for; every condition given must hold.

    ``labels`` are the alert labels (severity, service, environment, kind, "tag:NAME"), each
    one value or a list of them (any)."""

    check: str | None = Field(default=None, description="A health check's name.")
    labels: dict[str, Annotated[list[str], BeforeValidator(_one_or_more)]] = Field(
        default_factory=dict
    )
    category: Category | None = Field(default=None, description="An issue's category.")

    @model_validator(mode="after")
    def _something(self) -> RemediationWhen:
        if self.check is None and not self.labels and self.category is None:
            raise ValueError("give check, labels or category: a remediation for everything is none")
        if any(not values for values in self.labels.values()):
            raise ValueError("a label needs a value, or a list of at least one")
        return self


class HttpAction(_Model):
    """``[remediations.http]``: an HTTP request a remediation sends."""

    url: str
    method: str = "POST"
    headers_env: dict[str, Annotated[str, AfterValidator(_env_name)]] = Field(
        default_factory=dict,
        description="Header name -> the environment variable holding its value.",
    )
    body: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "headers_env")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _METHOD.fullmatch(value):
            raise ValueError(f"{value!r} is not an HTTP method (GET, POST, ...: capitals)")
        return value


class Remediation(_Model):
    """``[[remediations]]``: a runbook step for a system, run when ``when`` holds: exactly
    one of a ``command`` (argv, never through a shell) or an ``http`` request."""

    name: Annotated[str, AfterValidator(_name)]
    when: RemediationWhen
    command: Argv | None = None
    http: HttpAction | None = None
    target: str | None = Field(
        default=None,
        description="What it acts on, one run at a time (e.g. a service); unset: its name.",
    )
    requires_approval: bool = True
    cooldown: Duration = Field(default=600.0, description="Between two runs.")
    max_runs_per_hour: int = Field(default=3, ge=0)
    timeout: Duration = Field(default=60.0, gt=0)
    dry_run: bool = Field(default=False, description="Record what would run; run nothing.")
    verify: bool = Field(
        default=True,
        description="Run when.check again afterwards, and escalate when it is still down.",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Remediation:
        if (self.command is None) == (self.http is None):
            raise ValueError("give exactly one of command (a list of strings) or [http]")
        if self.verify and self.when.check is None:
            raise ValueError(
                "verify = true runs when.check again after the run: set when.check, or say"
                " verify = false"
            )
        return self

    @property
    def run_target(self) -> str:
        """What one run at a time is counted on: ``target``, else the name."""
        return self.target or self.name


#: Whether a remediation may run now: ``run`` (``dry_run`` says if for real),
#: ``needs_approval`` from a person first, or ``refused`` (a guardrail holds it back).
RemediationVerdict = Literal["run", "needs_approval", "refused"]


class RemediationDecision(_Model):
    """What the guardrails say of running a remediation now, with every reason."""

    verdict: RemediationVerdict
    reasons: list[str] = Field(default_factory=list)
    #: Record what would run and run nothing (``dry_run`` in the file).
    dry_run: bool = False


# -- the file ----------------------------------------------------------------------------


class FixPolicy(_Model):
    """The fix policy file: the rules, the repositories and the remediations."""

    auto: AutoRules = Field(default_factory=AutoRules)
    approval: ApprovalRules = Field(default_factory=ApprovalRules)
    deny: DenyRules = Field(default_factory=DenyRules)
    repositories: list[Repository] = Field(default_factory=list)
    remediations: list[Remediation] = Field(default_factory=list)

    def repository(self, name: str) -> Repository | None:
        """The repository called ``name``, if the file has one."""
        return next((repo for repo in self.repositories if repo.name == name), None)
