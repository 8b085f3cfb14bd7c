"""What a CI job says about the pull request it runs for, read from its environment:
GitHub Actions' and GitLab CI's variables for the base to review against, the forge's API,
the project, the pull (merge) request's number and the token to post with."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mendline.schemas.errors import UsageError
from mendline.sinks.forges._api import ForgeAPI, ForgeKind

__all__ = ["PostTarget", "ci_base", "post_target"]

_GITHUB_API = "https://api.github.com"
_PULL_REF = re.compile(r"refs/pull/(\d+)/(?:merge|head)")
#: The variables a token is read from when --token-env is not given, in order.
TOKEN_VARIABLES: dict[ForgeKind, tuple[str, ...]] = {
    "github": ("MENDLINE_REVIEW_TOKEN", "GITHUB_TOKEN"),
    "gitlab": ("MENDLINE_REVIEW_TOKEN", "GITLAB_TOKEN"),
}


@dataclass(frozen=True)
class PostTarget:
    """Where a review's comment goes: the forge's API for the project, and the number of
    the pull request (GitHub) or the iid of the merge request (GitLab)."""

    api: ForgeAPI
    number: int


def ci_base(environ: Mapping[str, str]) -> str | None:
    """The base a CI job for a pull request reviews against: GitLab's merge base
    (``CI_MERGE_REQUEST_DIFF_BASE_SHA``), GitHub's target branch on origin
    (``origin/$GITHUB_BASE_REF``); None outside a pull request's job."""
    sha = environ.get("CI_MERGE_REQUEST_DIFF_BASE_SHA", "").strip()
    if sha:
        return sha
    branch = environ.get("GITHUB_BASE_REF", "").strip()
    return f"origin/{branch}" if branch else None


def post_target(
    kind: ForgeKind,
    environ: Mapping[str, str],
    *,
    number: int | None = None,
    project: str | None = None,
    api_url: str | None = None,
    token_env: str | None = None,
) -> PostTarget:
    """Where to post on ``kind``: what is given, else what the CI job's environment says.
    Raises UsageError naming what is missing (and the option that gives it)."""
    if kind == "github":
        project = project or environ.get("GITHUB_REPOSITORY")
        api_url = api_url or environ.get("GITHUB_API_URL") or _GITHUB_API
        number = number or _github_number(environ)
    else:
        project = project or environ.get("CI_PROJECT_ID") or environ.get("CI_PROJECT_PATH")
        api_url = api_url or environ.get("CI_API_V4_URL")
        iid = environ.get("CI_MERGE_REQUEST_IID", "")
        number = number or (int(iid) if iid.isdigit() else None)
    names = (token_env,) if token_env else TOKEN_VARIABLES[kind]
    token = next((environ[n] for n in names if environ.get(n)), None)
    missing = [
        what
        for what, value in (
            ("the project (--project)", project),
            ("the API's URL (--forge-url)", api_url),
            ("the pull request's number (--pr)", number),
            (f"a token (in {' or '.join(names)})", token),
        )
        if not value
    ]
    if missing:
        raise UsageError(f"cannot post on {kind}: no {', no '.join(missing)}")
    assert project and api_url and number and token  # said above
    return PostTarget(ForgeAPI(kind, api_url, project, token), number)


def _github_number(environ: Mapping[str, str]) -> int | None:
    """The pull request of a GitHub Actions job: its event's ``pull_request.number``, else
    the number in ``GITHUB_REF`` (``refs/pull/12/merge``)."""
    event_path = environ.get("GITHUB_EVENT_PATH")
    if event_path:
        try:
            event = json.loads(Path(event_path).read_text(encoding="utf-8"))
            number = event["pull_request"]["number"]
            if isinstance(number, int) and number > 0:
                return number
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not a pull request's event: the ref may still say
    found = _PULL_REF.fullmatch(environ.get("GITHUB_REF", ""))
    return int(found[1]) if found else None
