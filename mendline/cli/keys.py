"""The ``mendline keys`` commands: the relay's keys, each a Sentry DSN for one service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from mendline.analyzers.policy.people import authorize
from mendline.cli._actor import acting
from mendline.cli._options import AS_JSON, Commands, duration
from mendline.cli.output import print_done, print_json, printable, shorten, table
from mendline.schemas.errors import ConfigError
from mendline.schemas.people import Actor
from mendline.schemas.relay import RelayKey
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.sinks.postgres import PeopleStore, RelayKeyStore

__all__ = ["register"]

_T = TypeVar("_T")


def register(commands: Commands) -> None:
    """Add ``keys`` and its subcommands to the top-level ``commands``."""
    keys = commands.add_parser(
        "keys", help="the relay's keys: a Sentry DSN per service (`mendline relay`)"
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", parents=[AS_JSON], help="a new key for a service; prints its DSN (admin)"
    )
    create.add_argument("service", help="the service its events belong to (none other)")
    create.add_argument(
        "--environment",
        default="production",
        help="its events' environment when they name none (default: production)",
    )
    create.add_argument("--label", default="", help="what the key is for (shown in the list)")
    create.add_argument(
        "--origin",
        action="append",
        dest="origins",
        metavar="ORIGIN",
        help="a browser origin allowed to send with it (https://shop.example.com,"
        " *.example.com); repeat for more; default: any",
    )
    create.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="events a minute (0: none); default: MENDLINE_RELAY_RATE_LIMIT",
    )
    create.set_defaults(run=_create)
    listing = key_commands.add_parser("list", parents=[AS_JSON], help="the keys and their DSNs")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.set_defaults(run=_list)
    revoke = key_commands.add_parser(
        "revoke", parents=[AS_JSON], help="refuse a key's events from now on (admin)"
    )
    revoke.add_argument("key", metavar="KEY", help="its id or public key")
    revoke.set_defaults(run=_revoke)
    rotate = key_commands.add_parser(
        "rotate",
        parents=[AS_JSON],
        help="a new key in place of one; the old one works for --grace more (admin)",
    )
    rotate.add_argument("key", metavar="KEY", help="its id or public key")
    rotate.add_argument(
        "--grace",
        type=duration,
        default=timedelta(hours=24),
        help="how long the old key still works, e.g. 0, 30m, 7d (default: 24h)",
    )
    rotate.set_defaults(run=_rotate)


def _keys_acting(settings: Settings, work: Callable[[RelayKeyStore, Actor], Awaitable[_T]]) -> _T:
    """``work(keys, actor)`` with the actor the settings say, on the people store's pool."""
    from mendline.cli._actor import audit_writer, cli_origin
    from mendline.sinks.postgres import RelayKeyStore

    async def with_keys(people: PeopleStore, actor: Actor) -> _T:
        return await work(RelayKeyStore(people.pool, audit_writer(), cli_origin()), actor)

    return acting(settings, with_keys)


def _json(key: RelayKey, settings: Settings) -> dict[str, object]:
    return {**key.as_json(), "dsn": _dsn(key, settings)}


def _dsn(key: RelayKey, settings: Settings) -> str:
    from mendline.ingest.relay import format_dsn

    return format_dsn(settings.relay_url, key.public_key, key.project_id)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from mendline.ingest.relay import format_dsn

    try:  # a DSN can be made of the relay's address: said before a key is made
        format_dsn(settings.relay_url, "0" * 32, 1)
    except ValueError as exc:
        raise ConfigError(
            f"no DSN can name the relay's address: {exc}",
            hint="set MENDLINE_RELAY_PUBLIC_URL to the address apps reach the relay at",
        ) from None
    key = _keys_acting(
        settings,
        lambda keys, actor: keys.create_key(
            actor,
            args.service,
            args.environment,
            label=args.label,
            origins=tuple(args.origins or ("*",)),
            rate_limit=args.rate_limit,
        ),
    )
    if args.json:
        print_json(_json(key, settings))
    else:
        print(
            f"key {key.id} for {printable(key.service)} ({printable(key.environment)}):"
            " set it as the DSN of the service's Sentry SDK",
            file=sys.stderr,
        )
        print(_dsn(key, settings))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(keys: RelayKeyStore, actor: Actor) -> list[RelayKey]:
        authorize(actor, "relay_key.list")
        return await keys.list_keys(all_keys=args.all)

    found = _keys_acting(settings, work)
    if args.json:
        for key in found:
            print_json(_json(key, settings))
    elif found:
        rows = [
            (
                str(key.id),
                shorten(key.service, 30),
                shorten(key.environment, 20),
                _state(key),
                shorten(key.label, 20) or "-",
                _dsn(key, settings),
            )
            for key in found
        ]
        print(table(("ID", "SERVICE", "ENVIRONMENT", "STATE", "LABEL", "DSN"), rows))
    else:
        print("no relay keys: `mendline keys create SERVICE` makes one", file=sys.stderr)
    return 0


def _state(key: RelayKey) -> str:
    if key.revoked_at is None:
        return "active"
    if key.rotated_to is not None:
        return f"rotated, until {key.revoked_at:%Y-%m-%d %H:%M}"
    return "revoked"


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key = _keys_acting(settings, lambda keys, actor: keys.revoke_key(actor, args.key))
    print_done(
        args,
        f"revoked key {key.id} of {printable(key.service)}: its events are refused",
        **_json(key, settings),
    )
    return 0


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    new, old = _keys_acting(
        settings, lambda keys, actor: keys.rotate_key(actor, args.key, args.grace)
    )
    if args.json:
        print_json({**_json(new, settings), "replaces": _json(old, settings)})
    else:
        until = f"{old.revoked_at:%Y-%m-%d %H:%M %Z}" if old.revoked_at else "now"
        print(
            f"key {new.id} replaces key {old.id} of {printable(new.service)}; the old DSN"
            f" works until {until}",
            file=sys.stderr,
        )
        print(_dsn(new, settings))
    return 0
