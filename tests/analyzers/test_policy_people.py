"""Who may do what, and the API tokens' format: table tests of the pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mendline.analyzers.policy.people import (
    PERMISSIONS,
    allowed,
    authorize,
    check_token_role,
    last_admin_refusal,
    lower_role,
    new_token,
    parse_token,
    token_hash,
    token_refusal,
    user_name_refusal,
)
from mendline.schemas.errors import AuthenticationFailed, PermissionDenied
from mendline.schemas.people import ROLES, Actor, Role

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def actor(role: Role) -> Actor:
    return Actor(name="alice", role=role, auth="token")


@pytest.mark.parametrize(
    ("action", "least"),
    [
        ("issue.read", "viewer"),
        ("user.list", "viewer"),
        ("token.revoke_own", "viewer"),
        ("issue.resolve", "responder"),
        ("issue.ignore", "responder"),
        ("issue.merge", "responder"),
        ("finding.mark", "responder"),
        ("fix.propose", "responder"),
        ("fix.approve", "approver"),
        ("fix.reject", "approver"),
        ("fix.apply", "approver"),
        ("fix.rollback", "approver"),
        ("remediation.read", "viewer"),
        ("remediation.run", "approver"),
        ("user.add", "admin"),
        ("user.set_role", "admin"),
        ("user.disable", "admin"),
        ("user.enable", "admin"),
        ("token.create", "admin"),
        ("token.revoke", "admin"),
        ("policy.change", "admin"),
        ("events.prune", "admin"),
    ],
)
def test_each_action_needs_its_role_and_the_roles_above_may_too(action: str, least: Role) -> None:
    assert PERMISSIONS[action] == least
    for role in ROLES:
        if ROLES.index(role) >= ROLES.index(least):
            authorize(actor(role), action)
        else:
            with pytest.raises(PermissionDenied) as refused:
                authorize(actor(role), action)
            assert (refused.value.action, refused.value.needed) == (action, least)
            assert f"it needs the role {least}" in str(refused.value)


@pytest.mark.parametrize("action", ["issue.delete", "", "USER.ADD", "user.add "])
def test_an_unknown_action_is_refused_even_to_admins(action: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        authorize(actor("admin"), action)
    assert refused.value.needed is None


@pytest.mark.parametrize(
    ("token_role", "user_role", "allowed"),
    [
        ("viewer", "admin", True),
        ("admin", "admin", True),
        ("responder", "responder", True),
        ("approver", "responder", False),
        ("admin", "viewer", False),
    ],
)
def test_a_tokens_role_is_at_most_its_users(
    token_role: Role, user_role: Role, allowed: bool
) -> None:
    if allowed:
        check_token_role(token_role, user_role)
    else:
        with pytest.raises(PermissionDenied, match="cannot exceed its user's"):
            check_token_role(token_role, user_role)


@pytest.mark.parametrize(
    ("one", "other", "lower"),
    [
        ("admin", "viewer", "viewer"),
        ("responder", "approver", "responder"),
        ("admin", "admin", "admin"),
    ],
)
def test_the_lower_role(one: Role, other: Role, lower: Role) -> None:
    assert lower_role(one, other) == lower_role(other, one) == lower


def test_a_new_token_parses_to_its_id_and_hash_and_each_is_new() -> None:
    token, token_id, secret_hash = new_token()
    assert token.startswith(token_id + "_") and len(token_id) == len("mlt_") + 8
    assert parse_token(token) == (token_id, secret_hash)
    assert secret_hash == token_hash(token) and token not in secret_hash and len(secret_hash) == 64
    assert len({new_token()[0] for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mlt_",
        "mlt_abcd1234",
        "xyz_abcd1234_" + "a" * 43,
        "mlt_ABCD1234_" + "a" * 43,  # the id is lower-case hex
        "mlt_abcd123_" + "a" * 44,
        "mlt_abcd1234_" + "a" * 42,
        "mlt_abcd1234_" + "a" * 44,
        "mlt_abcd1234_" + "a" * 42 + "=",
        "mlt_abcd1234-" + "a" * 43,
    ],
)
def test_a_malformed_token_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        parse_token(text)
    assert refused.value.reason == "malformed"
    assert str(refused.value) == "not a mendline token (expected mlt_<id>_<secret>)"


@pytest.mark.parametrize(
    ("expires", "revoked", "disabled", "reason"),
    [
        (None, None, None, None),
        (NOW + timedelta(seconds=1), None, None, None),
        (NOW, None, None, "expired"),
        (NOW - timedelta(days=1), None, None, "expired"),
        (None, NOW - timedelta(seconds=1), None, "revoked"),
        (NOW - timedelta(days=1), NOW - timedelta(days=2), None, "revoked"),
        (None, None, NOW - timedelta(hours=1), "disabled"),
        (None, NOW + timedelta(hours=1), None, None),
    ],
)
def test_why_a_known_token_may_not_act(
    expires: datetime | None,
    revoked: datetime | None,
    disabled: datetime | None,
    reason: str | None,
) -> None:
    refusal = token_refusal(
        now=NOW, expires_at=expires, revoked_at=revoked, user_disabled_at=disabled
    )
    assert (refusal.reason if refusal else None) == reason


@pytest.mark.parametrize(
    ("name", "admins", "stays_admin", "refused"),
    [
        ("alice", ["alice"], False, True),  # the last admin, demoted or disabled
        ("alice", ["alice"], True, False),  # made admin again: still one
        ("alice", ["alice", "bob"], False, False),
        ("carol", ["alice"], False, False),  # not an admin: no admin is lost
        ("carol", [], False, False),  # no admin to lose (before the first one)
        ("alice", [], True, False),
    ],
)
def test_the_last_active_admin_stays(
    name: str, admins: list[str], stays_admin: bool, refused: bool
) -> None:
    refusal = last_admin_refusal(name, admins, stays_admin=stays_admin, action="user.disable")
    assert (refusal is not None) is refused
    if refusal is not None:
        assert str(refusal).startswith("alice is the last active admin: user.disable would")
        assert refusal.action == "user.disable" and refusal.hint


@pytest.mark.parametrize(
    ("role", "action", "may"),
    [
        ("admin", "token.list_all", True),
        ("approver", "token.list_all", False),
        ("viewer", "token.list", True),
        ("admin", "issue.delete", False),  # unknown to the table: no one
    ],
)
def test_allowed_is_authorize_without_the_refusal(role: Role, action: str, may: bool) -> None:
    assert allowed(actor(role), action) is may


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("alice", None),
        ("Zoë O'Brien", None),
        ("ci-bot@example.com", None),
        ("x" * 200, None),
        ("", "a user's name has 1 to 200 characters"),
        ("x" * 201, "a user's name has 1 to 200 characters"),
        (" alice", "a user's name may not start or end with spaces"),
        ("alice\t", "a user's name may not start or end with spaces"),
        ("alice\u00a0", "a user's name may not start or end with spaces"),
        ("mallory\x1b[2J", "a user's name may not hold the control character U+001B"),
        ("ali\u202ece", "a user's name may not hold the control character U+202E"),
        ("al\u200bice", "a user's name may not hold the control character U+200B"),
        ("a\x00b", "a user's name may not hold the control character U+0000"),
        ("mendline", "'mendline' is mendline's own name in the audit trail"),
        ("MendLine", "'mendline' is mendline's own name in the audit trail"),
    ],
)
def test_which_names_a_user_may_have(name: str, refusal: str | None) -> None:
    assert user_name_refusal(name) == refusal
