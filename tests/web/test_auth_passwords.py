"""Passwords in the people store, on the real PostgreSQL: set by an admin or by the user
themselves (audited without the secret), refused when weak, checked with one argon2
verification whatever the outcome, rehashed when the parameters were weaker, and a change
ends the user's sessions."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from mendline.schemas.errors import PermissionDenied, RejectedData
from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.sinks.postgres import PasswordCheck, PeopleStore, append_audit
from tests.db_helpers import query
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration

NEW = "a brand new passphrase"


def store(web: ServedWeb) -> PeopleStore:
    return PeopleStore(web.pool, append_audit, origin="test")


async def user_id(web: ServedWeb, name: str) -> int:
    rows = await query(web.database_url, "SELECT id FROM mendline.users WHERE name = $1", name)
    return int(rows[0]["id"])


async def test_an_admin_sets_a_password_audited_without_the_secret(web: ServedWeb) -> None:
    admin = Actor(name="admin", role="admin", auth="token", user_id=await user_id(web, "admin"))
    user, ended = await store(web).set_password(admin, "viewer", NEW)
    assert user.name == "viewer" and user.password_set_at is not None and ended == 0
    (row,) = await query(
        web.database_url, "SELECT password_hash FROM mendline.users WHERE name = 'viewer'"
    )
    assert row["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    (audit,) = await query(
        web.database_url,
        """SELECT actor_name, target, before, after, row_to_json(a)::text AS whole
           FROM mendline.audit_log a WHERE action = 'user.password'""",
    )
    assert (audit["actor_name"], audit["target"]) == ("admin", "user:viewer")
    assert audit["before"] == '{"password_set": true}'
    assert audit["after"] == '{"password_set": true, "sessions_ended": 0}'
    assert NEW not in audit["whole"] and row["password_hash"] not in audit["whole"]
    checked = await store(web).check_password("viewer", NEW)
    assert checked.actor is not None and checked.actor.auth == "session"
    assert await store(web).check_password("viewer", web.passwords["viewer"]) == PasswordCheck(
        None, "wrong_password"
    )


async def test_anyone_sets_their_own_password_and_no_one_elses(web: ServedWeb) -> None:
    me = Actor(name="viewer", role="viewer", auth="token", user_id=await user_id(web, "viewer"))
    await store(web).set_password(me, "viewer", NEW)
    with pytest.raises(PermissionDenied, match=r"may not user\.password: it needs the role admin"):
        await store(web).set_password(me, "responder", NEW)
    assert (await store(web).check_password("responder", web.passwords["responder"])).actor
    rows = await query(
        web.database_url, "SELECT target FROM mendline.audit_log WHERE action = 'user.password'"
    )
    assert [row["target"] for row in rows] == ["user:viewer"]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("too short", "a password has at least 12 characters"),
        ("x" * 11, "a password has at least 12 characters"),
        ("y" * 1025, "a password has at most 1024 characters"),
    ],
)
async def test_weak_passwords_are_refused_with_a_clear_message(
    web: ServedWeb, password: str, message: str
) -> None:
    with pytest.raises(RejectedData, match=message) as refused:
        await store(web).set_password(SYSTEM_ACTOR, "approver", password)
    assert refused.value.hint == "choose a longer passphrase, e.g. four words"


async def test_the_users_name_is_no_password(web: ServedWeb) -> None:
    people = store(web)
    await people.add_user(SYSTEM_ACTOR, "margaret-hamilton", "viewer")
    with pytest.raises(RejectedData, match="a password may not be the user's name"):
        await people.set_password(SYSTEM_ACTOR, "margaret-hamilton", "Margaret-Hamilton")


async def test_a_new_password_ends_the_users_sessions(web: ServedWeb) -> None:
    async with web.logged_in("responder") as (browser, _), web.logged_in("viewer") as (other, _):
        _, ended = await store(web).set_password(SYSTEM_ACTOR, "responder", NEW)
        assert ended == 1
        assert (await browser.get("/api/v1/me")).status_code == 401
        assert (await other.get("/api/v1/me")).status_code == 200  # someone else's stays
        await web.login(browser, "responder", NEW)


async def test_every_failed_check_says_why_for_the_audit_trail(web: ServedWeb) -> None:
    people = store(web)
    await people.add_user(SYSTEM_ACTOR, "no-password-yet", "viewer")
    await people.disable_user(SYSTEM_ACTOR, "approver")
    checks = {
        name: (await people.check_password(name, password)).refusal
        for name, password in (
            ("nobody-at-all", "whatever-it-is"),
            ("no-password-yet", "whatever-it-is"),
            ("viewer", "whatever-it-is"),
            ("approver", web.passwords["approver"]),
        )
    }
    assert checks == {
        "nobody-at-all": "unknown",
        "no-password-yet": "no_password",
        "viewer": "wrong_password",
        "approver": "disabled",  # the right password of a disabled user
    }
    ok = await people.check_password("admin", web.passwords["admin"])
    assert ok.actor == Actor(
        name="admin", role="admin", auth="session", user_id=await user_id(web, "admin")
    )


async def test_a_hash_made_with_weaker_parameters_is_made_again_at_login(web: ServedWeb) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(NEW)
    await query(
        web.database_url, "UPDATE mendline.users SET password_hash = $1 WHERE name = 'viewer'", weak
    )
    assert (await store(web).check_password("viewer", NEW)).actor is not None
    (row,) = await query(
        web.database_url, "SELECT password_hash FROM mendline.users WHERE name = 'viewer'"
    )
    assert row["password_hash"] != weak and "m=65536,t=3,p=4" in row["password_hash"]
    assert (await store(web).check_password("viewer", NEW)).actor is not None
    # Rehashing is no change of the password: nothing is audited.
    audited = await query(
        web.database_url,
        "SELECT count(*) AS n FROM mendline.audit_log WHERE action = 'user.password'",
    )
    assert audited[0]["n"] == 0
