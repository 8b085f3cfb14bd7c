"""The ``mendline users`` and ``tokens`` commands: who may act on mendline, with which role,
their dashboard passwords, and the API tokens they act with."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mendline.analyzers.policy.people import authorize, tokens_listed
from mendline.cli._actor import acting
from mendline.cli._options import AS_JSON, Commands, some_duration
from mendline.cli.output import print_done, print_json, printable, shorten, table
from mendline.schemas.errors import UsageError
from mendline.schemas.people import ROLES, Actor
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import PeopleStore, TokenInfo, User

__all__ = ["register"]

_STORE_IT = (
    "store this token now (e.g. in MENDLINE_TOKEN or your CI's secrets): it is shown only this once"
)


def register(commands: Commands) -> None:
    """Add ``users`` and ``tokens`` with their subcommands to the top-level ``commands``."""
    _register_users(commands)
    _register_tokens(commands)


def _register_users(commands: Commands) -> None:
    users = commands.add_parser("users", help="the people who act on mendline, and their roles")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", parents=[AS_JSON], help="add a user (admin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer", help="default: viewer")
    add.set_defaults(run=_users_add)
    listing = user_commands.add_parser("list", parents=[AS_JSON], help="the users")
    listing.set_defaults(run=_users_list)
    set_role = user_commands.add_parser(
        "set-role", parents=[AS_JSON], help="give a user another role (admin)"
    )
    set_role.add_argument("name")
    set_role.add_argument("role", choices=ROLES)
    set_role.set_defaults(run=_users_set_role)
    disable = user_commands.add_parser(
        "disable", parents=[AS_JSON], help="disable a user and their tokens (admin)"
    )
    disable.add_argument("name")
    disable.set_defaults(run=_users_disable)
    enable = user_commands.add_parser(
        "enable", parents=[AS_JSON], help="enable a disabled user again (admin)"
    )
    enable.add_argument("name")
    enable.set_defaults(run=_users_enable)
    passwd = user_commands.add_parser(
        "passwd",
        parents=[AS_JSON],
        help="set a user's dashboard password (admin; anyone their own), asked twice on the"
        " terminal",
    )
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead (never from"
        " the command line, where other users' `ps` would see it)",
    )
    passwd.set_defaults(run=_users_passwd)


def _register_tokens(commands: Commands) -> None:
    tokens = commands.add_parser("tokens", help="API tokens for the CLI, CI and automation")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = token_commands.add_parser(
        "create", parents=[AS_JSON], help="make a token, printed once (admin)"
    )
    create.add_argument("--user", help="whose token (default: yours)")
    create.add_argument("--role", choices=ROLES, help="at most the user's (default: theirs)")
    create.add_argument("--name", default="", help="what it is for, e.g. `ci deploy`")
    create.add_argument(
        "--expires", type=some_duration, metavar="DURATION", help="e.g. 30d, 12h (default: never)"
    )
    create.set_defaults(run=_tokens_create)
    listing = token_commands.add_parser(
        "list", parents=[AS_JSON], help="the tokens, never their secrets"
    )
    listing.add_argument(
        "--user",
        help="only this user's (yours: any role; others': admin); default: an"
        " admin's, everyone's; anyone else's, their own",
    )
    listing.set_defaults(run=_tokens_list)
    revoke = token_commands.add_parser(
        "revoke", parents=[AS_JSON], help="revoke a token (admin, or its own user)"
    )
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="its visible id, mlt_xxxxxxxx")
    revoke.set_defaults(run=_tokens_revoke)


def _user_json(user: User) -> dict[str, object]:
    return {**asdict(user), "disabled": user.disabled_at is not None}


def _token_json(token: TokenInfo) -> dict[str, object]:
    return asdict(token)


def _users_add(args: argparse.Namespace, settings: Settings) -> int:
    user = acting(settings, lambda store, actor: store.add_user(actor, args.name, args.role))
    print_done(args, f"added user {printable(user.name)} ({user.role})", **_user_json(user))
    return 0


def _users_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: PeopleStore, actor: Actor) -> list[User]:
        authorize(actor, "user.list")
        return await store.list_users()

    users = acting(settings, work)
    if args.json:
        for user in users:
            print_json(_user_json(user))
    elif users:
        rows = [
            (
                shorten(u.name, 40),
                u.role,
                "disabled" if u.disabled_at else "active",
                f"{u.created_at:%Y-%m-%d %H:%M}",
                shorten(u.created_by, 40),
            )
            for u in users
        ]
        print(table(("NAME", "ROLE", "STATE", "CREATED", "BY"), rows))
    else:
        print("no users yet: `mendline users add NAME --role admin`", file=sys.stderr)
    return 0


def _users_set_role(args: argparse.Namespace, settings: Settings) -> int:
    user, changed = acting(
        settings, lambda store, actor: store.set_role(actor, args.name, args.role)
    )
    said = "is now" if changed else "was already"
    print_done(
        args, f"{printable(user.name)} {said} {user.role}", **_user_json(user), changed=changed
    )
    return 0


def _users_disable(args: argparse.Namespace, settings: Settings) -> int:
    user = acting(settings, lambda store, actor: store.disable_user(actor, args.name))
    print_done(
        args, f"disabled {printable(user.name)}; their tokens no longer work", **_user_json(user)
    )
    return 0


def _users_enable(args: argparse.Namespace, settings: Settings) -> int:
    user, changed = acting(settings, lambda store, actor: store.enable_user(actor, args.name))
    name = printable(user.name)
    said = (
        f"enabled {name}; their tokens not revoked or expired work again"
        if changed
        else f"{name} was not disabled"
    )
    print_done(args, said, **_user_json(user), changed=changed)
    return 0


def _users_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = _password_from_stdin() if args.password_stdin else _password_from_terminal()
    user, ended = acting(
        settings, lambda store, actor: store.set_password(actor, args.name, password)
    )
    name = printable(user.name)
    sessions = f"; {ended} dashboard session{'s' if ended != 1 else ''} ended" if ended else ""
    print_done(
        args, f"set the password of {name}{sessions}", **_user_json(user), sessions_ended=ended
    )
    return 0


def _password_from_stdin() -> str:
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def _password_from_terminal() -> str:
    """The password, typed twice without echo on the terminal."""
    if not sys.stdin.isatty():
        raise UsageError(
            "no terminal to ask for the password on",
            hint="pipe it in with --password-stdin (e.g. from a secrets manager)",
        )
    password = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != password:
        raise UsageError("the two passwords differ", hint="run it again and type the same twice")
    return password


def _tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: PeopleStore, actor: Actor) -> tuple[str, TokenInfo]:
        expires_at = datetime.now(UTC) + args.expires if args.expires else None
        return await store.create_token(
            actor, args.user or actor.name, args.role, args.name, expires_at
        )

    token, info = acting(settings, work)
    print(f"warning: {_STORE_IT}", file=sys.stderr)
    if args.json:
        print_json({"token": token, **_token_json(info)})
    else:
        print(token)
    return 0


def _tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: PeopleStore, actor: Actor) -> list[TokenInfo]:
        return await store.list_tokens(tokens_listed(actor, args.user))

    tokens = acting(settings, work)
    if args.json:
        for token in tokens:
            print_json(_token_json(token))
    elif tokens:
        print(
            table(
                ("ID", "USER", "ROLE", "STATE", "EXPIRES", "LAST USED", "NAME"),
                [
                    (
                        t.token_id,
                        shorten(t.user_name, 40),
                        t.role,
                        _token_state(t),
                        f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
                        f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
                        shorten(t.name, 60),
                    )
                    for t in tokens
                ],
            )
        )
    else:
        print("no tokens", file=sys.stderr)
    return 0


def _token_state(token: TokenInfo) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= datetime.now(UTC):
        return "expired"
    return "active"


def _tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    info = acting(settings, lambda store, actor: store.revoke_token(actor, args.token_id))
    print_done(args, f"revoked {info.token_id}", **_token_json(info))
    return 0
