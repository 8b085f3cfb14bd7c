"""The checks file: a good file read into checks with their lines and defaults, every bad
file told as FILE:LINE: field: message, the shipped example, and unset variables named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from mendline.analyzers.health import (
    CheckSet,
    check_env,
    first_slot,
    load_checks,
    next_slot,
    parse_checks,
)
from mendline.schemas.checks import (
    HeartbeatCheck,
    HttpCheck,
    KafkaCheck,
    Maintenance,
    PostgresCheck,
    TcpCheck,
    TlsCheck,
)
from mendline.schemas.errors import ConfigError

GOOD = """\
[defaults]
interval = "5m"
failure_threshold = 2
tags = { team = "platform", tier = "1" }

[[checks]]
name = "payments-api"
kind = "http"
url = "https://payments.internal/health"
interval = "30m"
conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 500", "[BODY].status == UP"]
headers = { Accept = "application/json" }
headers_env = { Authorization = "PAYMENTS_HEALTH_TOKEN" }
tags = { team = "payments" }
[[checks.maintenance]]
days = ["sun"]
at = "02:00"
duration = "1h"
timezone = "Europe/Paris"

[[checks]]
name = "db"
kind = "postgres"
dsn_env = "DB_URL"

[[checks]]
name = "nightly"
kind = "heartbeat"
cron = "0 3 * * *"
grace = "30m"
"""


def test_a_good_file_gives_its_checks_in_order_with_their_lines() -> None:
    checks = parse_checks(GOOD, "checks.toml")
    assert checks.source == "checks.toml"
    assert [c.name for c in checks.checks] == ["payments-api", "db", "nightly"]
    assert dict(checks.lines) == {"payments-api": 6, "db": 21, "nightly": 26}
    api, db, nightly = checks.checks
    assert isinstance(api, HttpCheck) and isinstance(db, PostgresCheck)
    assert isinstance(nightly, HeartbeatCheck)
    assert api.interval == 1800 and db.interval == 300  # its own, else the default
    assert api.failure_threshold == db.failure_threshold == 2
    assert nightly.failure_threshold == 1  # a heartbeat keeps its own thresholds
    assert api.tags == {"team": "payments", "tier": "1"}  # merged, its own winning
    assert db.tags == {"team": "platform", "tier": "1"}
    assert api.headers_env == {"Authorization": "PAYMENTS_HEALTH_TOKEN"}
    assert api.maintenance == [
        Maintenance.model_validate(
            {"days": ["sun"], "at": "02:00", "duration": "1h", "timezone": "Europe/Paris"}
        )
    ]
    assert nightly.grace == 1800 and nightly.cron == "0 3 * * *"


def test_the_shipped_example_is_valid_and_shows_each_kind() -> None:
    shipped = resources.files("mendline.analyzers.health").joinpath("checks.example.toml")
    checks = parse_checks(shipped.read_text("utf-8"), "checks.example.toml")
    kinds = {type(check) for check in checks.checks}
    assert {TcpCheck, TlsCheck, PostgresCheck, HttpCheck, KafkaCheck, HeartbeatCheck} <= kinds
    by_kind = {check.kind: check for check in checks.checks}
    assert by_kind["tcp"].interval == 300 and by_kind["postgres"].interval == 900
    assert by_kind["http"].interval == 1800 and by_kind["http"].maintenance
    assert isinstance(by_kind["kafka"], KafkaCheck) and by_kind["kafka"].max_lag is not None
    heartbeat = by_kind["heartbeat"]
    assert isinstance(heartbeat, HeartbeatCheck)
    assert (heartbeat.cron, heartbeat.grace, heartbeat.max_runtime) == ("0 3 * * *", 1800, 7200)


def test_a_kafka_check_on_a_topic_alone_counts_its_recent_records_over_a_window() -> None:
    text = (
        '[[checks]]\nname = "dlq"\nkind = "kafka"\ntopic = "mendline.errors.dlq"\n'
        'window = "10m"\nconditions = ["[RECENT] == 0"]\n'
        '[[checks]]\nname = "orders"\nkind = "kafka"\ntopic = "orders"\ninterval = "2m"\n'
    )
    dlq, orders = parse_checks(text, "checks.toml").checks
    assert isinstance(dlq, KafkaCheck) and isinstance(orders, KafkaCheck)
    assert (dlq.topic, dlq.group, dlq.recent_window) == ("mendline.errors.dlq", None, 600)
    assert orders.window is None and orders.recent_window == 120  # the interval


def marked_line(text: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line)


HTTP = '[[checks]]\nname = "api"\nkind = "http"\nurl = "https://api.example"\n'

INVALID = [
    pytest.param(
        '[[checks]]\nname = "api"\nkind = "htp"  # <-\n',
        "checks[0].kind",
        '"htp" is not a check kind; did you mean "http"? (use "http", "tcp", "dns", "tls",'
        ' "postgres", "kafka" or "heartbeat")',
        id="unknown-kind",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "api"\n',
        "checks[0].kind",
        'missing: say kind = "http", "tcp",',
        id="no-kind",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "api"\nkind = "tcp"\nhost = "db"\n',
        "checks[0].port",
        'missing: a check of kind = "tcp" needs it',
        id="missing-key",
    ),
    pytest.param(
        HTTP + "verify_ssl = false  # <-\n",
        "checks[0].verify_ssl",
        'unknown key for kind = "http"; did you mean "verify_tls"?',
        id="unknown-key",
    ),
    pytest.param(
        HTTP + 'interval = "soon"  # <-\n',
        "checks[0].interval",
        '"soon" is not a duration (use 30s, 5m, 4h, 1h30m or seconds)',
        id="bad-duration",
    ),
    pytest.param(
        '[[checks]]\nname = "api"\nkind = "http"\nurl = "ftp://x"  # <-\n',
        "checks[0].url",
        "'ftp://x' is not an http:// or https:// URL",
        id="bad-url",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "job"\nkind = "heartbeat"\n',
        "checks[0]",
        "give either `every` or `cron`",
        id="heartbeat-without-schedule",
    ),
    pytest.param(
        HTTP + '[[checks.maintenance]]\nduration = "1h"\nat = "25:99"  # <-\n',
        "checks[0].maintenance[0].at",
        "Input should be in a valid time format",
        id="maintenance-bad-time",
    ),
    pytest.param(
        HTTP
        + '[[checks.maintenance]]\nat = "02:00"\nduration = "1h"\ntimezone = "Mars/Base"  # <-\n',
        "checks[0].maintenance[0].timezone",
        "'Mars/Base' is not a time zone (use an IANA name: Europe/Paris, UTC)",
        id="maintenance-bad-zone",
    ),
    pytest.param(
        HTTP + 'conditions = ["[STATSU] == 200"]  # <-\n',
        "checks[0].conditions[0]",
        "unknown placeholder [STATSU]; did you mean [STATUS]?",
        id="bad-condition",
    ),
    pytest.param(
        HTTP + 'conditions = [\n  "[STATUS] == 200",\n  "[BODY] > pat(*UP*)",  # <-\n]\n',
        "checks[0].conditions[1]",
        "pat() goes with == or !=, not >",
        id="bad-condition-on-its-own-line",
    ),
    pytest.param(
        HTTP + 'headers = { Authorization = "Bearer abc123" }  # <-\n',
        "checks[0].headers.Authorization",
        "looks like a secret: put the value in an environment variable and name it in"
        ' headers_env ("Authorization" = "VARIABLE")',
        id="secret-header",
    ),
    pytest.param(
        HTTP + '[checks.headers]\n"X-Auth-Token" = "abc123"  # <-\n',
        "checks[0].headers.X-Auth-Token",
        "looks like a secret",
        id="token-header",
    ),
    pytest.param(
        HTTP + 'headers_env = { Authorization = "Bearer abc123" }  # <-\n',
        "checks[0].headers_env.Authorization",
        "is not an environment variable name (letters, digits and _)",
        id="secret-in-headers-env",
    ),
    pytest.param(
        '[[checks]]\nname = "db"\nkind = "postgres"\ndsn_env = "postgresql://u:pw@db/x"  # <-\n',
        "checks[0].dsn_env",
        "is not an environment variable name",
        id="dsn-in-dsn-env",
    ),
    pytest.param(
        HTTP + '[[checks]]\nname = "api"  # <-\nkind = "tcp"\nhost = "a"\nport = 1\n',
        "checks[1].name",
        '"api" is already the name of the check on line 1: names are unique in the file',
        id="duplicate-name",
    ),
    pytest.param(
        HTTP.replace('"api"', '"api"\nenvironment = "staging"')
        + '[[checks]]\nname = "api"  # <-\nkind = "http"\nurl = "https://x"\n',
        "checks[1].name",
        '"api" is already the name of the check on line 1',
        id="same-name-other-environment",
    ),
    pytest.param(
        '[[checks]]\nname = "has space"  # <-\nkind = "tcp"\nhost = "a"\nport = 1\n',
        "checks[0].name",
        "'has space' is not a check name",
        id="bad-name",
    ),
    pytest.param(
        '[defaults]\nintervall = "5m"  # <-\n' + HTTP,
        "defaults.intervall",
        'unknown key; did you mean "interval"?',
        id="unknown-default",
    ),
    pytest.param(
        '[defaults]\nurl = "https://x"  # <-\n' + HTTP,
        "defaults.url",
        "unknown key (allowed: interval, timeout,",
        id="default-not-for-defaults",
    ),
    pytest.param(
        '[defaults]\nseverity = "loud"  # <-\n' + HTTP + HTTP.replace('"api"', '"api2"'),
        "defaults.severity",
        "Input should be 'info', 'warning', 'error' or 'critical'",
        id="bad-default-told-once",
    ),
    pytest.param(
        '[check]  # <-\nname = "x"\n' + HTTP,
        "check",
        'unknown key; did you mean "checks"?',
        id="unknown-table",
    ),
    pytest.param('[defaults]  # <-\ninterval = "5m"\n', "checks", "no checks", id="no-checks"),
    pytest.param(
        '[[checks]]  # <-\nname = "lag"\nkind = "kafka"\nmax_lag = 10\n',
        "checks[0]",
        "`max_lag` needs `group` and `topic`",
        id="kafka-lag-without-group",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "lag"\nkind = "kafka"\ngroup = "g"\n',
        "checks[0]",
        "`group` needs `topic`",
        id="kafka-group-without-topic",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "dlq"\nkind = "kafka"\nwindow = "10m"\n',
        "checks[0]",
        "`window` goes with `topic` alone (no `group`)",
        id="kafka-window-without-topic",
    ),
    pytest.param(
        '[[checks]]  # <-\nname = "dlq"\nkind = "kafka"\ngroup = "g"\ntopic = "t"\n'
        'window = "10m"\n',
        "checks[0]",
        "`window` goes with `topic` alone (no `group`)",
        id="kafka-window-with-group",
    ),
    pytest.param(
        '[[checks]]\nname = "dlq"\nkind = "kafka"\ntopic = "t"\nwindow = "8d"  # <-\n',
        "checks[0].window",
        "at most 7d",
        id="kafka-window-over-a-week",
    ),
    pytest.param(
        '[[checks]]\nname = "dlq"\nkind = "kafka"\ntopic = "t"\nwindow = "0s"  # <-\n',
        "checks[0].window",
        "Input should be greater than 0",
        id="kafka-window-zero",
    ),
    *(
        pytest.param(text, field, "must be at most 366d (a year)", id=f"too-long-{field}")
        for text, field in [
            (HTTP + 'interval = "999999999d"  # <-\n', "checks[0].interval"),
            (HTTP + "interval = 1e300  # <-\n", "checks[0].interval"),
            (HTTP + 'timeout = "367d"  # <-\n', "checks[0].timeout"),
            (HTTP + 'flap_window = "371d"  # <-\n', "checks[0].flap_window"),
            ('[defaults]\ninterval = "400d"  # <-\n' + HTTP, "defaults.interval"),
            (
                HTTP + '[[checks.maintenance]]\nat = "02:00"\nduration = "9999d"  # <-\n',
                "checks[0].maintenance[0].duration",
            ),
            (
                '[[checks]]\nname = "job"\nkind = "heartbeat"\nevery = "1d"\n'
                'grace = "3000000d"  # <-\n',
                "checks[0].grace",
            ),
            (
                '[[checks]]\nname = "job"\nkind = "heartbeat"\nevery = "367d"  # <-\n',
                "checks[0].every",
            ),
            (
                '[[checks]]\nname = "job"\nkind = "heartbeat"\ncron = "0 3 * * *"\n'
                'max_runtime = "999999999d"  # <-\n',
                "checks[0].max_runtime",
            ),
        ]
    ),
]


@pytest.mark.parametrize(("text", "field", "message"), INVALID)
def test_an_invalid_file_names_the_line_and_the_field(text: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_checks(text, "checks.toml")
    lines = str(raised.value).splitlines()
    assert len(lines) == 1, lines
    expected = f"checks.toml:{marked_line(text)}: {field}: {message}"
    assert lines[0].startswith(expected), (lines[0], expected)


def test_a_year_is_the_longest_duration_and_every_slot_of_it_can_be_scheduled() -> None:
    text = HTTP + 'interval = "366d"\ntimeout = "366d"\n'
    (check,) = parse_checks(text, "checks.toml").checks
    assert check.interval == check.timeout == 366 * 86400
    slot = first_slot(check.name, check.interval, datetime.now(UTC))
    assert next_slot(slot, check.interval, slot) - slot == timedelta(days=366)


def test_a_secret_is_never_repeated_in_the_message() -> None:
    text = HTTP + 'headers = { Authorization = "Bearer s3cr3t" }\nheaders_env = { X = "pw=1!" }\n'
    with pytest.raises(ConfigError) as raised:
        parse_checks(text, "checks.toml")
    assert "s3cr3t" not in str(raised.value) and "pw=1!" not in str(raised.value)


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = (
        '[[checks]]\nname = "a"\nkind = "tcp"\nhost = "h"\nport = 0\n'
        '[[checks]]\nname = "a"\nkind = "http"\nurl = "https://x"\n'
        'conditions = ["[STATUS] = 200"]\n'
    )
    with pytest.raises(ConfigError) as raised:
        parse_checks(text, "c.toml")
    assert str(raised.value).splitlines() == [
        "c.toml:5: checks[0].port: Input should be greater than or equal to 1",
        'c.toml:7: checks[1].name: "a" is already the name of the check on line 1:'
        " names are unique in the file",
        "c.toml:10: checks[1].conditions[0]: no operator after the placeholder in"
        ' "[STATUS] = 200": write <placeholder> <operator> <value> with one of'
        " == != <= >= < >",
    ]


def test_a_toml_syntax_error_names_its_line() -> None:
    with pytest.raises(ConfigError, match=r"^checks\.toml:2: invalid TOML: "):
        parse_checks('[[checks]]\nname = "a\n', "checks.toml")


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the checks file: No such file"):
        load_checks(tmp_path / "nope.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[checks]]")
    with pytest.raises(ConfigError, match=r"binary\.toml: the checks file is not UTF-8 text"):
        load_checks(binary)


def test_load_checks_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "checks.toml"
    path.write_text(GOOD)
    checks = load_checks(path)
    assert checks.source == str(path) and len(checks.checks) == 3


def test_check_env_names_each_unset_or_empty_variable_never_a_value() -> None:
    checks: CheckSet = parse_checks(GOOD, "checks.toml")
    assert check_env(checks, {"PAYMENTS_HEALTH_TOKEN": "t0ken", "DB_URL": "postgresql://x"}) == []
    assert check_env(checks, {"DB_URL": ""}) == [
        'check "payments-api" (http): PAYMENTS_HEALTH_TOKEN (headers_env.Authorization) is not set',
        'check "db" (postgres): DB_URL (dsn_env) is empty',
    ]


def test_a_heartbeat_cron_that_does_not_parse_is_a_problem_on_its_line() -> None:
    text = '[[checks]]\nname = "nightly"\nkind = "heartbeat"\ncron = "0 25 * * *"\n'
    with pytest.raises(ConfigError) as caught:
        parse_checks(text, "checks.toml")
    assert str(caught.value).startswith("checks.toml:4: checks[0].cron: ")


def test_the_names_of_mendlines_own_checks_are_reserved() -> None:
    text = '[[checks]]\nname = "mendline.database"\nkind = "tcp"\nhost = "db"\nport = 5432\n'
    with pytest.raises(ConfigError) as caught:
        parse_checks(text, "checks.toml")
    assert str(caught.value).startswith("checks.toml:2: checks[0].name: ")
    assert "mendline's own checks" in str(caught.value)
