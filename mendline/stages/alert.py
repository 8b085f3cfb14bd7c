"""The alert stage: route triggers into deliveries, send them through the channels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mendline.analyzers.backoff import Backoff
from mendline.analyzers.policy import silence_for, takes_digests
from mendline.schemas.alert import ENDS_INCIDENT, Channel, ChannelError, Notification
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings
from mendline.sinks.channels import make_channel
from mendline.sinks.postgres import (
    FINDINGS_CHANNEL,
    TRIGGERS_CHANNEL,
    AlertStore,
    Delivered,
    DueDelivery,
    GiveUp,
    Listener,
    Mark,
    Retry,
    Suppressed,
    connect_alerts,
)
from mendline.sinks.routing import RoutingTable, check_secrets, disabled_receivers, load_routes
from mendline.stages._group_commit import GroupCommit
from mendline.stages._telemetry import StageContext, StatsMetric
from mendline.stages._waiting import (
    connect_patiently,
    keep_renewing,
    outage_backoff,
    outage_over,
    pause_for_outage,
    through_outages,
    wait_any,
)

__all__ = ["METRICS", "AlertStats", "AlertWorker", "disabled", "routing_table", "run"]

log = logging.getLogger("mendline.alert")

# Issues in one digest: what a Slack message shows in full (the renderer keeps within 50
# blocks); more go in the next message.
_DIGEST_MAX = 20
# Triggers routed in one transaction; a pass that routed as many looks again at once.
_ROUTE_BATCH = 200
# A stopping worker's receivers go to another this long after its last message: the Slack
# channel's pacing interval, so the handover does not send two messages closer than that.
_HANDOVER = 1.0


@dataclass
class AlertStats:
    """What a worker did: deliveries routed, sent (in how many messages), retried, failed."""

    routed: int = 0
    suppressed: int = 0
    unrouted: int = 0
    sent: int = 0
    messages: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    by_receiver: dict[str, int] = field(default_factory=dict)


#: What the alert stage counts, read from its AlertStats at each scrape.
METRICS: tuple[StatsMetric[AlertStats], ...] = (
    StatsMetric(
        "mendline_deliveries_total",
        "Alert deliveries tried, by status: delivered, retried (failed, to be tried again),"
        " failed (refused for good) or dead (retried past alert_max_age).",
        lambda s: {
            ("delivered",): s.sent,
            ("retried",): s.retried,
            ("failed",): s.failed,
            ("dead",): s.dead,
        },
        ("status",),
    ),
    StatsMetric(
        "mendline_alert_messages_total",
        "Messages sent to receivers (a digest carries several deliveries).",
        lambda s: {(): s.messages},
    ),
    StatsMetric(
        "mendline_alerts_routed_total",
        "Deliveries made by routing triggers (and findings that followed them).",
        lambda s: {(): s.routed},
    ),
    StatsMetric(
        "mendline_alerts_suppressed_total",
        "Alerts held back by routing (grouped, repeated or silenced).",
        lambda s: {(): s.suppressed},
    ),
    StatsMetric(
        "mendline_alerts_unrouted_total",
        "Triggers no route matched.",
        lambda s: {(): s.unrouted},
    ),
)


def routing_table(settings: Settings) -> RoutingTable:
    """The routing table; ConfigError when it is invalid, or, in the production profile,
    when a secret it names is missing (in development, that receiver is disabled)."""
    table = load_routes(settings.routes_file)
    problems = check_secrets(table, os.environ)
    if problems and settings.profile == "production":
        raise ConfigError(
            "; ".join(problems),
            hint="set these variables, or remove the receivers from the routes file"
            " (MENDLINE_PROFILE=production refuses to start without them)",
        )
    return table


def disabled(settings: Settings, table: RoutingTable) -> dict[str, str]:
    """The receivers disabled for an unset secret, each with why (none in production: it
    does not start then)."""
    if settings.profile == "production":
        return {}
    return disabled_receivers(table, os.environ)


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """The alert stage (one worker) until ``stop``; what is being sent finishes. Ready while
    it holds its database pool and is not waiting out an outage."""
    table = routing_table(settings)
    off = disabled(settings, table)
    if off:
        log.warning(
            "mendline: %s; their alerts are recorded as suppressed (MENDLINE_PROFILE=%s)",
            "; ".join(off.values()),
            settings.profile,
        )
    channels: dict[str, Channel] = {
        name: make_channel(name, receiver, os.environ)
        for name, receiver in table.receivers.items()
        if name not in off
    }
    context.not_ready("connecting to PostgreSQL")
    store = await connect_patiently(lambda: connect_alerts(settings), stop)
    if store is None:
        return
    worker = AlertWorker(settings, store, table, channels, disabled=off)
    context.watch(worker.stats, METRICS)
    context.ready_when(worker.waiting_for)
    log.info("mendline: alert worker %s started (%s)", worker.owner, table.source)
    try:
        await worker.run(stop)
    finally:
        for channel in channels.values():
            await channel.aclose()
        await store.pool.close()
    s = worker.stats
    log.info(
        "mendline: %d alerts sent in %d messages; %d retried, %d failed, %d dead, %d suppressed",
        s.sent,
        s.messages,
        s.retried,
        s.failed,
        s.dead,
        s.suppressed,
    )


class AlertWorker:
    """One ``mendline alert`` worker; any number can share the outbox.

    Each pass routes the triggers not routed yet (and those whose finding came after), then
    claims the deliveries that are due, and sends them, one task per receiver, so that a
    slow or failing channel holds back only its own deliveries. Many alerts due at once for
    one Slack or email receiver go as one digest. A receiver's messages go out
    ``alert_concurrency`` at a time, those about one issue one after another, in order
    (claim_due claims the next one once this one is marked); what became of them is
    written in batches.

    Routing is shared; sending is not: each receiver has one worker at a time (a lease in
    PostgreSQL, taken on each pass and renewed while it sends), so that its pacing and its
    digests are one worker's. A stopped worker's receivers are handed over at once, a
    killed one's when their lease (``alert_lease``) runs out.
    """

    def __init__(
        self,
        settings: Settings,
        store: AlertStore,
        table: RoutingTable,
        channels: Mapping[str, Channel],
        *,
        owner: str | None = None,
        disabled: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.table = table
        self.channels = channels
        self.disabled = dict(disabled or {})
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = AlertStats()
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._claimed: dict[int, DueDelivery] = {}  # claimed and not marked yet
        self._owned: set[str] = set()  # the receivers this worker sends to
        self._listener = Listener(
            settings.database_url.get_secret_value(), (TRIGGERS_CHANNEL, FINDINGS_CHANNEL)
        )
        self._wake = self._listener.wake
        # A failed delivery is tried again after up to 2 s, doubling with its attempts, up to
        # 10 minutes; full jitter, so that retries to one receiver spread out.
        self._retry_backoff = Backoff(2.0, 600.0, jitter=1.0)
        self._outage = outage_backoff(settings.outage_retry_max)

    def waiting_for(self) -> str | None:
        """None while the worker reaches its database; else what it waits out (a claim or a
        pass failed for an outage, and none succeeded since)."""
        return "waiting out an outage of PostgreSQL" if self._outage.attempts else None

    async def run(self, stop: asyncio.Event) -> None:
        """Route and send until ``stop``; what is being sent is finished first."""
        backoff = self._outage
        renewer = asyncio.create_task(
            keep_renewing(
                self.settings.alert_lease,
                lambda: self._claimed,
                lambda ids: self.store.renew(ids, self.settings.alert_lease, self.owner),
                "deliveries",
            )
        )
        try:
            while not stop.is_set():
                await self._listener.keep()
                self._wake.clear()
                try:
                    await self.pass_once()
                    outage_over(backoff, log)
                except Exception as exc:
                    await pause_for_outage(exc, backoff, stop, log)
                    continue
                await wait_any(stop, self._wake, self.settings.alert_poll_interval)
        finally:
            if self._sending:
                _, late = await asyncio.wait(list(self._sending.values()), timeout=30)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            if self._claimed:  # not sent: give them back at once rather than after the lease
                with contextlib.suppress(Exception):
                    await self.store.release(list(self._claimed.values()), self.owner)
            with contextlib.suppress(Exception):  # else handed over when the lease runs out
                await self.store.let_go_receivers(self.owner, _HANDOVER)
            renewer.cancel()
            await self._listener.close()

    async def pass_once(self) -> None:
        """Route what is new, and start sending what is due."""
        routed = await self.store.route_pending(self.table, _ROUTE_BATCH)
        followed = await self.store.follow_findings(self.table, _ROUTE_BATCH)
        if max(routed.triggers, followed.triggers) >= _ROUTE_BATCH:  # more to route: at once
            self._wake.set()
        self.stats.routed += routed.deliveries + followed.deliveries + followed.updates
        self.stats.suppressed += routed.suppressed + followed.suppressed
        self.stats.unrouted += routed.unrouted
        receivers = sorted({*self.channels, *self.disabled})
        lease = self.settings.alert_lease
        enabled = sorted(set(self.channels) - set(self.disabled))
        owned = await self.store.hold_receivers(enabled, self.owner, lease)
        # A receiver disabled here (its secret unset on this host) may be enabled on another
        # worker's: this one takes it, to record its deliveries as suppressed, only when they
        # have waited a lease's time with no worker sending them.
        off = sorted(self.disabled)
        if off:
            owned |= await self.store.hold_receivers(off, self.owner, lease, overdue=lease)
        if owned - self._owned:  # one more taken: there may be others waiting, look again now
            self._wake.set()
        self._owned = owned
        due = await self.store.claim_due(
            self.owner,
            self.settings.alert_lease,
            exclude=list(self._sending),
            owned=sorted(owned),
            known=receivers,
        )
        by_receiver: dict[str, list[DueDelivery]] = defaultdict(list)
        for item in due:
            by_receiver[item.receiver].append(item)
            self._claimed[item.id] = item
        for receiver, items in by_receiver.items():
            task = asyncio.create_task(self._send_all(receiver, items))
            self._sending[receiver] = task

            def done(task: asyncio.Task[None], receiver: str = receiver) -> None:
                self._sending.pop(receiver, None)
                self._wake.set()
                if not task.cancelled() and task.exception() is not None:
                    log.error("mendline: sending to %s stopped: %r", receiver, task.exception())

            task.add_done_callback(done)

    async def _send_all(self, receiver: str, items: list[DueDelivery]) -> None:
        # What becomes of the deliveries is recorded in batches, all of it before the
        # receiver is free for its next claim.
        marks: GroupCommit[Mark] = GroupCommit(self._record)
        try:
            try:
                await self._send_batches(receiver, items, marks)
            except asyncio.CancelledError:
                marks.abandon()  # stopping: see below
                raise
            finally:
                await marks.flush()
        finally:
            # Whatever stopped it (a bug, a lost database, a stop): what was not sent goes
            # back to the queue now; what was sent and not recorded comes back when its
            # lease runs out (sent again: at least once). Neither is renewed any more.
            left = [i for i in items if i.id in self._claimed]
            self._done(left)
            sent = {item.id for mark in marks.unwritten for item in mark.items}
            unsent = [i for i in left if i.id not in sent]
            if unsent:
                with contextlib.suppress(Exception):
                    await self.store.release(unsent, self.owner)

    async def _record(self, marks: list[Mark]) -> None:
        await through_outages(
            self.store.mark,
            marks,
            self.owner,
            what="record deliveries",
            longest=self.settings.outage_retry_max,
        )
        self._done([item for mark in marks for item in mark.items])

    async def _send_batches(
        self, receiver: str, items: list[DueDelivery], marks: GroupCommit[Mark]
    ) -> None:
        if receiver in self.disabled:  # recorded, never silently lost
            for item in items:
                self._suppress(marks, item, self.disabled[receiver])
            return
        items = await self._unsilenced(items, marks)
        channel = self.channels.get(receiver)
        if channel is None:  # a routing file changed under older deliveries
            for item in items:
                marks.add(GiveUp(item, "no such receiver now", "failed"))
            return
        # A claim holds one delivery at most per issue and receiver (the next one is
        # claimed once this one is marked): its messages go out side by side, in any order.
        # A channel may take fewer at once (Slack: one; its pacing is the channel's own).
        batches = deque(self._batches(receiver, items))

        async def lane() -> None:
            while batches:
                await self._send(receiver, channel, batches.popleft(), marks)

        at_once = getattr(channel, "sends_at_once", None) or self.settings.alert_concurrency
        lanes = min(at_once, len(batches))
        ended = await asyncio.gather(*(lane() for _ in range(lanes)), return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _send(
        self, receiver: str, channel: Channel, batch: list[DueDelivery], marks: GroupCommit[Mark]
    ) -> None:
        """Send one message (one delivery, or a digest) and mark what became of it."""
        notification = Notification(
            receiver=receiver,
            alerts=[i.alert for i in batch],
            mode=batch[0].mode if len(batch) == 1 else "new",  # type: ignore[arg-type]
            previous=batch[0].previous if len(batch) == 1 else None,
        )
        try:
            reference = await channel.send(notification)
        except ChannelError as exc:
            if not exc.retriable and len(batch) > 1:
                # One alert may be what the channel refuses: try them one by one.
                for item in batch:
                    await self._send(receiver, channel, [item], marks)
                return
            self._failed(batch, exc, marks)
            return
        except Exception as exc:  # a bug in a channel must not lose the delivery
            log.exception("mendline: receiver %s failed unexpectedly", receiver)
            self._failed(batch, ChannelError(str(exc), code="unexpected", retriable=True), marks)
            return
        marks.add(Delivered(tuple(batch), reference))
        self.stats.sent += len(batch)
        self.stats.messages += 1
        self.stats.by_receiver[receiver] = self.stats.by_receiver.get(receiver, 0) + 1

    async def _unsilenced(
        self, items: list[DueDelivery], marks: GroupCommit[Mark]
    ) -> list[DueDelivery]:
        """The items no silence holds back; the others recorded as suppressed. Decided now,
        just before sending, so that a silence made after routing still holds."""
        if not items:
            return items
        silences = await through_outages(
            self.store.active_silences,
            what="read silences",
            longest=self.settings.outage_retry_max,
        )
        now = datetime.now(UTC)
        kept = []
        for item in items:
            verdict = silence_for(silences, item.alert.labels, item.alert.kind, now)
            if verdict.silence is None:
                kept.append(item)
            else:
                self._suppress(marks, item, verdict.reason, verdict.silence.id)
        return kept

    def _suppress(
        self, marks: GroupCommit[Mark], item: DueDelivery, reason: str, silence: int | None = None
    ) -> None:
        marks.add(Suppressed(item, reason, silence))
        self.stats.suppressed += 1

    def _batches(self, receiver: str, items: list[DueDelivery]) -> list[list[DueDelivery]]:
        digests = takes_digests(self.table.receivers.get(receiver))
        together = [i for i in items if i.mode == "new" and i.alert.kind not in ENDS_INCIDENT]
        if not digests or len(together) < 2:
            return [[i] for i in items]
        rest = [[i] for i in items if i not in together]
        # A digest lists every issue it is marked delivered for: no more than one shows.
        size = _DIGEST_MAX
        return [*(together[k : k + size] for k in range(0, len(together), size)), *rest]

    def _done(self, batch: list[DueDelivery]) -> None:
        for item in batch:
            self._claimed.pop(item.id, None)

    def _failed(
        self, batch: list[DueDelivery], exc: ChannelError, marks: GroupCommit[Mark]
    ) -> None:
        error = f"{exc.code}: {exc}"
        for item in batch:
            age = datetime.now(UTC) - item.created_at
            if not exc.retriable:
                marks.add(GiveUp(item, error, "failed"))
                self.stats.failed += 1
            elif age.total_seconds() > self.settings.alert_max_age:
                marks.add(GiveUp(item, error, "dead"))
                self.stats.dead += 1
            else:
                backoff = self._retry_backoff.delay(max(item.attempts - 1, 0))
                # A peer's Retry-After is taken up to the age a delivery may reach: 1e300
                # would be no interval PostgreSQL can hold.
                after = min(max(exc.retry_after or 0.0, backoff), self.settings.alert_max_age)
                marks.add(Retry(item, error, after))
                self.stats.retried += 1
                log.warning(
                    "mendline: delivery %d to %s failed (%s); again in %.1f s",
                    item.id,
                    item.receiver,
                    exc,
                    after,
                )
