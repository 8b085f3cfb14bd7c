"""The facade: a broker and a database, each embedded or named by ``MENDLINE_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from mendline.devstack._kafka import KafkaBroker
from mendline.devstack._postgres import EmbeddedPostgres
from mendline.devstack._process import log_tail
from mendline.schemas.redaction import redact_url

__all__ = ["DevStack"]

#: Characters of a server's last log line said when it stopped.
_LAST_LINE = 200


class DevStack:
    """A broker and a database for tests and ``mendline demo``, each embedded or external.

    Each part is, by precedence: the argument given here, the ``MENDLINE_KAFKA_BOOTSTRAP`` /
    ``MENDLINE_DATABASE_URL`` variable in ``environ`` (``os.environ`` by default), or an
    embedded server started by :meth:`start`. Only what it started is stopped. Usable as a
    context manager (starts, then closes).
    """

    def __init__(
        self,
        *,
        kafka_bootstrap: str | None = None,
        database_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        kafka_bootstrap = kafka_bootstrap or environ.get("MENDLINE_KAFKA_BOOTSTRAP") or None
        database_url = database_url or environ.get("MENDLINE_DATABASE_URL") or None
        self.broker: KafkaBroker | None = KafkaBroker() if kafka_bootstrap is None else None
        """The broker this stack runs, or None when it uses an external one."""
        self.postgres: EmbeddedPostgres | None = None
        """The database server this stack runs, or None when it uses an external one."""
        try:
            self.postgres = EmbeddedPostgres() if database_url is None else None
        except BaseException:
            if self.broker is not None:
                self.broker.close()
            raise
        self._kafka_bootstrap = kafka_bootstrap
        self._database_url = database_url

    @property
    def kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers to use."""
        if self.broker is not None:
            return self.broker.bootstrap
        assert self._kafka_bootstrap is not None
        return self._kafka_bootstrap

    @property
    def database_url(self) -> str:
        """The PostgreSQL URL to use, with its password (show it with ``redact_url``)."""
        if self.postgres is not None:
            return self.postgres.url
        assert self._database_url is not None
        return self._database_url

    @property
    def environ(self) -> dict[str, str]:
        """The ``MENDLINE_*`` variables that point a mendline process at this stack (the
        database URL with its password: print :attr:`shown_environ` instead)."""
        return {
            "MENDLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "MENDLINE_DATABASE_URL": self.database_url,
        }

    @property
    def shown_environ(self) -> dict[str, str]:
        """:attr:`environ` fit to print: the embedded database's URL without its password,
        with ``PGPASSFILE`` naming the file that holds it (psql, asyncpg and mendline read
        it there); an external server's URL with its secrets redacted."""
        shown = {
            "MENDLINE_KAFKA_BOOTSTRAP": redact_url(self.kafka_bootstrap),
            "MENDLINE_DATABASE_URL": redact_url(self.database_url),
        }
        if self.postgres is not None:
            shown["MENDLINE_DATABASE_URL"] = self.postgres.url_without_password
            shown["PGPASSFILE"] = str(self.postgres.passfile)
        return shown

    def start(self, timeout: float = 30.0) -> None:
        """Start the embedded parts; on failure stop whatever did start."""
        try:
            if self.broker is not None:
                self.broker.start(timeout)
            if self.postgres is not None:
                self.postgres.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stopped(self) -> list[str]:
        """The embedded parts that were started and are not running any more (died, killed),
        each said as ``"the embedded <kind>"`` with the last line of its log (which goes with
        its work dir when the stack is closed); empty while all run."""
        said = []
        for server in (self.broker, self.postgres):
            if server is not None and server.pid is None:
                last = log_tail(server.log_path).splitlines()[-1:]
                logged = f" (its log's last line: {last[0][:_LAST_LINE]})" if last else ""
                said.append(f"the embedded {server.kind}{logged}")
        return said

    def stop(self) -> None:
        """Stop the embedded parts, keeping their data for a later :meth:`start`."""
        for server in (self.postgres, self.broker):
            if server is not None:
                server.stop()

    def close(self) -> None:
        """Stop the embedded parts and delete their files; idempotent."""
        for server in (self.postgres, self.broker):
            if server is not None:
                server.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
