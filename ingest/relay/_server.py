"""The relay's HTTP side: Sentry's ingest API (the envelope and the legacy store endpoint) on
aiohttp, answering as Sentry's Relay answers, producing what it accepts to Kafka before it
says 200.

A request is read in Relay's order: who sends it (the key, in force, of the URL's project,
from an allowed origin: by a header or the query before the body is read; by the envelope's
dsn only without either), its body (within a time, decompressed within the limits, a few at
once), the envelope, the key's rate limits; then its items: events converted, scrubbed and
checked against ErrorEvent v1, check-ins turned into heartbeats, client reports counted,
everything else counted and dropped. Only once Kafka acknowledged every record (acks=all)
is the answer 200; a Kafka that does not acknowledge within ``relay_produce_timeout`` is 503
with Retry-After, and nothing of the request counts as accepted (the SDK may send it again:
event ids and check-in ids make that harmless). A body that authenticates but is malformed
is answered 400 and kept in the DLQ topic with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from mendline.analyzers.grouping.scrubbing import SCRUBBED_HEADER, Scrubber
from mendline.analyzers.policy import ProducerKeys, signature_headers
from mendline.analyzers.policy.ratelimit import (
    TokenBucket,
    rate_limits_header,
    retry_after_header,
    take,
)
from mendline.analyzers.policy.relay import heartbeat_name, origin_allowed
from mendline.ingest._wire import finish_event
from mendline.ingest.app import encode_checkin
from mendline.ingest.relay._auth import SentryAuth, check_envelope_dsn, request_auth
from mendline.ingest.relay._convert import KeyScope, convert_event
from mendline.ingest.relay._encoding import decode_body, needs_decoding
from mendline.ingest.relay._envelope import (
    DEFAULT_LIMITS,
    Envelope,
    EnvelopeItem,
    EnvelopeLimits,
    decode_store_body,
    parse_envelope,
    parse_envelope_header,
    read_json,
)
from mendline.ingest.relay._items import (
    event_category,
    item_handling,
    item_label,
    parse_check_in,
    parse_client_report,
)
from mendline.ingest.relay._keys import KeyRing
from mendline.schemas.checks import CheckIn
from mendline.schemas.compiled_event import parse_event_compiled
from mendline.schemas.errors import InvalidEvent, RelayReason, RelayRefused
from mendline.schemas.relay import RelayKey
from mendline.schemas.settings import Settings

__all__ = ["DLQ_KEPT_BYTES", "Relay", "RelayStats", "Sender"]

log = logging.getLogger("mendline.relay")

#: Of a malformed body, what the DLQ keeps (its first bytes, the rest counted in a header).
DLQ_KEPT_BYTES = 256 * 1024
# Malformed bodies of one project kept a minute, at most (10 at once).
_KEPT_PER_MINUTE = 60.0
_PATH = r"/{prefix:(?:[^{}]*/)?}api/{project_id:\d{1,18}}/{endpoint:envelope|store}{slash:/?}"
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "x-sentry-error, x-sentry-rate-limits, retry-after",
}
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "x-sentry-auth, x-requested-with, x-forwarded-for, origin,"
    " referer, accept, content-type, authentication, authorization, content-encoding,"
    " transfer-encoding",
    "Access-Control-Max-Age": "3600",
}
# How long a Kafka outage is said to last: SDKs that keep events (offline caches) try again.
_OUTAGE_RETRY_AFTER = 30.0
_OVERLOAD_RETRY_AFTER = 5.0
# Seconds a client has to send its whole body.
_READ_TIMEOUT = 30.0
# Compressed bodies of at most _INLINE_RAW bytes that come to at most _INLINE_BYTES are
# decompressed on the loop (about a millisecond at most); the others off it, a few at once.
_INLINE_RAW = 64 * 1024
_INLINE_BYTES = 1024 * 1024
_REJECTED = "event submission rejected with_reason: "
_EVENT_CATEGORIES = ("error", "default")
# What a key's rate limit counts, each apart, and the categories a 429 names for it.
_LIMITED = (("convert", _EVENT_CATEGORIES), ("check_in", ("monitor",)))
_ENVELOPE_TYPE = "application/x-sentry-envelope"
# Check-in ids made from a Sentry check-in's id and status (its start and its end share the
# id): the same Sentry check-in sent twice is one check-in.
_CHECKIN_NAMESPACE = uuid.UUID("6f1f0a43-7b7c-4f8e-9a43-6a2f61d6c0de")
_STATUSES = {"in_progress": "start", "ok": "ok", "error": "fail"}
_NIL = "0" * 32


class Sender(Protocol):
    """What the relay produces with: aiokafka's producer (acks=all), or a test's."""

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send one record and wait for its acknowledgement."""
        ...


@dataclass
class RelayStats:
    """What the relay counts, for its metrics."""

    #: Requests answered 200.
    accepted: int = 0
    #: Events converted and produced.
    events: int = 0
    #: Requests refused, by RelayReason.
    refused: dict[str, int] = field(default_factory=dict)
    #: Items accepted, counted and not stored, by item type.
    dropped: dict[str, int] = field(default_factory=dict)
    #: Check-ins produced as heartbeats (acknowledged); and those that could not be (no
    #: such name form).
    check_ins: int = 0
    check_ins_invalid: int = 0
    #: What SDKs reported they discarded (client reports), by (reason, category).
    discarded: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Parts of client reports that could not be read.
    client_reports_malformed: int = 0
    #: Events produced whose time was moved by their SDK's clock drift (55 minutes or more).
    clock_corrected: int = 0
    #: Malformed bodies kept in the DLQ, and those that could not be kept (Kafka was out).
    kept: int = 0
    not_kept: int = 0


@dataclass
class _Request:
    """What one request was found to be, step by step."""

    endpoint: str
    project_id: int
    body: bytes = b""
    key: RelayKey | None = None
    records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    event_id: str | None = None
    #: Events of it whose time was moved by their SDK's clock drift.
    corrected: int = 0


class Relay:
    """The endpoint: ``app()`` is its aiohttp application."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyRing,
        sender: Sender,
        *,
        scrubber: Scrubber | None = None,
        producer_keys: ProducerKeys | None = None,
        limits: EnvelopeLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.sender = sender
        self.scrubber = scrubber or Scrubber()
        body = settings.relay_max_envelope_bytes
        self.limits = limits or replace(
            DEFAULT_LIMITS,
            envelope=body,
            attachment=min(DEFAULT_LIMITS.attachment, body),
            attachments=min(DEFAULT_LIMITS.attachments, body),
        )
        self.stats = RelayStats()
        self._producer_keys = producer_keys
        self._clock = clock
        # By project: a key and the one that replaced it (in its grace) share their limit.
        self._buckets: dict[tuple[int, str], TokenBucket] = {}
        self._keeping: dict[int, TokenBucket] = {}  # malformed bodies kept, by project
        self._reading = asyncio.Semaphore(settings.relay_concurrency)
        # The large bodies' decompression: threads of its own (not the loop's default
        # executor, whose threads resolve Kafka's addresses).
        self._decoders = ThreadPoolExecutor(settings.relay_concurrency, "mendline-relay-decode")
        rules = self.scrubber.rules_id
        self._scrubbed = [(SCRUBBED_HEADER, rules.encode())] if rules else []

    def close(self) -> None:
        """Let the decompression threads go (one still running finishes on its own)."""
        self._decoders.shutdown(wait=False, cancel_futures=True)

    def app(self) -> web.Application:
        """The aiohttp application: the two endpoints (under any path prefix), their CORS
        preflight, and nothing else."""
        # The raw body may be as large as the decompressed limit; decode_body bounds the rest.
        app = web.Application(client_max_size=self.limits.envelope)
        app.router.add_route("POST", _PATH, self._post)
        app.router.add_route("OPTIONS", _PATH, self._preflight)
        return app

    async def _preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers={**_CORS, **_PREFLIGHT})

    async def _post(self, request: web.Request) -> web.Response:
        # The route admits 1 to 18 digits only: int() cannot fail on it.
        project_id = int(request.match_info["project_id"])  # mendline: ignore[MR101]
        work = _Request(request.match_info["endpoint"], project_id)
        try:
            await self._read(request, work)
            work.body = b""  # not held while Kafka is waited for (400s come before)
            await self._produce(work)
        except RelayRefused as refused:
            self._count(self.stats.refused, refused.reason)
            if refused.status == 400 and work.key is not None and work.body:
                await self._keep(work, refused)
            return _refusal(refused)
        except Exception:  # our bug: said as Relay says an internal error, and logged
            log.exception("mendline: relay failed on a request")
            self._count(self.stats.refused, "internal_error")
            return _refusal(RelayRefused(500, "internal_error", "internal server error"))
        self.stats.accepted += 1
        answer: dict[str, str] = {"id": work.event_id} if work.event_id else {}
        return web.json_response(answer, headers=_CORS)

    async def _read(self, request: web.Request, work: _Request) -> None:
        """Who sends it, its body, its envelope and its items, into ``work``. Authentication
        by a header or the query comes before the body is decompressed: only a request with
        neither is read further, for its envelope's dsn."""
        try:
            auth: SentryAuth | None = request_auth(request.headers, request.query_string)
        except RelayRefused as refused:
            if refused.reason != "missing_auth" or work.endpoint != "envelope":
                raise
            auth = None
        if auth is not None:
            work.key = self._key(auth, work.project_id, request.headers.get("Origin"))
        try:  # a client that sends its body slowly, or not at all, holds only itself
            async with asyncio.timeout(_READ_TIMEOUT):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RelayRefused(
                413,
                "too_large",
                "length limit exceeded",
                (f"the body is over {self.limits.envelope} bytes",),
            ) from None
        except TimeoutError:
            raise RelayRefused(
                408, "read_timeout", "request timeout", (f"no whole body in {_READ_TIMEOUT} s",)
            ) from None
        await self._parse(request, work, raw, auth)

    async def _parse(
        self, request: web.Request, work: _Request, raw: bytes, auth: SentryAuth | None
    ) -> None:
        """The body decompressed, the envelope read, its items into ``work``."""
        body = await self._decompressed(raw, request.headers.get("Content-Encoding"))
        del raw
        envelope_header = None
        if work.endpoint == "envelope" or _ENVELOPE_TYPE in request.headers.get("Content-Type", ""):
            envelope_header = parse_envelope_header(body)
        if auth is None:
            auth = request_auth(request.headers, request.query_string, envelope_header or {})
            work.key = self._key(auth, work.project_id, request.headers.get("Origin"))
        work.body = body
        envelope = self._envelope(work, body, envelope_header)
        work.event_id = envelope.event_id
        assert work.key is not None
        self._limit(work.key, envelope)
        await self._items(work, envelope)

    async def _decompressed(self, raw: bytes, encoding: str | None) -> bytes:
        """The body decompressed within the envelope limit. On the loop when it is small
        (an SDK's envelope is a few KB): at most _INLINE_RAW bytes that come to at most
        _INLINE_BYTES, or not compressed at all. Else in a thread of the relay's own, at
        most MENDLINE_RELAY_CONCURRENCY at once, the others waiting up to the produce
        timeout, then 503: a large body, or a bomb, holds no other request up."""
        limit = self.limits.envelope
        if not needs_decoding(encoding):  # 415 here for an encoding it cannot undo
            return decode_body(raw, encoding, limit)
        if len(raw) <= _INLINE_RAW:
            try:
                return decode_body(raw, encoding, min(limit, _INLINE_BYTES))
            except RelayRefused as refused:
                if refused.reason != "too_large" or limit <= _INLINE_BYTES:
                    raise
        try:
            async with asyncio.timeout(self.settings.relay_produce_timeout):
                await self._reading.acquire()
        except TimeoutError:
            raise _overloaded() from None
        loop = asyncio.get_running_loop()
        try:
            decoding = loop.run_in_executor(self._decoders, decode_body, raw, encoding, limit)
        except RuntimeError:  # closed: the relay is stopping
            self._reading.release()
            raise _overloaded() from None
        # The slot is free again when the thread is done, not before: even when this request
        # is cancelled first (the relay stopping), its thread still runs.
        decoding.add_done_callback(self._decoded)
        return await asyncio.shield(decoding)

    def _decoded(self, decoding: asyncio.Future[bytes]) -> None:
        self._reading.release()
        if not decoding.cancelled():
            decoding.exception()  # retrieved: a request cancelled meanwhile never reads it

    def _key(self, auth: SentryAuth, project_id: int, origin: str | None) -> RelayKey:
        """The key in force the request names, of the URL's project, from an origin it
        allows; 403 as Relay answers an unknown or disabled key, or a foreign origin."""
        if not self.keys.loaded:
            raise RelayRefused(
                503,
                "keys_unavailable",
                "the service is overloaded",
                ("the relay could not read its keys yet",),
                retry_after=self.settings.relay_keys_refresh,
            )
        key = self.keys.find(auth.public_key)
        if key is None or key.project_id != project_id:
            reason: RelayReason = (
                "revoked_key" if key is None and self.keys.knows(auth.public_key) else "unknown_key"
            )
            raise RelayRefused(403, reason, _REJECTED + "ProjectId")
        if origin is not None and not origin_allowed(origin, key.allowed_origins):
            raise RelayRefused(403, "origin", _REJECTED + "Cors")
        return key

    def _envelope(self, work: _Request, body: bytes, header: Mapping[str, Any] | None) -> Envelope:
        """The request as an envelope: the store endpoint's event is one of one item."""
        assert work.key is not None
        if header is None:  # the store endpoint's event, perhaps base64 and zlib
            event = decode_store_body(body, self.limits.event)
            if not event:
                raise RelayRefused(400, "empty_body", "empty request body")
            return Envelope({}, (EnvelopeItem("event", {}, event),))
        envelope = parse_envelope(body, self.limits)
        check_envelope_dsn(envelope.headers, work.key.public_key, work.project_id)
        return envelope

    def _limit(self, key: RelayKey, envelope: Envelope) -> None:
        """The key's rate limit, on the envelope's events and, apart, on its check-ins
        (an error storm does not make heartbeats look missed): 429 with Retry-After and
        X-Sentry-Rate-Limits naming the category refused, which SDKs back off by."""
        per_minute = self.settings.relay_rate_limit if key.rate_limit is None else key.rate_limit
        if per_minute <= 0:
            return
        for handling, categories in _LIMITED:
            n = sum(1 for item in envelope.items if item_handling(item.type) == handling)
            if not n:
                continue
            bucket = (key.project_id, handling)
            state, allowed, wait = take(
                self._buckets.get(bucket), self._clock(), per_minute, max(per_minute, n), n
            )
            self._buckets[bucket] = state
            if not allowed:
                raise RelayRefused(
                    429,
                    "rate_limited",
                    "Sentry dropped data due to a quota or internal rate limit being reached."
                    " This will not affect your application.",
                    categories,
                    retry_after=wait,
                )

    async def _items(self, work: _Request, envelope: Envelope) -> None:
        """Each item as its type says: the records to produce are collected in ``work``."""
        assert work.key is not None
        for item in envelope.items:
            handling = item_handling(item.type)
            if handling == "convert":
                self._event(work, envelope, item)
            elif handling == "check_in":
                self._check_in(work, item)
            elif handling == "client_report":
                report = parse_client_report(item.payload)
                for line in report.discarded:
                    self._count(self.stats.discarded, (line.reason, line.category), line.quantity)
                self.stats.client_reports_malformed += report.malformed
            else:  # attachments and everything not stored: counted
                self._count(self.stats.dropped, item_label(item.type))

    def _event(self, work: _Request, envelope: Envelope, item: EnvelopeItem) -> None:
        assert work.key is not None
        try:
            payload = read_json(item.payload)
        except (ValueError, RecursionError) as exc:
            raise RelayRefused(400, "bad_event", "invalid event", (f"not JSON: {exc}",)) from None
        if isinstance(payload, dict) and event_category(payload) not in _EVENT_CATEGORIES:
            self._count(self.stats.dropped, "transaction")  # a transaction sent as an event
            return
        doc = convert_event(
            payload,
            KeyScope(work.key.service, work.key.environment),
            event_id=envelope.event_id,
            received=time.time(),
            sent_at=envelope.headers.get("sent_at"),
            keep_pii=self.settings.relay_keep_pii,
        )
        data, clean = finish_event(doc, self.scrubber)
        # Said in the context (an extra of that name is "extra.clock_drift"), and kept there.
        work.corrected += "clock_drift" in doc["context"]
        try:
            parse_event_compiled(data)  # the consumer's own check of the contract
        except InvalidEvent as exc:
            raise RelayRefused(400, "bad_event", "invalid event", (exc.detail,)) from None
        headers = list(self._scrubbed) if clean else []
        if self._producer_keys is not None:
            signing = self._producer_keys.keys.get(work.key.service)
            if signing:
                headers += signature_headers(signing[0], work.key.service, data)
        work.event_id = doc["event_id"]
        work.records.append((self.settings.errors_topic, doc["event_id"].encode(), data, headers))

    def _check_in(self, work: _Request, item: EnvelopeItem) -> None:
        """A Sentry check-in as a heartbeat's: the monitor's slug is the check's name, its
        in_progress, ok and error are start, ok and fail."""
        assert work.key is not None
        try:
            sentry = parse_check_in(item.payload)
        except InvalidEvent:
            self.stats.check_ins_invalid += 1
            return
        status = _STATUSES.get(sentry.status)
        # The key's service names the check: a key speaks for its service's heartbeats only
        # (and never for mendline's own, such as its clock).
        check = heartbeat_name(work.key.service, sentry.monitor_slug)
        if status is None or check is None:
            self.stats.check_ins_invalid += 1
            return
        environment = sentry.environment or work.key.environment
        try:
            checkin = CheckIn(
                schema_version=1,
                # The same Sentry check-in again (a retry) is the same check-in; the start
                # and the end of a run (one check_in_id) are two.
                checkin_id=uuid.uuid5(
                    _CHECKIN_NAMESPACE,
                    f"{work.key.project_id}:{check}:{sentry.check_in_id}:{sentry.status}",
                )
                if sentry.check_in_id != _NIL
                else uuid.uuid4(),  # "the latest run": no id to tell a retry by
                check=check,
                status=status,  # type: ignore[arg-type]
                timestamp=datetime.now(UTC),
                run_id=sentry.check_in_id if sentry.check_in_id != _NIL else None,
                environment=environment if "*" not in environment else work.key.environment,
                duration=sentry.duration,
                message=None,
                host=None,
            )
        except ValidationError:  # a negative duration, say
            self.stats.check_ins_invalid += 1
            return
        key, value = encode_checkin(checkin)
        work.records.append((self.settings.checkins_topic, key, value, []))

    async def _produce(self, work: _Request) -> None:
        """Every record of the request, acknowledged, within the produce timeout; 503 with
        Retry-After otherwise (nothing of it is said to be accepted)."""
        if not work.records:
            return
        try:
            sends = [
                self.sender.send_and_wait(topic, value=value, key=key, headers=headers)
                for topic, key, value, headers in work.records
            ]
            async with asyncio.timeout(self.settings.relay_produce_timeout):
                # One record (most requests) awaited as it is: gather would make it a task.
                await (sends[0] if len(sends) == 1 else asyncio.gather(*sends))
        except Exception as exc:  # aiokafka's errors, a timeout: Kafka did not take it
            log.warning("mendline: relay could not produce to Kafka (%s); answering 503", exc)
            raise RelayRefused(
                503,
                "kafka_unavailable",
                "failed to queue envelope",
                (f"{type(exc).__name__}: Kafka did not acknowledge the records",),
                retry_after=_OUTAGE_RETRY_AFTER,
            ) from None
        topics = [topic for topic, *_ in work.records]
        self.stats.events += topics.count(self.settings.errors_topic)
        self.stats.check_ins += topics.count(self.settings.checkins_topic)
        self.stats.clock_corrected += work.corrected

    async def _keep(self, work: _Request, refused: RelayRefused) -> None:
        """Keep a malformed body of an authenticated request in the DLQ topic, with why; a
        Kafka that does not take it is counted (the SDK was told 400 all the same)."""
        assert work.key is not None
        project = work.key.project_id
        state, allowed, _ = take(self._keeping.get(project), self._clock(), _KEPT_PER_MINUTE, 10)
        self._keeping[project] = state
        if not allowed:  # a client sending junk fills no topic: counted
            self.stats.not_kept += 1
            return
        # Scrubbed as text (a malformed body may still hold secrets), and within Kafka's
        # default largest message.
        text = await asyncio.to_thread(
            self.scrubber.scrub_text, work.body[:DLQ_KEPT_BYTES].decode("utf-8", "replace")
        )
        kept = text.encode("utf-8")[:DLQ_KEPT_BYTES]
        headers = [
            ("mendline.errors.reason", b"relay_rejected"),
            ("mendline.errors.message", _why(refused).encode()[:1000]),
            ("mendline.errors.topic", b"relay"),
            ("mendline.errors.timestamp", datetime.now(UTC).isoformat().encode()),
            ("mendline.errors.relay_reason", refused.reason.encode()),
            ("mendline.errors.service", work.key.service.encode()),
            ("mendline.errors.relay_key", str(work.key.id).encode()),
            ("mendline.errors.bytes", str(len(work.body)).encode()),
        ]
        try:
            async with asyncio.timeout(self.settings.relay_produce_timeout):
                await self.sender.send_and_wait(
                    self.settings.dlq_topic, value=kept, headers=headers
                )
        except Exception as exc:
            self.stats.not_kept += 1
            log.warning("mendline: relay could not keep a rejected body in the DLQ (%s)", exc)
        else:
            self.stats.kept += 1

    @staticmethod
    def _count(counts: dict[Any, int], key: object, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n


def _refusal(refused: RelayRefused) -> web.Response:
    """A refusal as Relay answers it: ``{"detail", "causes"}``, and for 429 and 503 the
    headers that tell an SDK how long to wait."""
    body: dict[str, Any] = {"detail": refused.detail}
    if refused.causes and refused.status != 429:  # a 429's causes are its categories
        body["causes"] = list(refused.causes)
    headers = dict(_CORS)
    headers["X-Sentry-Error"] = refused.detail[:200]
    if refused.retry_after is not None:
        headers["Retry-After"] = retry_after_header(refused.retry_after)
    if refused.status == 429 and refused.retry_after is not None:
        headers["X-Sentry-Rate-Limits"] = rate_limits_header(
            refused.retry_after, refused.causes, "key", "key_quota"
        )
    return web.json_response(body, status=refused.status, headers=headers)


def _overloaded() -> RelayRefused:
    return RelayRefused(
        503, "overloaded", "the service is overloaded", retry_after=_OVERLOAD_RETRY_AFTER
    )


def _why(refused: RelayRefused) -> str:
    return "; ".join((f"{refused.status} {refused.detail}", *refused.causes))
