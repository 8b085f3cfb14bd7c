"""The heal stage's verification plan: the policy's secrets (forge tokens, remediation
headers) named for the commands never to get."""

from __future__ import annotations

from mendline.schemas.fixpolicy import FixPolicy
from mendline.stages.heal import verify_plan


def test_every_token_env_and_remediation_header_env_is_kept_from_the_commands() -> None:
    policy = FixPolicy.model_validate(
        {
            "repositories": [
                {
                    "name": "shop",
                    "path": "/srv/shop",
                    "delivery": "pull_request",
                    "forge": "github",
                    "project": "acme/shop",
                    "token_env": "GITHUB_PAT",
                    "mappings": [{"stack_root": "", "source_root": ""}],
                },
                {
                    "name": "web",
                    "path": "/srv/web",
                    "token_env": "WEB_PUSH",
                    "mappings": [{"stack_root": "", "source_root": ""}],
                },
            ],
            "remediations": [
                {
                    "name": "restart",
                    "when": {"check": "api"},
                    "http": {
                        "url": "https://ops.example.test/restart",
                        "headers_env": {"Authorization": "OPS_HEADER"},
                    },
                }
            ],
        }
    )
    plan = verify_plan(policy.repositories[1], policy)
    assert plan.secret_env == {"GITHUB_PAT", "WEB_PUSH", "OPS_HEADER"}
