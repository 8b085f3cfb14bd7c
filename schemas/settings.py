"""The one settings model: environment variables ``MENDLINE_*``, optionally a TOML file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from mendline.schemas.errors import ConfigError
from mendline.schemas.event import Level

__all__ = ["Settings", "load_settings", "settings_reference"]


class Settings(BaseSettings):
    """Every setting of mendline, with its default; each is also ``MENDLINE_<NAME>``.

    The README's settings reference is generated from these fields (a test keeps it true).
    """

    model_config = SettingsConfigDict(
        env_prefix="MENDLINE_", extra="forbid", validate_default=True, frozen=True
    )

    profile: Literal["development", "production"] = Field(
        default="development",
        description="development: an alert receiver whose secret is unset is disabled (its"
        " alerts recorded as suppressed); production: `mendline alert` refuses to start.",
    )

    # -- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        default="localhost:9092", description="Kafka bootstrap servers, comma-separated."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How to talk to Kafka."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism, with a SASL security protocol."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle for SSL; the system's when unset."
    )
    errors_topic: str = Field(default="mendline.errors", description="Topic of ErrorEvents.")
    dlq_topic: str = Field(
        default="mendline.errors.dlq", description="Topic where rejected records are kept."
    )
    topic_partitions: int = Field(
        default=6, ge=1, description="Partitions when mendline creates its topics."
    )
    checkins_topic: str = Field(
        default="mendline.checkins", description="Topic of heartbeat check-ins (CheckIn v1)."
    )
    checkins_dlq_topic: str = Field(
        default="mendline.checkins.dlq", description="Topic where rejected check-ins are kept."
    )
    checkins_group: str = Field(
        default="mendline-checkins", description="Kafka consumer group storing the check-ins."
    )

    # -- PostgreSQL ----------------------------------------------------------------------
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://mendline@localhost:5432/mendline"),
        description="PostgreSQL connection URL.",
    )

    # -- Who acts (the command line) -----------------------------------------------------
    token: SecretStr | None = Field(
        default=None,
        description="API token the commands act with (`mendline tokens create`); its user "
        "and role.",
    )
    local_role: Literal["none", "viewer", "responder", "approver", "admin"] = Field(
        default="admin",
        description="Without a token, the commands act as the local OS user with this role "
        "(direct database access); `none` turns that off: set it in production (the Docker "
        "image does).",
    )

    # -- Consuming (mendline consume) ----------------------------------------------------
    consumer_group: str = Field(
        default="mendline-consume", description="Kafka consumer group of `mendline consume`."
    )
    batch_max_records: int = Field(
        default=2000, ge=1, description="Most records stored in one PostgreSQL transaction."
    )
    kafka_session_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before a silent consumer loses its partitions."
    )
    frequency_threshold: int = Field(
        default=100, ge=0, description="Events in the window that make a frequency trigger; 0: off."
    )
    frequency_window_minutes: int = Field(
        default=5, ge=1, description="The frequency trigger's window, in minutes."
    )
    events_full_per_hour: int = Field(
        default=100,
        ge=0,
        description="Events of one issue stored whole each hour (and the first of each release "
        "and environment); past them a sample is stored and every event still counted. "
        "0: store every event.",
    )
    events_sample_per_hour: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Events of one issue stored per hour, a uniform sample, of those past "
        "MENDLINE_EVENTS_FULL_PER_HOUR.",
    )
    retention_days: int = Field(
        default=30, ge=1, le=36500, description="Days of events kept by `mendline events prune`."
    )
    check_results_retention_days: int = Field(
        default=7,
        ge=1,
        description="Days of health check results kept (and per-minute rollups, and heartbeat "
        "check-ins no heartbeat needs any more).",
    )
    check_rollups_retention_days: int = Field(
        default=400, ge=1, description="Days of hourly and daily health check rollups kept."
    )
    producer_auth: Literal["off", "warn", "enforce"] = Field(
        default="off",
        description="Check producers' signatures: `off`, `warn` (store, count, log) or "
        "`enforce` (dead-letter as `unauthenticated`); see the trust model.",
    )
    producer_keys_file: Path | None = Field(
        default=None,
        description="TOML file of each service's signing keys (`[services]`) and `exhaustive`.",
    )

    # -- Root-cause analysis (mendline analyze) -------------------------------------------
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API base URL (…/v1); unset: the heuristic analyser only.",
    )
    llm_model: str = Field(default="gpt-4o-mini", description="Model (or deployment) name.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key for the LLM.")
    llm_api_key_header: Literal["Authorization", "api-key"] = Field(
        default="Authorization",
        description="How the key is sent: `Authorization: Bearer` or Azure's `api-key`.",
    )
    llm_api_version: str | None = Field(
        default=None, description="Azure OpenAI's `api-version` query parameter, when needed."
    )
    llm_timeout: float = Field(default=30.0, gt=0, description="Seconds per LLM call.")
    llm_max_retries: int = Field(
        default=2, ge=0, description="Retries of a call on timeouts, 429 and 5xx."
    )
    llm_concurrency: int = Field(
        default=4, ge=1, description="LLM calls in flight at once, per analyze worker."
    )
    llm_input_price: float = Field(
        default=0.0, ge=0, description="US dollars per million prompt tokens."
    )
    llm_output_price: float = Field(
        default=0.0, ge=0, description="US dollars per million completion tokens."
    )
    llm_daily_token_budget: int = Field(
        default=0, ge=0, description="Tokens a day (UTC) before falling back; 0: no limit."
    )
    llm_daily_cost_budget: float = Field(
        default=0.0, ge=0, description="US dollars a day (UTC) before falling back; 0: no limit."
    )
    llm_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Failed analyses in a row (each after its retries) that open the breaker.",
    )
    llm_breaker_cooldown: float = Field(
        default=60.0, gt=0, description="Seconds the breaker stays open before a probe call."
    )
    analyze_lease: float = Field(
        default=300.0,
        ge=1,
        description="Seconds a claimed trigger stays a worker's (renewed while it works).",
    )
    analyze_poll_interval: float = Field(
        default=5.0, gt=0, description="Seconds between looks for work without a notification."
    )
    outage_retry_max: float = Field(
        default=30.0,
        ge=0.5,
        description="Longest wait, in seconds, between the analyze, alert, monitor and heal "
        "workers' tries to reach PostgreSQL while it is out (the waits start at half a second "
        "and double up to it; the consumer's cap is 10 s, as it holds the batch).",
    )

    # -- Alerts (mendline alert) -----------------------------------------------------------
    routes_file: Path | None = Field(
        default=None,
        description="Alert routing file (TOML); the shipped default when unset.",
    )
    issue_url_template: str | None = Field(
        default=None,
        description="Link to an issue in alerts, with `{id}`, e.g. `https://x/issues/{id}`;"
        " unset: the dashboard's issue page under `web_public_url`, when that is set.",
    )
    alert_lease: float = Field(
        default=120.0,
        ge=1,
        description="Seconds a claimed delivery, or a receiver taken, stays a worker's"
        " (renewed while it runs).",
    )
    alert_poll_interval: float = Field(
        default=2.0, gt=0, description="Seconds between looks for due deliveries."
    )
    alert_concurrency: int = Field(
        default=8,
        ge=1,
        description="Messages one alert worker sends at once to each receiver (one at a time"
        " per issue; to a Slack receiver one at a time, a message a second).",
    )
    alert_max_age: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="Seconds a delivery is retried before it is marked dead.",
    )

    # -- Health checks (mendline monitor) --------------------------------------------------
    checks_file: Path | None = Field(
        default=None,
        description="The checks file of `mendline monitor` (TOML); unset: no checks of yours.",
    )
    checks_reload_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between looks at the checks file for a change (SIGHUP reads it "
        "at once).",
    )
    self_checks: bool = Field(
        default=True,
        description="Run the built-in checks of mendline itself (consumer lag, records "
        "dead-lettered, stuck triggers and alerts, the LLM's breaker, the check-ins clock, the "
        "database's connections).",
    )
    self_check_max_lag: int = Field(
        default=1000,
        ge=0,
        description="Records behind on the errors topic before the consumer-lag self check fails.",
    )
    self_check_max_age: float = Field(
        default=900.0,
        gt=0,
        description="Seconds the oldest unanalysed trigger or undelivered alert may wait "
        "before the backlog self checks fail.",
    )
    monitor_concurrency: int = Field(
        default=200, ge=1, description="Checks one monitor runs at once."
    )
    monitor_lease: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a monitor holds a slot it claimed (renewed while the check "
        "runs); a killed monitor's slot is run by another after it.",
    )
    monitor_poll_interval: float = Field(
        default=0.5, gt=0, description="Seconds between looks for due checks."
    )
    monitor_tick_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between the monitor's clock ticks on the check-ins topic, and "
        "between judgements of heartbeats.",
    )

    # -- Self-healing fixes ----------------------------------------------------------------
    fix_policy_file: Path | None = Field(
        default=None,
        description="The fix policy file (TOML): which fixes are applied without a person,"
        " approved or denied, the repositories and remediations; unset: the shipped default,"
        " which names no repository, so no fix is applied.",
    )
    fix_work_root: Path = Field(
        default=Path("~/.cache/mendline/worktrees"),
        description="Where fixes are applied: a git worktree per fix under it, outside every"
        " repository (never the repository's own working tree).",
    )
    fix_patch_dir: Path = Field(
        default=Path("~/.cache/mendline/patches"),
        description='Where fixes delivered as patch files (delivery = "patch") are written.',
    )
    fix_author: str = Field(
        default="mendline <mendline@localhost>",
        description='Author and committer of the fix and revert commits: "name <email>".',
    )
    fix_lease: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds a heal worker holds a fix it is applying (renewed while it"
        " works); a killed worker's fix is taken over after it.",
    )
    fix_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Times a fix is claimed for applying before it is failed (its workers"
        " keep dying).",
    )
    fix_verification_window: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds a deployed fix's issue must stay quiet on its release (or a"
        " later one) before the fix is verified and the issue resolved.",
    )
    heal_poll_interval: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between the heal stage's passes (proposing, applying, noticing"
        " deployments, settling deployed fixes).",
    )

    # -- The emitting app (structlog processor, logging handler, shipper) -----------------
    service: str | None = Field(
        default=None, description="Service name on emitted events; the program name if unset."
    )
    environment: str = Field(default="production", description="Environment on emitted events.")
    release: str | None = Field(default=None, description="Release on emitted events.")
    emit_level: Level = Field(
        default="error", description="Lowest level that becomes an ErrorEvent (exc_info always)."
    )
    in_app_include: list[str] = Field(
        default_factory=list, description="Module prefixes always counted as in-app."
    )
    in_app_exclude: list[str] = Field(
        default_factory=list, description="Module prefixes never counted as in-app."
    )
    scrub_extra_keys: list[str] = Field(
        default_factory=list, description="More key names whose values are filtered."
    )
    scrub_extra_patterns: list[str] = Field(
        default_factory=list, description="More regular expressions filtered inside strings."
    )
    queue_size: int = Field(
        default=10_000, ge=1, description="Events held in memory for the shipper thread."
    )
    rollup_window: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds an error storm is rolled up over: repeats of one error past the "
        "first MENDLINE_ROLLUP_FULL in a window are counted and sent as one event with their "
        "count; 0: every occurrence is sent.",
    )
    rollup_full: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Occurrences of one error sent in full in each roll-up window.",
    )
    spool_dir: Path = Field(
        default=Path("~/.cache/mendline/spool"),
        description="Where events wait on disk while Kafka is unreachable (one folder a service).",
    )
    spool_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Spool size cap; the oldest go first."
    )
    shutdown_timeout: float = Field(
        default=5.0, ge=0, description="Seconds the atexit hook waits to flush."
    )
    kafka_request_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds before a produce request (shipper, DLQ, redrive) counts as failed.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="This service's key: the shipper and `mendline emit` sign each event "
        "(HMAC-SHA256) with it.",
    )

    # -- /healthz, /readyz and /metrics of the long-running commands ----------------------
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of `/healthz`, `/readyz` and `/metrics` (consume, analyze, alert, run);"
        " unset: not served.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address those endpoints listen on; `0.0.0.0` in a container.",
    )

    # -- The dashboard (mendline web) ------------------------------------------------------
    web_host: str = Field(
        default="127.0.0.1",
        description="Address the dashboard listens on; `0.0.0.0` only behind TLS or a proxy.",
    )
    web_port: int = Field(
        default=8040,
        ge=0,
        le=65535,
        description="Port of the dashboard; 0: any free port (its address is logged).",
    )
    web_public_url: str | None = Field(
        default=None,
        description="The dashboard's address as people open it (`https://mendline.example.com`):"
        " the only Origin state changes are taken from, and `https` makes cookies `Secure`;"
        " unset: the address the request came to.",
    )
    web_read_only: bool = Field(
        default=False,
        description="Serve the dashboard and API read-only: every change is refused.",
    )
    web_session_idle: float = Field(
        default=12 * 3600.0, gt=0, description="Seconds a dashboard session lasts unused."
    )
    web_session_max: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Seconds a dashboard session lasts at most, used or not (then log in again).",
    )
    web_login_free_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins per account, and per client address, before each further"
        " attempt has to wait (doubling, up to 15 minutes).",
    )
    web_auth_proxy_allow: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the proxies whose user header is believed.",
    )
    web_auth_proxy_header: str | None = Field(
        default=None,
        description="Header an SSO proxy puts the user's name in (e.g. `X-WEBAUTH-USER`),"
        " believed only from `web_auth_proxy_allow`; unset: no proxy login.",
    )
    web_forwarded_allow: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose `X-Forwarded-For`"
        " and `X-Forwarded-Proto` tell the client's address and scheme.",
    )

    # -- The Sentry-compatible endpoint (mendline relay) ----------------------------------
    relay_host: str = Field(
        default="127.0.0.1",
        description="Address the relay listens on; `0.0.0.0` only behind TLS or a proxy.",
    )
    relay_port: int = Field(
        default=8050,
        ge=0,
        le=65535,
        description="Port of the relay (Sentry's ingest API); 0: any free port (logged).",
    )
    relay_public_url: str | None = Field(
        default=None,
        description="The relay's address as apps reach it (`https://sentry-in.example.com`,"
        " a path prefix allowed): the host of the DSNs `mendline keys` prints; unset: "
        "`http://<relay_host>:<relay_port>`.",
    )
    relay_rate_limit: int = Field(
        default=6000,
        ge=0,
        description="Events a minute each key may send (a bucket of as many), unless the key"
        " sets its own; past it the SDK is told to back off (429); 0: no limit.",
    )
    relay_keep_pii: bool = Field(
        default=False,
        description="Keep the user's IP address, email and names, cookies and the request's "
        "environment from Sentry events (as `send_default_pii`); off: left out.",
    )
    relay_max_envelope_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest request body the relay reads, compressed or not (Sentry allows 200"
        " MiB, mostly for attachments, which mendline drops): past it, 413.",
    )
    relay_concurrency: int = Field(
        default=4,
        ge=1,
        description="Large compressed bodies (over 64 KiB, or over 1 MiB decompressed) the relay"
        " decompresses at once, in threads of its own (the others wait up to"
        " MENDLINE_RELAY_PRODUCE_TIMEOUT, then 503); each may take up to three times"
        " MENDLINE_RELAY_MAX_ENVELOPE_BYTES of memory meanwhile. Smaller ones, most SDK"
        " envelopes, are read on the event loop as they come.",
    )
    relay_keys_refresh: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between the relay's reads of the keys (a revoked key is refused"
        " within as long).",
    )
    relay_produce_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds the relay waits for Kafka to acknowledge an event before it answers"
        " 503 (the SDK may send it again).",
    )

    @property
    def relay_url(self) -> str:
        """Where apps send to: ``relay_public_url``, else this process's address."""
        if self.relay_public_url is not None:
            return self.relay_public_url
        # Listening on every interface: this machine's apps reach it on loopback.
        host = self.relay_host if self.relay_host not in ("0.0.0.0", "::", "") else "localhost"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.relay_port}"

    @property
    def issue_link_template(self) -> str | None:
        """The link to an issue in alerts, with ``{id}``: ``issue_url_template``, else the
        dashboard's issue page under ``web_public_url``, else None (no link)."""
        if self.issue_url_template is not None:
            return self.issue_url_template
        if self.web_public_url is not None:
            base = self.web_public_url.replace("{", "{{").replace("}", "}}")
            return f"{base}/issues/{{id}}"
        return None

    @field_validator("issue_url_template")
    @classmethod
    def _a_template_of_id(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(id=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"use {{id}} and nothing else in braces ({exc!r})") from None
        return value

    @field_validator("web_auth_proxy_allow", "web_forwarded_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network (CIDR)") from None
        return value

    @field_validator("web_auth_proxy_header")
    @classmethod
    def _proxies_to_believe(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("web_auth_proxy_allow"):
            raise ValueError("set web_auth_proxy_allow to the proxies whose header is believed")
        return value

    @field_validator("web_public_url", "relay_public_url")
    @classmethod
    def _an_origin(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("give the address with its scheme, e.g. https://mendline.example.com")
        return None if value is None else value.rstrip("/")

    @field_validator("producer_keys_file")
    @classmethod
    def _keys_to_check_with(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        mode = info.data.get("producer_auth", "off")
        if value is None and mode != "off":
            raise ValueError(f"producer_auth = {mode} needs the keys each service signs with")
        return value

    @field_validator("signing_key")
    @classmethod
    def _a_long_key(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never holds the key.
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use a key of at least 16 characters, e.g. `openssl rand -hex 32`")
        return value

    @field_validator("local_role", mode="before")
    @classmethod
    def _empty_role_is_none(cls, value: Any) -> Any:
        return "none" if value == "" else value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        # `MENDLINE_LLM_BASE_URL=` (or a Compose pass-through of an empty variable) means
        # "not set" for a setting whose default is unset, not the empty string or path ".".
        field = cls.model_fields.get(info.field_name or "")
        if value == "" and field is not None and field.default is None:
            return None
        return value


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a TOML file (optional), the environment and overrides.

    Precedence, highest first: ``overrides``, ``MENDLINE_*`` variables, the file, defaults.
    Raises ConfigError with one line per problem, naming the setting.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file} is not valid TOML: {exc}") from exc
        prefix = Settings.model_config.get("env_prefix", "")
        # The environment wins over the file, so drop file values that it sets.
        values = {k: v for k, v in values.items() if f"{prefix}{k}".upper() not in os.environ}
    values.update(overrides)
    try:
        return Settings(**values)
    except SettingsError as exc:  # a MENDLINE_* list that is not JSON; names the setting
        raise ConfigError(f"invalid settings: {exc}") from None
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None


def settings_reference() -> str:
    """The settings reference as a Markdown table (the README embeds it; a test compares)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            shown = f"`{default.get_secret_value()}`"
        elif default is None:
            shown = "unset"
        elif isinstance(default, list):
            shown = "[]"
        else:
            shown = f"`{default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows) + "\n"
