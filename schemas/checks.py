"""Health checks: the checks people write in the checks file, what a probe observes, a check's
result and state, and the check-ins jobs send (contracts only: no I/O).

A check is one of seven kinds (http, tcp, dns, tls, postgres, kafka, heartbeat). Durations are
seconds, written in the file as people write them ("30s", "5m", "1h30m"). Secrets are never
written in the file: the file names the environment variables that hold them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mendline.schemas.alert import AlertSeverity
from mendline.schemas.duration import format_duration
from mendline.schemas.tomlfile import parse_duration

__all__ = [
    "CHECKIN_SCHEMA_VERSION",
    "CHECK_KINDS",
    "CHECK_NAME",
    "CLOCK_CHECK",
    "MAX_DURATION",
    "WEEKDAYS",
    "Check",
    "CheckIn",
    "CheckKind",
    "CheckResult",
    "CheckState",
    "CheckStatus",
    "ConditionResult",
    "DnsCheck",
    "Duration",
    "ErrorKind",
    "HeartbeatCheck",
    "HttpCheck",
    "KafkaCheck",
    "Maintenance",
    "Observation",
    "ObservedValue",
    "PostgresCheck",
    "TcpCheck",
    "TlsCheck",
    "Transition",
    "Weekday",
]

CheckKind = Literal["http", "tcp", "dns", "tls", "postgres", "kafka", "heartbeat"]
CHECK_KINDS: tuple[CheckKind, ...] = ("http", "tcp", "dns", "tls", "postgres", "kafka", "heartbeat")
#: ``unknown`` until the first results decide; ``down`` after failure_threshold failures in
#: a row, ``up`` again after success_threshold successes in a row.
CheckStatus = Literal["unknown", "up", "down"]
#: What a result changed that people are told of: the check went down, came back, or started
#: flipping so often that its alerts collapse into one "flapping" notification.
Transition = Literal["down", "recovered", "flapping"]
#: Why a probe failed, a small fixed set (counted and explained by the analyser; never a raw
#: message as a label).
ErrorKind = Literal[
    "refused",  # connection refused
    "timeout",  # no answer within the check's timeout
    "dns",  # the name did not resolve
    "tls",  # handshake or verification failed
    "http",  # the HTTP exchange failed (protocol error, too many redirects)
    "query",  # the PostgreSQL query failed
    "auth",  # credentials refused (PostgreSQL, Kafka SASL)
    "unreachable",  # network unreachable, host down, reset
    "config",  # the check cannot run here: an environment variable it names is unset
    "missed",  # heartbeat: no check-in by the deadline
    "failed",  # heartbeat: the job sent `fail`
    "overran",  # heartbeat: the run took longer than max_runtime
    "other",
]

#: The longest duration a check may have (interval, timeout, grace...): 366 days. Longer
#: ones are mistakes, and past the calendar's end they cannot be scheduled at all.
MAX_DURATION = 366 * 86400.0


def _at_most_a_year(seconds: float) -> float:
    if seconds > MAX_DURATION:
        # Not the value: the line shows it, and a huge one reads as a screenful of digits.
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)} (a year)")
    return seconds


#: A duration in seconds, written "30s", "5m", "1h30m", "500ms", "1d" or as a number; at
#: most MAX_DURATION.
Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_at_most_a_year)]

#: What a check's name may be (it goes into URLs, metrics labels and the live topics).
CHECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: The days in order, Monday first (``datetime.weekday()`` is the index).
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone (use an IANA name: Europe/Paris, UTC)"
        ) from None
    return name


class Maintenance(_Model):
    """A window when the check's alerts are muted and its results are left out of uptime
    (counted apart). Weekly (``days``, ``at`` and ``duration`` in ``timezone``) or one-off
    (``start`` and ``duration``)."""

    days: list[Weekday] | None = Field(
        default=None, description="Weekly: the days it starts on; every day when only `at`."
    )
    at: time | None = Field(default=None, description='Weekly: its start, "hh:mm" local time.')
    start: AwareDatetime | None = Field(default=None, description="One-off: its start.")
    duration: Duration = Field(gt=0, description="How long it lasts.")
    timezone: str = Field(default="UTC", description="The zone of `at` (IANA name).")

    @field_validator("at", mode="before")
    @classmethod
    def _hh_mm(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
            raise ValueError(f'{value!r} is not a time of day; write "hh:mm", e.g. "02:30"')
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Maintenance:
        if (self.at is None) == (self.start is None):
            raise ValueError('give either `at` (weekly, "hh:mm") or `start` (one-off)')
        if self.start is not None and self.days is not None:
            raise ValueError("`days` goes with `at`, not with `start`")
        return self


class _Check(_Model):
    name: str = Field(description="Unique in the file: letters, digits, '.', '_' and '-'.")
    interval: Duration = Field(default=300.0, ge=1, description="How often it runs.")
    timeout: Duration = Field(default=10.0, gt=0, description="Hard limit on one run.")
    failure_threshold: int = Field(
        default=3, ge=1, description="Failures in a row before it is down."
    )
    success_threshold: int = Field(
        default=2, ge=1, description="Successes in a row before it is up again."
    )
    severity: AlertSeverity = Field(default="error", description="The alert's when down.")
    service: str | None = Field(
        default=None, max_length=200, description="The alerts' service label; the check's name."
    )
    environment: str = Field(default="production", max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, description="More labels: tag:<name>.")
    conditions: list[str] = Field(
        default_factory=list,
        description="Gatus-style conditions, all must hold: '[STATUS] == 200'. Each kind has "
        "a default when none is given.",
    )
    maintenance: list[Maintenance] = Field(default_factory=list)
    flap_threshold: int = Field(
        default=5, ge=2, description="State changes within flap_window that mean flapping."
    )
    flap_window: Duration = Field(default=3600.0, gt=0)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not CHECK_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a check name: 1 to 100 letters, digits, '.', '_' or '-',"
                " starting with a letter or digit"
            )
        return value

    @property
    def labels_service(self) -> str:
        """The ``service`` label of its alerts and issue: ``service``, else its name."""
        return self.service or self.name


class HttpCheck(_Check):
    """An HTTP request; by default up when the status is below 400."""

    kind: Literal["http"]
    url: str = Field(description="http:// or https:// URL.")
    method: str = Field(default="GET", pattern=r"^[A-Z]{1,16}$")
    headers: dict[str, str] = Field(default_factory=dict, description="Plain header values.")
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> environment variable holding its value (secrets).",
    )
    body: str | None = Field(default=None, description="The request body.")
    verify_tls: bool = True
    follow_redirects: bool = True
    expected_status: list[int] = Field(
        default_factory=list, description="A shortcut for '[STATUS] == any(...)'."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"(?i)https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class TcpCheck(_Check):
    """A TCP connection; up when it connects."""

    kind: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)


class DnsCheck(_Check):
    """A DNS query; by default up when the answer's rcode is NOERROR with an answer."""

    kind: Literal["dns"]
    query: str = Field(description="The name to resolve.")
    record_type: Literal["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA"] = "A"
    nameserver: str | None = Field(
        default=None, description='"host" or "host:port"; the system resolver when unset.'
    )
    expected: list[str] = Field(
        default_factory=list, description="Answers that must all be present (a shortcut)."
    )


class TlsCheck(_Check):
    """A TLS handshake; by default up while the certificate has more than 14 days left."""

    kind: Literal["tls"]
    host: str
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(default=None, description="SNI; the host when unset.")
    verify_tls: bool = True
    ca_file: str | None = Field(default=None, description="CA bundle; the system's when unset.")


class PostgresCheck(_Check):
    """Connect to PostgreSQL and run a query within the timeout."""

    kind: Literal["postgres"]
    dsn_env: str = Field(description="Environment variable holding the connection URL.")
    query: str = "SELECT 1"


class KafkaCheck(_Check):
    """The broker is reachable; with ``group`` and ``topic``, the group's lag on the topic;
    with ``topic`` alone, the records appended to the topic within ``window``."""

    kind: Literal["kafka"]
    bootstrap: str | None = Field(default=None, description="MENDLINE_KAFKA_BOOTSTRAP if unset.")
    group: str | None = None
    topic: str | None = None
    max_lag: int | None = Field(default=None, ge=0, description="A shortcut for '[LAG] <= N'.")
    window: Duration | None = Field(
        default=None,
        gt=0,
        description="With `topic` alone: [RECENT] counts the records appended within it; "
        "the interval if unset.",
    )

    @field_validator("window")
    @classmethod
    def _window_within_a_week(cls, value: float | None) -> float | None:
        if value is not None and value > 7 * 86400:
            raise ValueError(
                "at most 7d: [RECENT] reads the newest records of each partition, not the"
                " topic's history"
            )
        return value

    @model_validator(mode="after")
    def _group_with_topic(self) -> KafkaCheck:
        if self.group is not None and self.topic is None:
            raise ValueError("`group` needs `topic`: the group's lag is measured on a topic")
        if self.max_lag is not None and self.group is None:
            raise ValueError("`max_lag` needs `group` and `topic`")
        if self.window is not None and (self.topic is None or self.group is not None):
            raise ValueError(
                "`window` goes with `topic` alone (no `group`): [RECENT] counts the records"
                " appended to the topic within it"
            )
        return self

    @property
    def recent_window(self) -> float:
        """The seconds [RECENT] looks back: ``window``, else the check's interval."""
        return self.window if self.window is not None else self.interval


class HeartbeatCheck(_Check):
    """A dead man's switch: the job checks in on a schedule (``every`` or ``cron``); a missed,
    late, failed or overrunning run is a failure. Judged on the check-ins' own timestamps."""

    kind: Literal["heartbeat"]
    every: Duration | None = Field(default=None, gt=0, description="Expected every so long.")
    cron: str | None = Field(default=None, description='A cron expression: "0 3 * * *".')
    timezone: str = Field(default="UTC", description="The zone of `cron`.")
    grace: Duration = Field(default=300.0, ge=0, description="How late a check-in may be.")
    max_runtime: Duration | None = Field(
        default=None, gt=0, description="A run (start to ok) longer than this fails."
    )
    failure_threshold: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _one_schedule(self) -> HeartbeatCheck:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give either `every` or `cron`")
        return self


Check = Annotated[
    HttpCheck | TcpCheck | DnsCheck | TlsCheck | PostgresCheck | KafkaCheck | HeartbeatCheck,
    Field(discriminator="kind"),
]

# -- what a run saw ------------------------------------------------------------------------

#: A value a condition's placeholder reads: [STATUS] an int, [BODY] a str, [HEADERS] a
#: dict, [CONNECTED] a bool, [DNS_ANSWER] a list of str.
ObservedValue = bool | int | float | str | list[str] | dict[str, str] | None


class Observation(_Model):
    """What a probe saw, before any condition is applied.

    ``values`` is keyed by placeholder name without brackets: STATUS, RESPONSE_TIME (ms),
    BODY, HEADERS, CONNECTED, IP, DNS_RCODE, DNS_ANSWER, CERTIFICATE_EXPIRATION (seconds
    left), QUERY_DURATION (ms), ROWS, RESULT (the first column of the first row), LAG, RECENT.
    ``timings`` are seconds per phase where known: dns, connect, tls, first_byte, total.
    ``error`` says in a sentence why the probe could not complete; ``error_kind`` classifies
    it.
    """

    values: dict[str, ObservedValue] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    error_kind: ErrorKind | None = None


class ConditionResult(_Model):
    """One condition of a result: whether it held, and the value it was judged on."""

    condition: str
    success: bool
    observed: str = Field(description="The value(s) read, as shown to people (shortened).")


class CheckResult(_Model):
    """One run of a check at its scheduled slot."""

    check: str
    kind: CheckKind
    scheduled_at: AwareDatetime = Field(description="The slot this run was for.")
    started_at: AwareDatetime
    duration: float = Field(ge=0, description="Seconds the run took.")
    success: bool
    conditions: list[ConditionResult] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def response_time(self) -> float:
        """Seconds to the answer: the ``total`` timing, else the run's duration."""
        return self.timings.get("total", self.duration)


@dataclass(frozen=True)
class CheckState:
    """Where a check stands between results: its status and since when, the results in a
    row that move it, and the recent changes of status that tell flapping."""

    status: CheckStatus = "unknown"
    since: datetime | None = None
    failures: int = 0
    successes: int = 0
    changes: tuple[datetime, ...] = field(default=())
    flapping: bool = False


# -- check-ins -----------------------------------------------------------------------------

CHECKIN_SCHEMA_VERSION = 1
#: The check name of the monitor's clock ticks: check-ins it sends to the check-ins topic
#: while the topic is quiet, so the stream clock moves on (and a job that stopped checking in
#: is found missed) without ever running ahead of check-ins still unread. Not stored.
CLOCK_CHECK = "mendline.clock"


class CheckIn(BaseModel):
    """A job's check-in for a heartbeat check, as sent to the check-ins topic (JSON Schema:
    ``checkin.v1.json``). ``start`` then ``ok`` or ``fail``; the same ``run_id`` pairs a
    start with its finish so the run time is measured. ``timestamp`` is the sender's clock,
    and missed and late runs are judged on it, not on when mendline read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(description='1; not `true`, not "1".')
    checkin_id: UUID = Field(description="Unique per check-in: a redelivery changes nothing.")
    check: str = Field(description="The heartbeat check's name.")
    status: Literal["start", "ok", "fail"]
    timestamp: AwareDatetime
    run_id: str | None = Field(default=None, max_length=200)
    environment: str = Field(default="production", max_length=200)
    duration: float | None = Field(
        default=None, ge=0, description="Seconds the run took, as the job measured it."
    )
    message: str | None = Field(
        default=None, max_length=4000, description="With fail: what went wrong (scrubbed)."
    )
    host: str | None = Field(default=None, max_length=255)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _an_integer(cls, value: Any) -> Any:
        if type(value) is not int:
            raise ValueError("schema_version must be the integer 1")
        return value

    @field_validator("check")
    @classmethod
    def _valid_check(cls, value: str) -> str:
        if not CHECK_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a check name")
        return value
