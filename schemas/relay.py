"""The relay's contracts: what a relay key stands for (the keys are stored by sinks.postgres,
read by the relay in ingest.relay)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["RelayKey"]


@dataclass(frozen=True)
class RelayKey:
    """A relay key as stored."""

    id: int
    public_key: str
    #: The DSN's project id: the first key's id of a line of rotations.
    project_id: int
    service: str
    environment: str
    label: str
    allowed_origins: tuple[str, ...]
    #: Events a minute; None: the relay's setting; 0: no limit.
    rate_limit: int | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    rotated_to: int | None

    def in_force(self, now: datetime) -> bool:
        """Whether the relay takes events sent with it at ``now``."""
        return self.revoked_at is None or self.revoked_at > now

    def as_json(self) -> dict[str, Any]:
        """The key as a JSON object (for ``--json`` and the audit trail)."""
        return {**asdict(self), "allowed_origins": list(self.allowed_origins)}
