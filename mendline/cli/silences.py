"""The ``mendline silences`` commands: hold alerts back for a while, list and expire silences."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mendline.cli._actor import acting
from mendline.cli._hints import hint_on
from mendline.cli._options import AS_JSON, Commands, ends_at, positive
from mendline.cli.output import print_done, print_json, printable, shorten, table
from mendline.schemas.errors import SilenceNotFound, UsageError
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.analyzers.policy import Matcher, Silence
    from mendline.schemas.people import Actor
    from mendline.sinks.postgres import PeopleStore, SilenceStore

__all__ = ["register"]

_T = TypeVar("_T")
_HINT = "`mendline silences list --all` shows every silence and its id"


def register(commands: Commands) -> None:
    """Add ``silences add``, ``silences list`` and ``silences expire``."""
    silences = commands.add_parser(
        "silences", help="hold back the alerts that match, for a while (like Alertmanager)"
    )
    sub = silences.add_subparsers(dest="silences_command", required=True)

    add = sub.add_parser(
        "add",
        parents=[AS_JSON],
        help="silence the alerts whose labels match every --match",
        description="Labels: severity, service, environment, kind and tag:NAME. A matcher is"
        " label=value, label!=value, label=~regex or label!~regex (the whole value must"
        " match). A resolve is never silenced: who heard an incident began hears it ended.",
    )
    add.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="MATCHER",
        type=_matcher,
        help="label=value, label!=value, label=~regex or label!~regex; repeat for more",
    )
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", metavar="DURATION", help='"2h", "30m", "1d"')
    until.add_argument("--until", metavar="TIME", help="an ISO 8601 time (UTC when no offset)")
    add.add_argument("--comment", required=True, help="why: shown with the silence")
    add.set_defaults(run=_add)

    listing = sub.add_parser("list", parents=[AS_JSON], help="the silences in effect or to come")
    listing.add_argument("--all", action="store_true", help="the ended and expired ones too")
    listing.set_defaults(run=_list)

    expire = sub.add_parser("expire", parents=[AS_JSON], help="end a silence now")
    expire.add_argument("id", type=positive, help="the silence's id")
    expire.set_defaults(run=_expire)


def _matcher(text: str) -> Matcher:
    from mendline.analyzers.policy import parse_matcher

    try:
        return parse_matcher(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _ends_at(args: argparse.Namespace) -> datetime:
    ends = ends_at(args.duration, args.until, datetime.now(UTC), zone_required=False)
    if ends is None:  # argparse requires one of them
        raise UsageError("give --for or --until")
    return ends


def _on_silences(settings: Settings, work: Callable[[SilenceStore, Actor], Awaitable[_T]]) -> _T:
    from mendline.sinks.postgres import SilenceStore

    def on(people: PeopleStore, actor: Actor) -> Awaitable[_T]:
        return work(SilenceStore(people.pool, people.audit, people.origin), actor)

    return acting(settings, on)


def _silence_json(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_at": silence.created_at.isoformat() if silence.created_at else None,
        "expired_at": silence.expired_at.isoformat() if silence.expired_at else None,
        "expired_by": silence.expired_by,
    }


def _add(args: argparse.Namespace, settings: Settings) -> int:
    ends_at = _ends_at(args)
    silence = _on_silences(
        settings, lambda store, actor: store.add(actor, args.match, ends_at, args.comment)
    )
    shown = ", ".join(str(m) for m in silence.matchers)
    print_done(
        args,
        f"silence {silence.id}: {printable(shown)} until {silence.ends_at:%Y-%m-%d %H:%M %Z}",
        **_silence_json(silence),
    )
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    silences = _on_silences(
        settings, lambda store, actor: store.list(actor, include_ended=args.all)
    )
    if args.json:
        for silence in silences:
            print_json(_silence_json(silence))
        return 0
    if not silences:
        print(
            "no silences: `mendline silences add --match service=api --for 2h --comment ...`",
            file=sys.stderr,
        )
        return 0
    now = datetime.now(UTC)
    rows = [
        (
            s.id,
            _state(s, now),
            f"{s.ends_at:%Y-%m-%d %H:%M}",
            shorten(s.created_by, 20),
            shorten(", ".join(str(m) for m in s.matchers), 50),
            shorten(s.comment, 60),
        )
        for s in silences
    ]
    print(table(("ID", "STATE", "ENDS (UTC)", "BY", "MATCHERS", "COMMENT"), rows))
    return 0


def _state(silence: Silence, now: datetime) -> str:
    if silence.expired_at is not None:
        return "expired"
    if silence.ends_at <= now:
        return "ended"
    return "active" if silence.starts_at <= now else "pending"


def _expire(args: argparse.Namespace, settings: Settings) -> int:
    with hint_on(SilenceNotFound, _HINT):
        changed = _on_silences(settings, lambda store, actor: store.expire(actor, args.id))
    done = f"expired silence {args.id}" if changed else f"silence {args.id} had ended already"
    print_done(args, done, id=args.id, expired=True, changed=changed)
    return 0
