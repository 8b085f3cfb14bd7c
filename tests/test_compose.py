"""docker-compose.yml, checked without Docker: services, settings, addresses, secrets, health."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mendline.schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PREFIX: str = Settings.model_config.get("env_prefix", "")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, and
# $$ (a literal dollar), as Compose interpolates them.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|CREDENTIAL", re.IGNORECASE)


def _interpolate(value: str) -> str:
    """Substitute as Compose would with nothing set: defaults where given, dummies elsewhere."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        return f"dummy-{match.group('name').lower()}"

    return _INTERPOLATION.sub(substitute, value)


def _is_bare_interpolation(value: str) -> bool:
    """True for ``${NAME}``, ``${NAME?err}`` or ``${NAME:?err}``: a value with no literal part."""
    match = _INTERPOLATION.fullmatch(value)
    return match is not None and match.group(0) != "$$" and (match.group("op") or "?")[-1] == "?"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    parsed = {}
    for item in _interpolate(value).split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        parsed[name] = (host, int(port))
    return parsed


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def mendline_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from this repository, the present ones and those later stages add."""
    return {name: svc for name, svc in services.items() if "build" in svc}


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _environment(services["kafka"])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MENDLINE_* variable of the shell running the tests leaks into Settings."""
    for name in list(os.environ):
        if name.upper().startswith(PREFIX.upper()):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_stack_has_kafka_postgres_and_the_init_job(services: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "mendline-init"} <= services.keys()


def test_mendline_services_share_the_image_built_from_the_repo(
    compose: dict[str, Any], mendline_services: dict[str, dict[str, Any]]
) -> None:
    assert "mendline-init" in mendline_services
    shared = compose["x-mendline"]
    for name, service in mendline_services.items():
        assert service["build"] == shared["build"], name
        assert service["image"] == shared["image"], name
        assert service["environment"] == shared["environment"], name
        build = service["build"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def _secrets_of_the_shipped_routes() -> set[str]:
    """The environment variables the shipped routing file's receivers read their secrets from."""
    from mendline.sinks.routing import load_routes

    table = load_routes(None)
    return {
        str(value)
        for receiver in table.receivers.values()
        for name, value in receiver.model_dump().items()
        if name.endswith("_env") and value
    }


def test_every_mendline_variable_is_a_settings_field_or_a_routed_secret(
    services: dict[str, Any],
) -> None:
    used = {
        (service_name, var)
        for service_name, service in services.items()
        for var in _environment(service)
        if var.upper().startswith(PREFIX.upper())
    }
    assert used, "no service sets a MENDLINE_* variable"
    secrets = _secrets_of_the_shipped_routes()
    unknown = sorted(
        (service_name, var)
        for service_name, var in used
        if var[len(PREFIX) :].lower() not in Settings.model_fields and var not in secrets
    )
    assert unknown == []


def test_the_shipped_routes_secrets_are_passed_through(compose: dict[str, Any]) -> None:
    env = _environment(compose["x-mendline"])
    for name in _secrets_of_the_shipped_routes():
        assert name in env and env[name] == "", name  # passed through, never written


def test_mendline_services_are_configured_only_through_mendline_variables(
    mendline_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in mendline_services.items():
        others = [v for v in _environment(service) if not v.upper().startswith(PREFIX.upper())]
        assert others == [], name


def test_mendline_environment_validates_as_settings(
    mendline_services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    # Through the environment, as the container passes them: that is the parsing path
    # (strings, JSON for lists) the services really take.
    for name, service in mendline_services.items():
        env = {k: _interpolate(v) for k, v in _environment(service).items()}
        with clean_env.context() as patch:
            for var, value in env.items():
                patch.setenv(var, value)
            settings = Settings()
        assert settings.kafka_bootstrap == env[f"{PREFIX}KAFKA_BOOTSTRAP"], name
        assert settings.database_url.get_secret_value() == env[f"{PREFIX}DATABASE_URL"], name
        assert settings.topic_partitions == int(env[f"{PREFIX}TOPIC_PARTITIONS"]), name


def test_kafka_bootstrap_is_the_kafka_internal_listener(
    services: dict[str, Any],
    mendline_services: dict[str, dict[str, Any]],
    kafka_env: dict[str, str],
) -> None:
    listeners = _listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        p.split(":") for p in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controllers = set(kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    for name, service in mendline_services.items():
        env = _environment(service)
        expected_protocol = _interpolate(
            env.get(
                f"{PREFIX}KAFKA_SECURITY_PROTOCOL",
                Settings.model_fields["kafka_security_protocol"].default,
            )
        )
        for server in _interpolate(env[f"{PREFIX}KAFKA_BOOTSTRAP"]).split(","):
            host, _, port = server.strip().rpartition(":")
            assert host == "kafka" and host in services, (name, server)
            matches = [ln for ln, addr in advertised.items() if addr == (host, int(port))]
            assert len(matches) == 1, f"{name}: {server} is not an advertised listener of kafka"
            listener = matches[0]
            assert listener not in controllers
            assert listeners[listener][1] == int(port), f"kafka does not listen on {server}"
            assert protocols[listener] == expected_protocol


def test_kafka_is_its_own_kraft_controller(kafka_env: dict[str, str]) -> None:
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = _listeners(kafka_env["KAFKA_LISTENERS"])
    (controller,) = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    node_id, _, address = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    host, _, port = address.rpartition(":")
    assert node_id == kafka_env["KAFKA_NODE_ID"]
    assert host == "kafka"
    assert int(port) == listeners[controller][1]
    assert kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_kafka_host_listener_is_published(
    services: dict[str, Any], kafka_env: dict[str, str]
) -> None:
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    published = {int(_interpolate(str(p)).rsplit(":", 1)[-1]) for p in services["kafka"]["ports"]}
    for_host = {port for host, port in advertised.values() if host != "kafka"}
    assert for_host, "kafka advertises no listener for the host"
    assert for_host <= published


@pytest.mark.parametrize(
    ("service_name", "data_dir"),
    [("kafka", "/var/lib/kafka/data"), ("postgres", "/var/lib/postgresql/data")],
)
def test_data_lives_on_a_named_volume(
    compose: dict[str, Any], service_name: str, data_dir: str
) -> None:
    service = compose["services"][service_name]
    if service_name == "kafka":
        assert _environment(service)["KAFKA_LOG_DIRS"] == data_dir
    mounts = dict(reversed(str(v).split(":")[:2]) for v in service["volumes"])
    assert mounts.get(data_dir) in (compose.get("volumes") or {})


def test_database_url_is_the_postgres_service(
    services: dict[str, Any], mendline_services: dict[str, dict[str, Any]]
) -> None:
    postgres_env = _environment(services["postgres"])
    for name, service in mendline_services.items():
        raw = _environment(service)[f"{PREFIX}DATABASE_URL"]
        url = urlsplit(_interpolate(raw))
        assert url.scheme in ("postgresql", "postgres"), name
        assert url.hostname == "postgres" and url.hostname in services, name
        assert url.port == 5432, name
        assert url.username == postgres_env["POSTGRES_USER"], name
        assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"], name
        # The password is the same variable the database was initialised with.
        password = raw.split("://", 1)[1].rsplit("@", 1)[0].partition(":")[2]
        in_url = _INTERPOLATION.fullmatch(password)
        in_db = _INTERPOLATION.fullmatch(postgres_env["POSTGRES_PASSWORD"])
        assert in_url is not None and in_db is not None, name
        assert in_url.group("name") == in_db.group("name"), name


def test_mendline_commands_are_cli_subcommands(
    mendline_services: dict[str, dict[str, Any]],
) -> None:
    from mendline.cli import build_parser

    for name, service in mendline_services.items():
        command = _command(service)
        assert command[:1] == ["mendline"], name
        try:
            build_parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(command)}` is not a mendline command")


def test_no_secret_value_is_committed(compose: dict[str, Any]) -> None:
    leaks = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                secret = isinstance(value, str | int) and _SECRET_NAME.search(str(key))
                if secret and not _is_bare_interpolation(str(value)):
                    leaks.append(f"{path}.{key}")
                visit(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str) and "=" in item:
                    key, value = item.split("=", 1)
                    if _SECRET_NAME.search(key) and not _is_bare_interpolation(value):
                        leaks.append(f"{path}[{i}]")
                visit(item, f"{path}[{i}]")
        elif isinstance(node, str):
            # user:password@ in any URL
            for password in re.findall(r"://[^/@\s:]+:([^@\s]+)@", node):
                if not _is_bare_interpolation(password):
                    leaks.append(path)

    visit(compose, "")
    assert leaks == []


def test_kafka_and_postgres_have_healthchecks(services: dict[str, Any]) -> None:
    kafka_check = services["kafka"]["healthcheck"]["test"]
    assert kafka_check[0] == "CMD"
    assert kafka_check[1].endswith("/kafka-broker-api-versions.sh")
    assert "kafka:9092" in kafka_check
    postgres_check = services["postgres"]["healthcheck"]["test"]
    assert postgres_check[:2] == ["CMD", "pg_isready"]
    postgres_env = _environment(services["postgres"])
    assert postgres_env["POSTGRES_USER"] in postgres_check
    assert postgres_env["POSTGRES_DB"] in postgres_check


# What each mendline command talks to, so what its service must wait for.
_NEEDS = {
    "topics": {"kafka"},
    "consume": {"kafka", "postgres"},
    "analyze": {"postgres"},
    "alert": {"postgres"},
    "monitor": {"kafka", "postgres"},
    "relay": {"kafka", "postgres"},
}


def test_mendline_services_wait_for_healthy_dependencies(
    services: dict[str, Any], mendline_services: dict[str, dict[str, Any]]
) -> None:
    for name, service in mendline_services.items():
        depends_on = service.get("depends_on")
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        stage = _command(service)[1]
        assert stage in _NEEDS, f"{name}: what does `mendline {stage}` need?"
        for needed in _NEEDS[stage]:
            assert depends_on[needed]["condition"] == "service_healthy", (name, needed)
        for dependency, spec in depends_on.items():
            if "healthcheck" in services[dependency]:
                assert spec["condition"] == "service_healthy", (name, dependency)


def test_the_pipeline_stages_are_services(mendline_services: dict[str, dict[str, Any]]) -> None:
    stages = {_command(service)[1] for service in mendline_services.values()}
    assert {"topics", "relay", "consume", "analyze", "alert", "monitor"} <= stages


def test_third_party_images_are_pinned(services: dict[str, Any]) -> None:
    kafka_image = services["kafka"]["image"]
    assert re.fullmatch(r"apache/kafka:(3\.9|4\.\d+)\.\d+", kafka_image), kafka_image
    postgres_image = services["postgres"]["image"]
    assert re.fullmatch(r"postgres:16\.\d+(-[a-z0-9.]+)?", postgres_image), postgres_image


def test_docker_build_context_leaves_out_secrets_and_environments() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv"} <= ignored


def _commented_block(heading: str, after: str | None = None) -> str:
    """The YAML left commented under ``heading`` (a ``# key:`` line), uncommented; the first
    such heading, or the first after the line ``after``."""
    lines = COMPOSE_FILE.read_text().splitlines()
    start = lines.index(heading, lines.index(after) if after is not None else 0)
    indent = heading.index("#")
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#") or line.index("#") != indent:
            break
        block.append(line[indent + 2 :])
    return "\n".join(block)


def test_producer_checks_are_off_by_default_and_the_keys_file_is_the_optional_mount(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    env = _environment(compose["x-mendline"])
    defaults = {k: _interpolate(v) for k, v in env.items()}
    assert defaults[f"{PREFIX}PRODUCER_AUTH"] == Settings.model_fields["producer_auth"].default
    # Turned on in the shell or `.env`, the settings still load: the file has a default path.
    with clean_env.context() as patch:
        for var, value in {**defaults, f"{PREFIX}PRODUCER_AUTH": "enforce"}.items():
            patch.setenv(var, value)
        settings = Settings()
    assert settings.producer_auth == "enforce"
    # That path is where the consume service's (commented, optional) mount puts the file,
    # read-only; no other service mounts it.
    mount = yaml.safe_load(_commented_block("    # volumes:"))["volumes"]
    assert mount == [f"./producers.toml:{settings.producer_keys_file}:ro"]
    for name, service in compose["services"].items():
        assert str(settings.producer_keys_file) not in str(service.get("volumes")), name


def test_the_checks_file_is_passed_through_and_its_folder_is_the_monitors_optional_mount(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    env = _environment(compose["x-mendline"])
    assert env[f"{PREFIX}CHECKS_FILE"] == ""  # passed through when set, never written here
    with clean_env.context() as patch:
        for var, value in env.items():
            if value:
                patch.setenv(var, _interpolate(value))
        assert Settings().checks_file is None  # unset: the monitor runs its own checks only
    # The path the comments tell to set is inside the monitor's (commented, optional) mount.
    text = COMPOSE_FILE.read_text()
    (path,) = set(re.findall(rf"{PREFIX}CHECKS_FILE=(\S+\.toml)", text))
    mounts = yaml.safe_load(_commented_block("    # volumes:", after="  monitor:"))["volumes"]
    assert len(mounts) == 1
    source, target, mode = mounts[0].split(":")
    # A folder, not the file: an editor's save (a new file renamed over the old one) is
    # never seen through a single-file bind mount, so a reload would never happen.
    assert Path(path).parent == Path(target) and not source.endswith(".toml")
    assert mode == "ro"
    with clean_env.context() as patch:
        patch.setenv(f"{PREFIX}CHECKS_FILE", path)
        assert Settings().checks_file == Path(path)
    # The monitor has no environment of its own (it would replace the shared one).
    assert compose["services"]["monitor"]["environment"] == compose["x-mendline"]["environment"]
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or ():
            assert not str(volume).split(":")[0].endswith("checks.toml"), name


def test_the_app_example_signs_with_its_own_key_passed_through(
    services: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    (name, app), *_ = yaml.safe_load(_commented_block("  # shop:")).items()
    assert name not in services  # an example, not a service of the stack
    env = _environment(app)
    signing = _INTERPOLATION.fullmatch(env[f"{PREFIX}SIGNING_KEY"])
    assert signing is not None and (signing["op"], signing["arg"]) == (":-", "")
    assert signing["name"] not in _environment(services["consume"])  # the app's alone
    with clean_env.context() as patch:
        for var, value in env.items():
            patch.setenv(var, _interpolate(value))
        settings = Settings()  # unset key: the app sends unsigned
    assert settings.signing_key is None and settings.service == name
    assert settings.kafka_bootstrap.split(":")[0] in services


# The commands that run until stopped, so serve /readyz when MENDLINE_METRICS_PORT is set.
_WORKERS = {"consume", "analyze", "alert", "run", "monitor", "relay"}


def test_the_workers_serve_the_endpoints_to_the_network_and_are_healthy_by_readyz(
    compose: dict[str, Any],
    mendline_services: dict[str, dict[str, Any]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    env = {k: _interpolate(v) for k, v in _environment(compose["x-mendline"]).items()}
    with clean_env.context() as patch:
        for var, value in env.items():
            patch.setenv(var, value)
        settings = Settings()
    assert settings.metrics_port is not None  # served, but published nowhere
    assert settings.metrics_host == "0.0.0.0"  # else nothing outside the container reaches it
    workers = {n: s for n, s in mendline_services.items() if _command(s)[1] in _WORKERS}
    assert {"consume", "analyze", "alert"} <= workers.keys()
    readyz = compose["x-readyz"]
    for name, service in mendline_services.items():
        if name in workers:
            assert service["healthcheck"] == readyz, name
        else:  # a job that runs once serves nothing
            assert "healthcheck" not in service, name
    assert readyz["test"][:3] == ["CMD", "python", "-c"]
    # The image runs Python (the python -c above), and no curl or wget.
    stages = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("FROM")]
    assert stages[-1].split()[1].startswith("python:3.")


def _healthcheck(code: str, port: int) -> int:
    """The exit status of the compose healthcheck's command, as the container runs it."""
    env = {**os.environ, f"{PREFIX}METRICS_PORT": str(port)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    return run.returncode


async def test_the_healthcheck_command_passes_only_while_every_stage_is_ready(
    compose: dict[str, Any],
) -> None:
    from mendline.devstack import free_port
    from mendline.schemas.settings import load_settings
    from mendline.stages import Telemetry, serving_endpoints

    code = compose["x-readyz"]["test"][3]
    port = free_port()
    telemetry = Telemetry()
    consume, analyze = telemetry.stage("consume"), telemetry.stage("analyze")
    assert await asyncio.to_thread(_healthcheck, code, port) != 0  # nothing listens yet
    async with serving_endpoints(load_settings(metrics_port=port), telemetry):
        assert await asyncio.to_thread(_healthcheck, code, port) != 0  # starting: 503
        consume.ready()
        analyze.not_ready("connecting to PostgreSQL")
        assert await asyncio.to_thread(_healthcheck, code, port) != 0
        analyze.ready()
        assert await asyncio.to_thread(_healthcheck, code, port) == 0


def test_local_access_is_off_in_the_services_and_the_image(
    mendline_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in mendline_services.items():
        assert _environment(service)[f"{PREFIX}LOCAL_ROLE"] == "none", name
    # The image's own default, for `docker run` without the compose file: an ENV of the last
    # stage (the one that runs), its backslash-continued lines joined.
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final_stage = dockerfile.split("\nFROM ")[-1]
    settings = [
        item
        for line in final_stage.splitlines()
        if line.startswith("ENV ")
        for item in shlex.split(line.removeprefix("ENV "))
    ]
    assert f"{PREFIX}LOCAL_ROLE=none" in settings
