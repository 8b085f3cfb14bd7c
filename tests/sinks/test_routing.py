"""Alert routing: the walk over routes, the file's validation with lines, the shipped default
and the ``routes`` commands."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest

import mendline.sinks.routing as routing
from mendline.analyzers.policy import alert_labels
from mendline.cli.routes import register as register_routes
from mendline.schemas.duration import format_duration
from mendline.schemas.errors import ConfigError, MendlineError
from mendline.schemas.settings import load_settings
from mendline.sinks.routing import (
    RoutingTable,
    check_secrets,
    describe,
    load_routes,
    parse_duration,
)

RECEIVERS = """\
[receivers.pager]
type = "pagerduty"
routing_key_env = "PD_KEY"

[receivers.slack]
type = "slack"
webhook_url_env = "SLACK_URL"

[receivers.mail]
type = "email"
smtp_host = "localhost"
sender = "mendline@localhost"
to = ["oncall@localhost"]
"""


def write(tmp_path: Path, text: str, name: str = "routes.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def table(tmp_path: Path, routes: str) -> RoutingTable:
    return load_routes(write(tmp_path, RECEIVERS + textwrap.dedent(routes)))


def sent(
    routes: RoutingTable,
    severity: str,
    service: str = "",
    environment: str = "",
    kind: str = "new_issue",
    **tags: str,
) -> list[str]:
    labels = alert_labels(
        severity=severity, kind=kind, service=service, environment=environment, tags=tags
    )
    return [receiver for _, receiver in routes.route(labels)]


# -- the walk ---------------------------------------------------------------------------

MATRIX = """
[[routes]]
match = { severity = "critical", environment = "production" }
receivers = ["pager"]
continue = true

[[routes]]
match = { "tag:team" = "payments" }
receivers = ["mail"]

[[routes]]
severity_at_least = "error"
match_re = { service = "api-.*" }
receivers = ["slack"]

[[routes]]
match = { environment = ["staging", "dev"] }
receivers = ["mail"]
"""


@pytest.mark.parametrize(
    ("severity", "service", "environment", "tags", "expected"),
    [
        # continue on the first route, then the api route
        ("critical", "api-gw", "production", {}, ["pager", "slack"]),
        # continue, then nothing else matches
        ("critical", "worker", "production", {}, ["pager"]),
        # the first route needs production
        ("critical", "api-gw", "staging", {}, ["slack"]),
        # the tag route stops the walk before the api route
        ("error", "api-gw", "production", {"team": "payments"}, ["mail"]),
        ("critical", "api-gw", "production", {"team": "payments"}, ["pager", "mail"]),
        # another tag value is not the tag
        ("error", "api-gw", "production", {"team": "billing"}, ["slack"]),
        # severity_at_least "error": warning is below
        ("warning", "api-gw", "production", {}, []),
        # a regex matches the whole value; a missing label is ""
        ("error", "my-api-gw", "production", {}, []),
        ("error", "", "production", {}, []),
        # any of a list of values
        ("error", "worker", "staging", {}, ["mail"]),
        ("info", "worker", "dev", {}, ["mail"]),
        # nothing matches: nothing is sent, no fallback
        ("error", "worker", "production", {}, []),
        ("info", "", "", {}, []),
    ],
)
def test_the_routing_matrix(
    tmp_path: Path,
    severity: str,
    service: str,
    environment: str,
    tags: dict[str, str],
    expected: list[str],
) -> None:
    assert sent(table(tmp_path, MATRIX), severity, service, environment, **tags) == expected


def test_a_receiver_reached_twice_is_sent_once_with_its_first_routes_timing(
    tmp_path: Path,
) -> None:
    routes = table(
        tmp_path,
        """
        [[routes]]
        match = { severity = "critical" }
        receivers = ["slack", "pager"]
        continue = true
        group_wait = "0s"

        [[routes]]
        receivers = ["slack", "mail"]
        group_wait = "1m"
        """,
    )
    pairs = routes.route(alert_labels(severity="critical", kind="new_issue"))
    assert [(route.index, name) for route, name in pairs] == [
        (0, "slack"),
        (0, "pager"),
        (1, "mail"),
    ]
    assert pairs[0][0].group_wait == 0 and pairs[2][0].group_wait == 60
    # without the first route the catch-all sends to both of its own
    assert sent(routes, "error") == ["slack", "mail"]


def test_the_first_matching_route_wins_without_continue(tmp_path: Path) -> None:
    routes = table(
        tmp_path,
        """
        [[routes]]
        match = { service = "api" }
        receivers = ["slack"]

        [[routes]]
        match = { service = "api" }
        receivers = ["pager"]
        """,
    )
    assert sent(routes, "error", "api") == ["slack"]


def test_receivers_empty_is_a_route_that_sends_nowhere(tmp_path: Path) -> None:
    routes = table(
        tmp_path,
        """
        [[routes]]
        match = { environment = "dev" }
        receivers = []

        [[routes]]
        receivers = ["slack"]
        """,
    )
    assert sent(routes, "critical", environment="dev") == []
    assert sent(routes, "critical", environment="prod") == ["slack"]
    assert "this alert would not be sent" in describe(
        routes, alert_labels(severity="error", kind="new_issue", environment="dev")
    )


def test_kind_and_severity_at_least(tmp_path: Path) -> None:
    routes = table(
        tmp_path,
        """
        [[routes]]
        match = { kind = "resolved" }
        receivers = ["mail"]

        [[routes]]
        severity_at_least = "warning"
        match = { kind = ["new_issue", "regression"] }
        receivers = ["slack"]
        """,
    )
    assert sent(routes, "critical", kind="resolved") == ["mail"]
    assert sent(routes, "warning", kind="regression") == ["slack"]
    assert sent(routes, "critical", kind="new_issue") == ["slack"]
    assert sent(routes, "info", kind="new_issue") == []
    assert sent(routes, "error", kind="frequency") == []
    assert routes.routes[1].match["severity"] == {"warning", "error", "critical"}


HEALTH_ROUTES = """
[[routes]]
match = { kind = ["health_down", "health_recovered"], severity = "critical" }
receivers = ["pager"]
continue = true

[[routes]]
match = { "tag:check_kind" = ["http", "tls"] }
match_re = { kind = "health_.*" }
receivers = ["slack"]

[[routes]]
match = { kind = "health_flapping" }
receivers = ["mail"]
"""


def test_health_kinds_and_a_checks_tags_route(tmp_path: Path) -> None:
    routes = table(tmp_path, HEALTH_ROUTES)
    assert routes.routes[0].match["kind"] == {"health_down", "health_recovered"}
    check = {"check": "payments-api", "check_kind": "http", "team": "payments"}
    assert sent(routes, "critical", kind="health_down", **check) == ["pager", "slack"]
    assert sent(routes, "critical", kind="health_recovered", **check) == ["pager", "slack"]
    assert sent(routes, "error", kind="health_down", **check) == ["slack"]
    # A heartbeat's flapping reaches neither the pager nor the http/tls route.
    heartbeat = {"check": "nightly-backup", "check_kind": "heartbeat"}
    assert sent(routes, "critical", kind="health_flapping", **heartbeat) == ["mail"]
    assert sent(routes, "critical", kind="new_issue", **check) == []  # not a check's alert


def test_routes_check_and_test_know_the_health_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RECEIVERS + HEALTH_ROUTES)
    monkeypatch.setenv("PD_KEY", "k" * 32)
    monkeypatch.setenv("SLACK_URL", "https://example.invalid/hook")
    assert run("routes", "check", str(path)) == 0
    assert "kind in (health_down, health_recovered), severity=critical" in capsys.readouterr().out
    argv = ["routes", "test", "--severity", "critical", "--kind", "health_down"]
    assert run(*argv, "--tag", "check_kind=http", "--routes", str(path), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["labels"]["kind"] == "health_down"
    assert [r["receiver"] for r in answer["receivers"]] == ["pager", "slack"]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("api|web", "api", True),
        ("api|web", "apis", False),  # the whole value, not a prefix
        ("^api-.*$", "api-gw", True),  # anchors are allowed
        ("api-.*", "the-api-gw", False),
        ("(?i)API", "api", True),
        (".*", "", True),  # matches a missing label
        (".+", "", False),
        ("(a|aa)*b", "a" * 4000, False),  # exponential in Python's re; linear in RE2
    ],
)
def test_match_re_matches_the_whole_label(
    tmp_path: Path, pattern: str, value: str, matches: bool
) -> None:
    routes = table(
        tmp_path,
        f"""
        [[routes]]
        match_re = {{ service = {json.dumps(pattern)} }}
        receivers = ["slack"]
        """,
    )
    assert sent(routes, "error", value) == (["slack"] if matches else [])


def test_timing_from_alertmanagers_defaults_then_defaults_then_the_route(
    tmp_path: Path,
) -> None:
    plain = table(tmp_path, '[[routes]]\nreceivers = ["slack"]\n').routes[0]
    assert (plain.group_wait, plain.group_interval, plain.repeat_interval) == (30, 300, 14400)
    assert plain.send_updates is True and plain.continue_ is False
    routes = load_routes(
        write(
            tmp_path,
            '[defaults]\ngroup_wait = "1m"\nrepeat_interval = "1h"\nsend_updates = false\n\n'
            + RECEIVERS
            + '[[routes]]\nreceivers = ["slack"]\n\n'
            + '[[routes]]\nreceivers = ["mail"]\ngroup_wait = 5\nsend_updates = true\n',
        )
    ).routes
    assert (routes[0].group_wait, routes[0].group_interval, routes[0].repeat_interval) == (
        60,
        300,
        3600,
    )
    assert routes[0].send_updates is False
    assert (routes[1].group_wait, routes[1].repeat_interval, routes[1].send_updates) == (
        5,
        3600,
        True,
    )


def test_routes_know_their_position_and_line(tmp_path: Path) -> None:
    text = RECEIVERS + '\n[[routes]]\nreceivers = ["slack"]\n\n[[routes]]\nreceivers = ["mail"]\n'
    routes = load_routes(write(tmp_path, text)).routes
    lines = text.splitlines()
    assert [r.index for r in routes] == [0, 1]
    assert [lines[r.line - 1] for r in routes] == ["[[routes]]", "[[routes]]"]
    assert routes[1].line > routes[0].line


# -- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("4h", 14400),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("1d", 86400),
        ("0s", 0),
        ("90", 90),
        (45, 45),
        (2.5, 2.5),
        (0, 0),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30x", '"30x" is not a duration (use 30s, 5m, 4h, 1h30m or seconds)'),
        ("", '"" is not a duration'),
        ("m", '"m" is not a duration'),
        ("30m1h", '"30m1h" is not a duration'),  # largest unit first
        ("inf", '"inf" is not a duration'),
        ("-5s", '"-5s" is negative; use 0s or more'),
        (-1, "-1 is negative"),
        (True, "not a boolean"),
        ([30], "not a list"),
    ],
)
def test_bad_durations_say_what_to_write(value: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (5400, "1h30m"), (0.5, "500ms"), (86400, "1d"), (90061, "1d1h1m1s")],
)
def test_durations_are_written_back_the_short_way(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# -- the shipped default ----------------------------------------------------------------


def test_the_shipped_default_pages_for_critical_slacks_errors_and_emails_warnings() -> None:
    shipped = load_routes(None)
    assert shipped.source == "the shipped default"

    def reached(severity: str, kind: str = "new_issue") -> list[tuple[str, str]]:
        labels = alert_labels(severity=severity, kind=kind, service="api", environment="prod")
        return [(name, shipped.receivers[name].type) for _, name in shipped.route(labels)]

    assert reached("critical") == [
        ("console", "log"),
        ("oncall", "pagerduty"),
        ("team-slack", "slack"),
    ]
    assert reached("critical", "resolved") == [
        ("console", "log"),
        ("oncall", "pagerduty"),
        ("team-slack", "slack"),
    ]
    assert reached("error") == [("console", "log"), ("team-slack", "slack")]
    assert reached("warning") == [("console", "log"), ("email-digest", "email")]
    assert reached("info") == []
    critical = shipped.route(alert_labels(severity="critical", kind="new_issue"))
    assert critical[1][0].group_wait == 0  # after the console's
    # mendline's own checks go to whoever runs mendline, whatever their severity.
    own = alert_labels(
        severity="critical", kind="health_down", service="mendline", tags={"mendline": "self"}
    )
    assert [name for _, name in shipped.route(own)] == ["console", "mendline-ops"]


def test_the_shipped_default_reads_the_documented_variables() -> None:
    problems = check_secrets(load_routes(None), {})
    assert any("MENDLINE_PAGERDUTY_ROUTING_KEY" in p for p in problems)
    assert any("MENDLINE_SLACK_WEBHOOK_URL" in p for p in problems)
    assert (
        check_secrets(
            load_routes(None),
            {"MENDLINE_PAGERDUTY_ROUTING_KEY": "k", "MENDLINE_SLACK_WEBHOOK_URL": "https://x"},
        )
        == []
    )


def test_the_format_in_the_module_docstring_is_a_valid_file(tmp_path: Path) -> None:
    doc = routing.__doc__ or ""
    example = textwrap.dedent(doc.split("The file::\n", 1)[1].split("\n\nA missing label")[0])
    routes = load_routes(write(tmp_path, example))
    assert sent(routes, "critical") == ["oncall", "team-slack"]
    assert sent(routes, "warning", "api-gw", "staging", team="payments") == ["team-slack"]
    assert sent(routes, "warning", "api-gw", "staging", team="billing") == []


# -- secrets ----------------------------------------------------------------------------


def test_check_secrets_names_the_receiver_and_the_variable(tmp_path: Path) -> None:
    routes = load_routes(
        write(
            tmp_path,
            RECEIVERS
            + '[receivers.bot]\ntype = "slack"\nbot_token_env = "BOT"\nchannel = "#alerts"\n'
            + '[[routes]]\nreceivers = ["pager", "slack", "mail", "bot"]\n',
        )
    )
    assert check_secrets(routes, {"PD_KEY": "k", "SLACK_URL": "u", "BOT": "t"}) == []
    assert check_secrets(routes, {"PD_KEY": "k", "SLACK_URL": ""}) == [
        'receiver "slack" (slack): SLACK_URL (webhook_url_env) is empty',
        'receiver "bot" (slack): BOT (bot_token_env) is not set',
    ]


# -- invalid files ----------------------------------------------------------------------

# Each file marks the line the problem must be reported on with "# <-".
INVALID = [
    pytest.param(
        '[[routes]]\nreceivers = ["slack"]\ngroup_wait = 30x  # <-\n',
        "invalid TOML",
        "Expected newline",
        id="toml-syntax",
    ),
    pytest.param(
        'colour = "red"  # <-\n[[routes]]\nreceivers = ["slack"]\n',
        "colour",
        "unknown key (allowed: defaults, receivers, routes)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "# <- a file with receivers only\n" + RECEIVERS,
        "routes",
        "no routes",
        id="no-routes",
    ),
    pytest.param(
        'routes = ["slack"]  # <-\n',
        "routes",
        "must be [[routes]] tables",
        id="routes-not-tables",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["slak"]  # <-\n',
        "routes[0].receivers",
        'unknown receiver "slak"; did you mean "slack"? (the file defines: pager, slack, mail)',
        id="unknown-receiver",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = "slack"  # <-\n',
        "routes[0].receivers",
        "must be a list of receiver names, not a string",
        id="receivers-not-a-list",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]  # <-\nmatch = { severity = "error" }\n',
        "routes[0]",
        'missing receivers: say receivers = ["name", ...]',
        id="route-without-receivers",
    ),
    pytest.param(
        RECEIVERS
        + '[[routes]]\nreceivers = ["mail"]\n\n[[routes]]\nreceivers = ["slack"]\n'
        + '[[routes]]\nreceivers = ["slack"]\ngroup_wait = "30x"  # <-\n',
        "routes[2].group_wait",
        '"30x" is not a duration (use 30s, 5m, 4h, 1h30m or seconds)',
        id="bad-duration",
    ),
    pytest.param(
        '[defaults]\ngroup_interval = "-1m"  # <-\n'
        + RECEIVERS
        + '[[routes]]\nreceivers = ["mail"]\n',
        "defaults.group_interval",
        '"-1m" is negative; use 0s or more',
        id="negative-duration",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\nrepeat_interval = "0s"  # <-\n',
        "routes[0].repeat_interval",
        "must be more than 0s",
        id="zero-repeat-interval",
    ),
    pytest.param(
        '[defaults]\ngroup_wiat = "1m"  # <-\n' + RECEIVERS + '[[routes]]\nreceivers = ["mail"]\n',
        "defaults.group_wiat",
        'did you mean "group_wait"?',
        id="unknown-defaults-key",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\nsend_updates = "no"  # <-\n',
        "routes[0].send_updates",
        "must be true or false, not a string",
        id="send-updates-not-boolean",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\ncontinue = 1  # <-\n',
        "routes[0].continue",
        "must be true or false, not a number",
        id="continue-not-boolean",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nrecievers = ["mail"]  # <-\nreceivers = ["mail"]\n',
        "routes[0].recievers",
        'unknown key; did you mean "receivers"? (allowed: match, match_re,',
        id="unknown-route-key",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = { team = "x" }  # <-\nreceivers = ["mail"]\n',
        "routes[0].match.team",
        'unknown label (match on severity, service, environment, kind, or "tag:<name>"',
        id="unknown-label",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch_re = { "tag:" = "x" }  # <-\nreceivers = ["mail"]\n',
        'routes[0].match_re."tag:"',
        "unknown label",
        id="tag-without-name",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = { severity = ["error", "fatal"] }  # <-\n'
        'receivers = ["mail"]\n',
        "routes[0].match.severity",
        '"fatal" is not a severity (use info, warning, error or critical)',
        id="bad-severity",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = { kind = "born" }  # <-\nreceivers = ["mail"]\n',
        "routes[0].match.kind",
        '"born" is not a kind (use new_issue, regression, frequency, resolved, escalating,'
        " health_down, health_recovered, health_flapping or remediation_failed)",
        id="bad-kind",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = { service = 3 }  # <-\nreceivers = ["mail"]\n',
        "routes[0].match.service",
        "must be a string or a non-empty list of strings, not a number",
        id="match-value-not-a-string",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = "critical"  # <-\nreceivers = ["mail"]\n',
        "routes[0].match",
        'must be a table such as { severity = "critical" }, not a string',
        id="match-not-a-table",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nseverity_at_least = "severe"  # <-\nreceivers = ["mail"]\n',
        "routes[0].severity_at_least",
        '"severe" is not a severity',
        id="bad-severity-at-least",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nmatch = { severity = "error" }\n'
        'severity_at_least = "error"  # <-\nreceivers = ["mail"]\n',
        "routes[0].severity_at_least",
        "give either severity_at_least or match.severity, not both",
        id="severity-twice",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\nmatch_re = { service = "api-(" }  # <-\n',
        "routes[0].match_re.service",
        '"api-(" is not a regular expression: missing ): api-(',
        id="bad-regex",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\nmatch_re = { service = "(a)\\\\1" }  # <-\n',
        "routes[0].match_re.service",
        "not a regular expression: invalid escape sequence",
        id="backreference",
    ),
    pytest.param(
        '[receivers.slack]\ntype = "slack"\n'
        'webhook_url = "https://hooks.slack.com/T0/B0/s3cr3t"  # <-\n'
        '[[routes]]\nreceivers = ["slack"]\n',
        "receivers.slack.webhook_url",
        'secrets come from environment variables: set webhook_url_env = "NAME"',
        id="secret-in-the-file",
    ),
    pytest.param(
        '[receivers.pd]\ntype = "pagerduty"\nrouting_key = "s3cr3t"  # <-\n'
        '[[routes]]\nreceivers = ["pd"]\n',
        "receivers.pd.routing_key",
        'secrets come from environment variables: set routing_key_env = "NAME"',
        id="routing-key-in-the-file",
    ),
    pytest.param(
        '[receivers.slack]\ntype = "slack"\n'
        'webhook_url_env = "https://hooks.slack.com/s3cr3t"  # <-\n'
        '[[routes]]\nreceivers = ["slack"]\n',
        "receivers.slack.webhook_url_env",
        "is not an environment variable name",
        id="secret-in-the-variable-name",
    ),
    pytest.param(
        '[receivers.chat]\ntype = "teams"  # <-\n[[routes]]\nreceivers = ["chat"]\n',
        "receivers.chat.type",
        '"teams" is not a receiver type (use "slack", "email", "pagerduty", "webhook" or "log")',
        id="unknown-receiver-type",
    ),
    pytest.param(
        '[receivers.chat]  # <-\nchannel = "#x"\n[[routes]]\nreceivers = ["chat"]\n',
        "receivers.chat.type",
        'missing: say type = "slack", "email", "pagerduty", "webhook" or "log"',
        id="receiver-without-type",
    ),
    pytest.param(
        '[receivers.mail]  # <-\ntype = "email"\nsender = "a@b"\nto = ["c@d"]\n'
        '[[routes]]\nreceivers = ["mail"]\n',
        "receivers.mail.smtp_host",
        'missing: a receiver of type = "email" needs it',
        id="receiver-missing-setting",
    ),
    pytest.param(
        RECEIVERS.replace('smtp_host = "localhost"', 'smtp_host = "localhost"\nsmtp_port = 0  # <-')
        + '[[routes]]\nreceivers = ["mail"]\n',
        "receivers.mail.smtp_port",
        "Input should be greater than or equal to 1",
        id="receiver-bad-setting",
    ),
    pytest.param(
        RECEIVERS.replace('to = ["oncall@localhost"]', 'to = ["oncall@localhost"]\ncc = []  # <-')
        + '[[routes]]\nreceivers = ["mail"]\n',
        "receivers.mail.cc",
        'unknown key for type = "email" (allowed: type, smtp_host,',
        id="receiver-unknown-key",
    ),
    pytest.param(
        '[receivers.slack]\ntype = "slack"  # <-\n[[routes]]\nreceivers = ["slack"]\n',
        "receivers.slack.type",
        "a slack receiver needs webhook_url_env, or bot_token_env and channel",
        id="slack-without-a-way-to-post",
    ),
    pytest.param(
        '[receivers.slack]  # <-\ntype = "slack"\nbot_token_env = "BOT"\n'
        '[[routes]]\nreceivers = ["slack"]\n',
        "receivers.slack.channel",
        'bot_token_env needs a channel = "#name"',
        id="slack-bot-without-channel",
    ),
    pytest.param(
        '[receivers]\nslack = { type = "slack" }  # <-\n[[routes]]\nreceivers = ["slack"]\n',
        "receivers.slack.type",
        "a slack receiver needs webhook_url_env",
        id="inline-receiver-table",
    ),
    pytest.param(
        RECEIVERS + '[[routes]]\nreceivers = ["mail"]\n\n[[routes]]\nreceivers = ["mail"]\n'
        '[routes.match]\nseverity = "urgent"  # <-\n',
        "routes[1].match.severity",
        '"urgent" is not a severity',
        id="match-as-a-sub-table",
    ),
    pytest.param(
        # lines inside values that span lines look like headers and keys, and are not
        RECEIVERS + '[[routes]]\nreceivers = [\n  ["mail"],\n  "slack",\n]\n'
        'notes = """\ngroup_wait = "1m"\n"""\n'
        'group_wait = "soon"  # <-\n',
        "routes[0].group_wait",
        '"soon" is not a duration',
        id="after-multi-line-values",
    ),
]


def marked_line(text: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line)


@pytest.mark.parametrize(("text", "field", "message"), INVALID)
def test_an_invalid_file_names_the_line_and_the_field(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_routes(path)
    problems = str(raised.value).splitlines()
    expected = f"{path}:{marked_line(text)}: {field}: "
    assert any(p.startswith(expected) and message in p for p in problems), problems
    assert "s3cr3t" not in str(raised.value)  # secrets pasted in the file are not repeated


def test_every_problem_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = (
        "bogus = 1\n"
        + '[[routes]]\nreceivers = ["nobody"]\ncontinue = "yes"\n'
        + RECEIVERS.replace('type = "slack"', 'type = "slack"\nwebhook_url = "x"')
        + '[defaults]\ngroup_wait = "x"\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_routes(path)
    where = [p.removeprefix(f"{path}:").split(": ")[:2] for p in str(raised.value).splitlines()]
    assert [field for _, field in where] == [
        "bogus",
        "routes[0].receivers",
        "routes[0].continue",
        "receivers.slack.webhook_url",
        "defaults.group_wait",
    ]
    lines = [int(line) for line, _ in where]
    assert lines == sorted(lines) and lines[:3] == [1, 3, 4]


def test_a_label_value_of_nothing_matches_a_missing_label(tmp_path: Path) -> None:
    routes = table(
        tmp_path,
        """
        [[routes]]
        match = { environment = ["", "dev"] }
        receivers = ["mail"]
        """,
    )
    assert sent(routes, "error") == ["mail"]
    assert sent(routes, "error", environment="dev") == ["mail"]
    assert sent(routes, "error", environment="prod") == []


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the routes file: No such file"):
        load_routes(tmp_path / "nope.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[routes]]")
    with pytest.raises(ConfigError, match=r"binary\.toml: the routes file is not UTF-8 text"):
        load_routes(binary)


def test_a_syntax_error_at_the_end_names_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, RECEIVERS + "[[routes]]\nreceivers = [\n")
    with pytest.raises(ConfigError) as raised:
        load_routes(path)
    last = len((RECEIVERS + "[[routes]]\nreceivers = [\n").splitlines())
    assert str(raised.value).startswith(f"{path}:{last}: invalid TOML: ")


# -- describe and the commands ----------------------------------------------------------


def test_describe_names_routes_lines_receivers_and_timing(tmp_path: Path) -> None:
    routes = table(tmp_path, MATRIX)
    text = describe(
        routes,
        alert_labels(
            severity="critical", kind="new_issue", service="api-gw", environment="production"
        ),
    )
    first, third = routes.routes[0], routes.routes[2]
    assert (
        f"matched routes[0] (line {first.line}):"
        " severity=critical, environment=production; continue" in text
    )
    assert (
        f"matched routes[2] (line {third.line}): severity in (error, critical), service~api-.*"
        in text
    )
    assert "pager  pagerduty  group_wait 30s, group_interval 5m, repeat_interval 4h" in text
    assert "slack  slack" in text
    nothing = describe(routes, alert_labels(severity="info", kind="new_issue"))
    assert nothing.endswith("no route matches: this alert would not be sent")


def routes_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mendline")
    register_routes(parser.add_subparsers(dest="command", required=True))
    return parser


def run(*argv: str) -> int:
    """What mendline.cli.main does with a command: MendlineError is one line and status 1."""
    args = routes_parser().parse_args(argv)
    try:
        status: int = args.run(args, load_settings())
    except MendlineError as exc:
        print(f"mendline: {exc}", file=sys.stderr)
        return 1
    return status


@pytest.fixture(autouse=True)
def _no_routes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MENDLINE_ROUTES_FILE", raising=False)


def test_routes_test_prints_where_an_alert_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("routes", "test", "--severity", "critical", "--service", "api") == 0
    out = capsys.readouterr().out
    line = load_routes(None).routes[2].line
    assert f"matched routes[2] (line {line}): severity=critical" in out
    assert "oncall      pagerduty  group_wait 0s" in out
    assert "team-slack  slack" in out
    assert run("routes", "test", "--severity", "info") == 0
    assert "no route matches: this alert would not be sent" in capsys.readouterr().out


def test_routes_test_json_with_tags_and_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RECEIVERS + MATRIX)
    argv = ["routes", "test", "--severity", "error", "--environment", "production"]
    assert run(*argv, "--tag", "team=payments", "--routes", str(path), "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["labels"] == {
        "severity": "error",
        "kind": "new_issue",
        "environment": "production",
        "tag:team": "payments",
    }
    assert answer["matched"] == [
        {"index": 1, "line": answer["matched"][0]["line"], "receivers": ["mail"]}
    ]
    assert [(r["receiver"], r["type"], r["group_wait"]) for r in answer["receivers"]] == [
        ("mail", "email", 30.0)
    ]


def test_routes_test_reads_the_routes_file_setting_and_routes_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    setting = write(tmp_path, RECEIVERS + '[[routes]]\nreceivers = ["mail"]\n', "setting.toml")
    other = write(tmp_path, RECEIVERS + '[[routes]]\nreceivers = ["pager"]\n', "other.toml")
    monkeypatch.setenv("MENDLINE_ROUTES_FILE", str(setting))
    assert run("routes", "test", "--severity", "info", "--json") == 0
    assert json.loads(capsys.readouterr().out)["receivers"][0]["receiver"] == "mail"
    assert run("routes", "test", "--severity", "info", "--json", "--routes", str(other)) == 0
    assert json.loads(capsys.readouterr().out)["receivers"][0]["receiver"] == "pager"


def test_a_tag_must_be_name_equals_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        routes_parser().parse_args(["routes", "test", "--severity", "error", "--tag", "team"])
    assert exited.value.code == 2
    assert "use NAME=VALUE" in capsys.readouterr().err


def test_routes_check_summarises_and_warns_about_unset_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        RECEIVERS + '[[routes]]\nmatch = { severity = "critical" }\n'
        'receivers = ["pager", "slack"]\ngroup_wait = "0s"\n',
    )
    monkeypatch.setenv("PD_KEY", "k" * 32)
    monkeypatch.delenv("SLACK_URL", raising=False)
    assert run("routes", "check", str(path)) == 0
    out, err = capsys.readouterr()
    assert f"{path}: valid, 1 route, 3 receivers" in out
    assert "severity=critical -> pager, slack" in out and "0s/5m/4h" in out
    assert "receiver pager  pagerduty" in out and "receiver mail   email" in out
    assert err.splitlines() == [
        'warning: receiver "mail" is not used by any route',
        'warning: receiver "slack" (slack): SLACK_URL (webhook_url_env) is not set',
    ]
    monkeypatch.setenv("SLACK_URL", "https://example.invalid/hook")
    assert run("routes", "check", str(path)) == 0
    assert "SLACK_URL" not in capsys.readouterr().err


def test_routes_check_in_production_fails_on_unset_secrets_as_alert_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RECEIVERS + '[[routes]]\nreceivers = ["pager", "slack", "mail"]\n')
    monkeypatch.setenv("MENDLINE_PROFILE", "production")
    monkeypatch.setenv("PD_KEY", "k" * 32)
    monkeypatch.delenv("SLACK_URL", raising=False)
    assert run("routes", "check", str(path)) == 1
    out, err = capsys.readouterr()
    assert f"{path}: invalid" in out
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        'error: receiver "slack" (slack): SLACK_URL (webhook_url_env) is not set (fix: set it;'
        " MENDLINE_PROFILE=production: mendline alert does not start without it)"
    ]
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/T0/B0/x")
    assert run("routes", "check", str(path)) == 0


def test_routes_check_without_a_file_checks_the_shipped_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("routes", "check") == 0
    assert capsys.readouterr().out.startswith("the shipped default: valid, 5 routes, 5 receivers")


def test_routes_check_of_a_bad_file_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RECEIVERS + '[[routes]]\nreceivers = ["mail"]\ngroup_wait = "30x"\n')
    assert run("routes", "check", str(path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    line = len(RECEIVERS.splitlines()) + 3
    assert err.splitlines() == [
        f'mendline: {path}:{line}: routes[0].group_wait: "30x" is not a duration'
        " (use 30s, 5m, 4h, 1h30m or seconds)"
    ]
    assert "Traceback" not in err


def test_routes_check_fails_on_what_doctor_fails_on_without_saying_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, RECEIVERS + '[[routes]]\nreceivers = ["pager", "slack", "mail"]\n')
    monkeypatch.setenv("PD_KEY", "short-secret-key")
    monkeypatch.setenv("SLACK_URL", "hooks.slack.com/services/T0/B0/s3cr3t")
    assert run("routes", "check", str(path)) == 1
    out, err = capsys.readouterr()
    assert f"{path}: invalid, 1 route, 3 receivers" in out
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        'error: receiver "pager": pagerduty: the routing key in PD_KEY is 16 characters, not 32'
        " (fix: set PD_KEY to the Integration Key of an Events API v2 integration)",
        'error: receiver "slack": slack webhook: SLACK_URL does not hold a URL (fix: set'
        " SLACK_URL to the incoming-webhook URL Slack gave (https://hooks.slack.com/services/...))",
    ]
    assert "s3cr3t" not in out + err and "short-secret-key" not in out + err
    assert run("routes", "check", str(path), "--json") == 1
    checked = json.loads(capsys.readouterr().out)
    assert checked["valid"] is False and len(checked["problems"]) == 2


@pytest.mark.parametrize(
    ("receiver", "environ", "problem"),
    [
        ({"type": "slack", "webhook_url_env": "U"}, {"U": "https://hooks.slack.com/x"}, None),
        ({"type": "slack", "webhook_url_env": "U"}, {}, None),  # unset: disabled elsewhere
        ({"type": "slack", "webhook_url_env": "U"}, {"U": "ftp://x"}, "does not hold a URL"),
        ({"type": "slack", "bot_token_env": "T"}, {"T": "xoxb-1"}, "no channel"),
        ({"type": "slack"}, {}, "neither webhook_url_env nor bot_token_env"),
        ({"type": "webhook", "url": "http://127.0.0.1:9/x"}, {}, None),
        ({"type": "webhook", "url_env": "W"}, {"W": "not a url"}, "W does not hold an http(s)"),
        ({"type": "pagerduty", "routing_key_env": "K"}, {"K": "a" * 32}, None),
        ({"type": "pagerduty", "routing_key_env": "K"}, {"K": "a" * 31}, "31 characters"),
        (
            {"type": "pagerduty", "routing_key_env": "K", "events_url": "events.pd.com"},
            {"K": "a" * 32},
            "events_url events.pd.com is not",
        ),
        (
            {
                "type": "email",
                "smtp_host": "h",
                "sender": "a@b",
                "to": ["c@d"],
                "username_env": "U",
            },
            {},
            "needs both username_env and password_env",
        ),
        ({"type": "log"}, {}, None),
    ],
)
def test_receiver_problems(
    receiver: dict[str, object], environ: dict[str, str], problem: str | None
) -> None:
    from pydantic import TypeAdapter

    from mendline.schemas.alert import Receiver

    parsed = TypeAdapter(Receiver).validate_python(receiver)
    found = routing.receiver_problems("r", parsed, environ)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0].problem, found


def test_an_email_receiver_refuses_what_is_not_an_address(tmp_path: Path) -> None:
    text = RECEIVERS.replace(
        'to = ["oncall@localhost"]', 'to = ["oncall", "a@b.com\\r\\nBcc: x@y"]'
    )
    with pytest.raises(ConfigError) as refused:
        load_routes(write(tmp_path, text))
    assert "'oncall' is not an email address" in str(refused.value)
    assert "receivers.mail.to" in str(refused.value)
