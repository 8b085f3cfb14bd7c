"""``mendline review rules`` on a real PostgreSQL, through the command line's ``main`` with a
``review`` command that holds only them: list, disable, enable and learn."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from mendline.cli import main
from mendline.cli._actor import local_user_name
from mendline.cli._options import Commands
from mendline.cli._review_rules import add_rules_commands, rule_number
from tests.cli_helpers import migrated_env
from tests.db_helpers import finding_of_new_issue, query

pytestmark = pytest.mark.integration


class ReviewGroup:
    """A ``review`` command holding only ``rules`` (the real one is mendline.cli.review's)."""

    @staticmethod
    def register(commands: Commands) -> None:
        review = commands.add_parser("review")
        add_rules_commands(review.add_subparsers(dest="review_command", required=True))


async def mendline(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mendline review rules ARGS`` in this process (off the event loop): its status and
    what it printed."""
    status = await asyncio.to_thread(main, ["review", "rules", *args], groups=[ReviewGroup])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("text", "number"), [("MRL12", 12), ("mrl12", 12), ("12", 12), (" MRL3 ", 3)]
)
def test_a_rule_id_is_its_number_with_or_without_its_prefix(text: str, number: int) -> None:
    assert rule_number(text) == number


@pytest.mark.parametrize("text", ["MRL", "MRLx", "0", "MR12", "-4"])
def test_what_is_not_a_rule_id_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        rule_number(text)


async def test_list_disable_enable_and_learn(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = await migrated_env(
        fresh_db_url, "responder", MENDLINE_WEB_PUBLIC_URL="https://mendline.example"
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    finding = await finding_of_new_issue(fresh_db_url, 1, None)
    await query(
        fresh_db_url,
        """INSERT INTO mendline.review_rules (shape, example, title, issue_id, finding_id)
           SELECT 'int(request.args[''n''])', 'n = int(request.args["n"])\x1b[2J',
                  i.title, f.issue_id, f.id
           FROM mendline.findings f JOIN mendline.issues i ON i.id = f.issue_id
           WHERE f.id = $1""",
        finding,
    )
    status, out, _ = await mendline(capsys, "list")
    assert status == 0 and "MRL1" in out and "active" in out and "#1" in out
    assert "\x1b" not in out  # stored text is shown printable
    assert (await mendline(capsys, "disable", "MRL1", "--json"))[:2] == (
        0,
        '{"id": "MRL1", "active": false, "changed": true}\n',
    )
    assert (await mendline(capsys, "disable", "1"))[1] == "rule MRL1 was disabled already\n"
    status, out, err = await mendline(capsys, "list")
    assert (status, out) == (0, "") and "no learned rules" in err
    listed = (await mendline(capsys, "list", "--all", "--json"))[1]
    (shown,) = [json.loads(line) for line in listed.splitlines()]
    assert (shown["id"], shown["active"], shown["disabled_by"], shown["link"]) == (
        "MRL1",
        False,
        local_user_name(),
        "https://mendline.example/issues/1",
    )
    assert (await mendline(capsys, "enable", "mrl1"))[1] == "enabled rule MRL1\n"
    status, _, err = await mendline(capsys, "enable", "7")
    assert status == 1 and "there is no learned rule MRL7" in err and "rules list --all" in err
    learned = await mendline(capsys, "learn")
    assert learned[1] == "nothing new learned from the findings marked right\n"
