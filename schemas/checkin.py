"""CheckIn v1 on the wire: strict parsing of a check-in record, and its JSON Schema file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from mendline.schemas.checks import CHECK_NAME, CHECKIN_SCHEMA_VERSION, CheckIn
from mendline.schemas.errors import InvalidEvent
from mendline.schemas.event import _peek_schema_version, _reject_duplicate_keys
from mendline.schemas.prepared import BatchResult

__all__ = [
    "CHECKIN_JSON_SCHEMA_PATH",
    "MAX_CHECKIN_BYTES",
    "CheckinSink",
    "PreparedCheckIn",
    "checkin_json_schema",
    "checkin_json_schema_text",
    "parse_checkin",
]

#: The JSON Schema of CheckIn v1, shipped in the package (``mendline schema --checkin``).
CHECKIN_JSON_SCHEMA_PATH = Path(__file__).with_name("checkin.v1.json")
#: A check-in larger than this is refused (``too_large``): its fields fit in a few KiB.
MAX_CHECKIN_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PreparedCheckIn:
    """A valid check-in as the consumer hands it to the store: ``timestamp`` is the one
    stored (the sender's, or the Kafka record's when the sender's was too far ahead:
    ``clamped``), with where the record was read and its bytes (for the DLQ)."""

    checkin: CheckIn
    timestamp: datetime
    clamped: bool
    payload: bytes
    partition: int | None = None
    offset: int | None = None

    @property
    def event_id(self) -> str:
        """The checkin_id, as text: the record's identity in DLQ messages."""
        return str(self.checkin.checkin_id)


class CheckinSink(Protocol):
    """Where the check-ins consumer writes its batches: one transaction each, idempotent by
    checkin_id (``duplicates`` counts those stored before)."""

    async def write(self, batch: list[PreparedCheckIn]) -> BatchResult:
        """Store the batch atomically; failures come out as ``DatabaseError``."""
        ...


def parse_checkin(raw: bytes | str | None) -> CheckIn:
    """Parse and validate one check-in record, raising InvalidEvent with a reason code.

    Strict as the events' parser: a duplicate key, ``true`` or ``"1"`` as the schema version,
    an unknown field or status are ``invalid``; another version is
    ``unknown_schema_version``; what is not a JSON object is ``not_json``.
    """
    if raw is None:
        raise InvalidEvent("not_json", "the record has no value")
    if len(raw) > MAX_CHECKIN_BYTES:
        raise InvalidEvent("too_large", f"check-in is {len(raw)} bytes, over {MAX_CHECKIN_BYTES}")
    try:
        checkin = CheckIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(raw, exc) from None
    _reject_duplicate_keys(raw)
    return checkin


def _invalid(raw: bytes | str, exc: ValidationError) -> InvalidEvent:
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return InvalidEvent("not_json", errors[0]["msg"])
    if errors and errors[0]["type"] in {"model_type", "dict_type"} and not errors[0]["loc"]:
        return InvalidEvent("not_json", "the message is JSON but not an object")
    if any(err["loc"] == ("schema_version",) for err in errors):
        version = _peek_schema_version(raw)
        if type(version) is int and version != CHECKIN_SCHEMA_VERSION:
            return InvalidEvent(
                "unknown_schema_version", f"schema_version {version!r} is not supported"
            )
    detail = "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(check-in)'}: {err['msg']}"
        for err in errors[:5]
    )
    return InvalidEvent("invalid", detail)


def checkin_json_schema() -> dict[str, Any]:
    """The JSON Schema of CheckIn v1, as exported to ``checkin.v1.json``."""
    schema = CheckIn.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mendline.dev/schemas/checkin.v1.json"
    schema["title"] = "CheckIn v1"
    # The model's validator refuses everything but the integer 1 (not true, not 1.0).
    schema["properties"]["schema_version"]["type"] = "integer"
    schema["properties"]["check"]["pattern"] = f"^{CHECK_NAME.pattern}$"
    return schema


def checkin_json_schema_text() -> str:
    """The exported file's exact text (``mendline schema --checkin --write`` updates it)."""
    return json.dumps(checkin_json_schema(), indent=2, sort_keys=True) + "\n"
