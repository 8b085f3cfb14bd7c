"""What a CI job's environment says about the pull request a review posts on, for GitHub
Actions and GitLab CI, and what is missing when it says too little."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mendline.schemas.errors import UsageError
from mendline.sinks.forges._review_ci import ci_base, post_target


@pytest.mark.parametrize(
    ("environ", "base"),
    [
        ({}, None),
        ({"GITHUB_BASE_REF": "main"}, "origin/main"),
        ({"GITHUB_BASE_REF": ""}, None),  # a push, not a pull request
        ({"CI_MERGE_REQUEST_DIFF_BASE_SHA": "abc123", "GITHUB_BASE_REF": "x"}, "abc123"),
    ],
)
def test_ci_base(environ: dict[str, str], base: str | None) -> None:
    assert ci_base(environ) == base


def test_github_from_the_event_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    target = post_target(
        "github",
        {
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_API_URL": "http://127.0.0.1:9/api",
            "GITHUB_TOKEN": "ghs_x",
        },
    )
    assert (target.number, target.api.project, target.api.api_url) == (
        42,
        "acme/shop",
        "http://127.0.0.1:9/api",
    )
    assert target.api.kind == "github" and target.api.token == "ghs_x"


@pytest.mark.parametrize(
    ("environ", "number"),
    [
        ({"GITHUB_REF": "refs/pull/7/merge"}, 7),
        ({"GITHUB_REF": "refs/heads/main", "GITHUB_EVENT_PATH": "/nonexistent/event.json"}, None),
    ],
)
def test_github_number_from_the_ref(environ: dict[str, str], number: int | None) -> None:
    base = {"GITHUB_REPOSITORY": "acme/shop", "GITHUB_TOKEN": "t"}
    if number is None:
        with pytest.raises(UsageError, match="pull request's number"):
            post_target("github", base | environ)
    else:
        assert post_target("github", base | environ).number == number


def test_gitlab_from_its_variables_and_a_token_variable_named() -> None:
    target = post_target(
        "gitlab",
        {
            "CI_PROJECT_ID": "1234",
            "CI_API_V4_URL": "http://127.0.0.1:9/api/v4",
            "CI_MERGE_REQUEST_IID": "5",
            "REVIEW_BOT": "glpat-x",
            "GITLAB_TOKEN": "not this one",
        },
        token_env="REVIEW_BOT",
    )
    assert (target.number, target.api.project, target.api.token) == (5, "1234", "glpat-x")


def test_what_is_missing_is_named_and_no_token_is_printed() -> None:
    with pytest.raises(UsageError) as caught:
        post_target("gitlab", {"CI_PROJECT_ID": "1"})
    message = str(caught.value)
    assert "--forge-url" in message and "--pr" in message
    assert "MENDLINE_REVIEW_TOKEN or GITLAB_TOKEN" in message


def test_given_values_win_over_the_environment() -> None:
    target = post_target(
        "github",
        {"GITHUB_REPOSITORY": "acme/shop", "GITHUB_REF": "refs/pull/7/merge", "GITHUB_TOKEN": "t"},
        number=9,
        project="acme/other",
        api_url="http://127.0.0.1:9",
    )
    assert (target.number, target.api.project, target.api.api_url) == (
        9,
        "acme/other",
        "http://127.0.0.1:9",
    )
