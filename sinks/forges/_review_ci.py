"""What a CI job says about the pull request it runs for, read from its environment:
GitHub Actions' and GitLab CI's variables for the base to review against, the forge's API,
the project, the pull (merge) request's number and the token to post with."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    #: A GitHub pull request from a fork, on the ``pull_request`` event: its token reads
    #: only, and a comment cannot be posted with it.
    from_fork: bool = False


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
    from_fork = False
    if kind == "github":
        event = _github_event(environ)
        project = project or environ.get("GITHUB_REPOSITORY")
        api_url = api_url or environ.get("GITHUB_API_URL") or _GITHUB_API
        number = number or _github_number(environ, event)
        from_fork = environ.get("GITHUB_EVENT_NAME") == "pull_request" and _from_fork(event)
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
        raise UsageError(f"cannot post on {kind}: missing {', '.join(missing)}")
    assert project and api_url and number and token  # said above
    return PostTarget(ForgeAPI(kind, api_url, project, token), number, from_fork)


def _github_event(environ: Mapping[str, str]) -> dict[str, Any]:
    """The job's event (``GITHUB_EVENT_PATH``), or {} when there is none to read."""
    event_path = environ.get("GITHUB_EVENT_PATH")
    if not event_path:
        return {}
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


def _github_number(environ: Mapping[str, str], event: Mapping[str, Any]) -> int | None:
    """The pull request of a GitHub Actions job: its event's ``pull_request.number``, else
    the number in ``GITHUB_REF`` (``refs/pull/12/merge``)."""
    pull = event.get("pull_request")
    number = pull.get("number") if isinstance(pull, dict) else None
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    found = _PULL_REF.fullmatch(environ.get("GITHUB_REF", ""))
    return int(found[1]) if found else None


def _from_fork(event: Mapping[str, Any]) -> bool:
    """Whether the event's pull request comes from another repository than its base."""
    try:
        head = event["pull_request"]["head"]["repo"]["full_name"]
        base = event["pull_request"]["base"]["repo"]["full_name"]
    except (KeyError, TypeError):
        return False
    return isinstance(head, str) and head != base
