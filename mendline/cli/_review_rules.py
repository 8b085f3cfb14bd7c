"""The ``mendline review rules`` commands: list the rules learned from findings marked right,
disable and enable them, and learn from the findings marked before rules were learned."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from mendline.cli._actor import acting, people_store
from mendline.cli._options import AS_JSON, positive
from mendline.cli.output import counted, print_done, print_json, shorten, table
from mendline.schemas.review import LEARNED_PREFIX, LearnedRule, learned_rule_id
from mendline.schemas.settings import Settings

if TYPE_CHECKING:
    from mendline.schemas.people import Actor
    from mendline.sinks.postgres import PeopleStore, ReviewRuleStore

__all__ = ["add_rules_commands", "rule_number"]

_T = TypeVar("_T")


def add_rules_commands(review_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rules list``, ``rules disable``, ``rules enable`` and ``rules learn`` to the
    ``review`` subcommands."""
    rules = review_sub.add_parser(
        "rules",
        help="the rules learned from findings marked right",
        description="A finding marked right teaches a rule: the shape of its issue's culprit"
        " line. A review flags the changed lines that write that shape again.",
    )
    sub = rules.add_subparsers(dest="rules_command", required=True)

    listing = sub.add_parser("list", parents=[AS_JSON], help="the learned rules that apply")
    listing.add_argument("--all", action="store_true", help="the disabled ones too")
    listing.set_defaults(run=_list, error_status=1)

    disable = sub.add_parser("disable", parents=[AS_JSON], help="stop applying a rule (kept)")
    disable.add_argument("id", type=rule_number, help=f"the rule's id: {LEARNED_PREFIX}12 or 12")
    disable.set_defaults(run=_disable, error_status=1)

    enable = sub.add_parser("enable", parents=[AS_JSON], help="apply a disabled rule again")
    enable.add_argument("id", type=rule_number, help=f"the rule's id: {LEARNED_PREFIX}12 or 12")
    enable.set_defaults(run=_enable, error_status=1)

    learn = sub.add_parser(
        "learn",
        parents=[AS_JSON],
        help="learn from every finding marked right (those marked before rules were learned)",
    )
    learn.set_defaults(run=_learn, error_status=1)


def rule_number(text: str) -> int:
    """A learned rule's number from its id, ``MRL12`` (any case) or ``12`` (an argparse
    ``type``)."""
    bare = text.strip()
    if bare[: len(LEARNED_PREFIX)].upper() == LEARNED_PREFIX:
        bare = bare[len(LEARNED_PREFIX) :]
    return positive(bare)


def _on_rules(settings: Settings, work: Callable[[ReviewRuleStore, Actor], Awaitable[_T]]) -> _T:
    from mendline.sinks.postgres import ReviewRuleStore

    def on(people: PeopleStore, actor: Actor) -> Awaitable[_T]:
        return work(ReviewRuleStore(people.pool, people.audit, people.origin), actor)

    return acting(settings, on)


def _reading(settings: Settings, work: Callable[[ReviewRuleStore], Awaitable[_T]]) -> _T:
    """``work`` on the store, as a read: no actor, as the issues are read."""
    from mendline.sinks.postgres import ReviewRuleStore

    async def go() -> _T:
        people = await people_store(settings)
        try:
            return await work(ReviewRuleStore(people.pool, people.audit, people.origin))
        finally:
            await people.close()

    return asyncio.run(go())


def _linked(rule: LearnedRule, settings: Settings) -> LearnedRule:
    template = settings.issue_link_template
    return replace(rule, link=template.format(id=rule.issue_id)) if template else rule


def _rule_json(rule: LearnedRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "number": rule.number,
        "shape": rule.shape,
        "example": rule.example,
        "issue_id": rule.issue_id,
        "title": rule.title,
        "finding_id": rule.finding_id,
        "active": rule.disabled_at is None,
        "created_at": rule.created_at.isoformat(),
        "disabled_at": rule.disabled_at.isoformat() if rule.disabled_at else None,
        "disabled_by": rule.disabled_by,
        "fix": rule.fix,
        "link": rule.link,
    }


def _state(rule: LearnedRule) -> str:
    return "active" if rule.disabled_at is None else "disabled"


def _list(args: argparse.Namespace, settings: Settings) -> int:
    rules = _reading(settings, lambda store: store.rules(include_disabled=args.all))
    if args.json:
        for rule in rules:
            print_json(_rule_json(_linked(rule, settings)))
        return 0
    if not rules:
        print(
            "no learned rules: a finding marked right teaches one"
            " (`mendline findings mark ID right`; `mendline review rules learn` for those"
            " marked before)",
            file=sys.stderr,
        )
        return 0
    rows = [
        (
            rule.id,
            _state(rule),
            f"#{rule.issue_id}",
            f"{rule.created_at:%Y-%m-%d}",
            shorten(rule.example, 50),
            shorten(rule.title, 50),
        )
        for rule in rules
    ]
    print(table(("ID", "STATE", "ISSUE", "CREATED", "EXAMPLE", "TITLE"), rows))
    return 0


def _disable(args: argparse.Namespace, settings: Settings) -> int:
    return _switch(args, settings, active=False)


def _enable(args: argparse.Namespace, settings: Settings) -> int:
    return _switch(args, settings, active=True)


def _switch(args: argparse.Namespace, settings: Settings, *, active: bool) -> int:
    rule_id = learned_rule_id(args.id)

    def work(store: ReviewRuleStore, actor: Actor) -> Awaitable[bool]:
        return store.enable(actor, args.id) if active else store.disable(actor, args.id)

    changed = _on_rules(settings, work)
    state = "active" if active else "disabled"
    done = f"{'enabled' if active else 'disabled'} rule {rule_id}"
    print_done(
        args,
        done if changed else f"rule {rule_id} was {state} already",
        id=rule_id,
        active=active,
        changed=changed,
    )
    return 0


def _learn(args: argparse.Namespace, settings: Settings) -> int:
    learned = _on_rules(settings, lambda store, actor: store.learn_all(actor))
    if args.json:
        for rule in learned:
            print_json(_rule_json(_linked(rule, settings)))
        return 0
    if not learned:
        print("nothing new learned from the findings marked right")
        return 0
    print(f"learned {counted(len(learned), 'rule')}:")
    for rule in learned:
        print(f"  {rule.id}  #{rule.issue_id}  {shorten(rule.example, 70)}")
    return 0
