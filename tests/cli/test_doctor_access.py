"""What ``mendline doctor`` says about who can act and rewrite the audit trail: table tests
of its pure decisions."""

from __future__ import annotations

import socket

import pytest

from mendline.cli.doctor import (
    database_on_this_machine,
    database_role_exposure,
    local_role_exposure,
    run_checks,
)
from mendline.schemas.settings import load_settings


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("postgresql://postgres@127.0.0.1:5432/mendline", True),  # the dev stack's
        ("postgresql://mendline@localhost:5432/mendline", True),  # the default setting
        ("postgresql://app@[::1]:5432/mendline", True),
        ("postgresql:///mendline", True),  # the default Unix socket
        ("postgresql:///mendline?host=/run/postgresql", True),
        ("postgresql://mendline:pw@postgres:5432/mendline", False),  # docker-compose.yml's
        ("postgresql://app@db.internal.example:5432/mendline", False),
        ("postgresql://app@10.0.0.5/mendline", False),
        ("postgresql:///mendline?host=db.example,127.0.0.1", False),
        ("postgresql://app@localhost.evil.example/mendline", False),
    ],
)
def test_which_databases_are_on_this_machine(url: str, local: bool) -> None:
    assert database_on_this_machine(url) is local


@pytest.mark.parametrize(
    ("superuser", "owner", "local", "said"),
    [
        (True, True, False, "the role app is a superuser, so it can disable"),
        (True, False, False, "the role app is a superuser, so it can disable"),
        (False, True, False, "the role app owns mendline.audit_log, so it can disable"),
        (False, False, False, None),  # what `mendline grants` makes
        (True, True, True, None),  # the dev stack
    ],
)
def test_a_role_that_could_rewrite_the_audit_trail_is_warned(
    superuser: bool, owner: bool, local: bool, said: str | None
) -> None:
    found = database_role_exposure(
        "app", superuser=superuser, owns_audit_log=owner, on_this_machine=local
    )
    if said is None:
        assert found is None
    else:
        assert found is not None
        detail, hint = found
        assert detail.startswith(said) and detail.endswith("rewrite the trail")
        assert "`mendline grants ROLE`" in hint


@pytest.mark.parametrize(
    ("role", "url", "warned"),
    [
        ("admin", "postgresql://mendline:pw@postgres:5432/mendline", True),
        ("viewer", "postgresql://app@db.internal.example/mendline", True),
        ("none", "postgresql://mendline:pw@postgres:5432/mendline", False),  # production
        ("admin", "postgresql://postgres@127.0.0.1:41234/mendline", False),  # the dev stack
        ("admin", "postgresql:///mendline", False),
    ],
)
def test_acting_as_the_local_user_against_a_remote_database_is_warned(
    role: str, url: str, warned: bool
) -> None:
    found = local_role_exposure(role, url)
    assert (found is not None) is warned
    if found is not None:
        detail, hint = found
        assert detail.startswith(f"MENDLINE_LOCAL_ROLE is {role} for a database that is not on")
        assert "pw" not in detail and "MENDLINE_LOCAL_ROLE=none" in hint


async def test_the_token_never_shows_even_pasted_where_it_does_not_belong() -> None:
    token = "mlt_1a2b3c4d_" + "Q" * 43
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        closed = sock.getsockname()[1]
        settings = load_settings(
            kafka_bootstrap=f"127.0.0.1:{closed}",
            database_url=f"postgresql://app@127.0.0.1:{closed}/mendline",
            llm_base_url=f"http://127.0.0.1:{closed}/{token}/v1",  # the wrong variable
            token=token,
        )
        checks = await run_checks(settings, environ={}, timeout=2)
    llm = next(check for check in checks if check.name == "llm")
    assert llm.status == "fail" and "[Filtered]" in llm.detail
    assert token not in repr(checks) and token[13:] not in repr(checks)
