"""The remediation worker of the heal stage: runbook remediations asked for, run, verified and
escalated for the checks that are down and the issues that match the fix policy."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from mendline.analyzers.health import SELF_DSN_ENV
from mendline.analyzers.policy import (
    RemediationSubject,
    alert_labels,
    alert_severity,
    load_policy,
    remediations_for,
)
from mendline.ingest.probes import run_check
from mendline.schemas.checks import Check, HeartbeatCheck
from mendline.schemas.errors import IllegalTransition
from mendline.schemas.fixpolicy import FixPolicy, Remediation, RemediationWhen
from mendline.schemas.people import SYSTEM_ACTOR
from mendline.schemas.printable import printable
from mendline.schemas.remediation import RemediationRun
from mendline.schemas.settings import Settings
from mendline.sinks.postgres import (
    FINDINGS_CHANNEL,
    REMEDIATIONS_CHANNEL,
    TRIGGERS_CHANNEL,
    Asked,
    Listener,
    RemediationStore,
    Trouble,
)
from mendline.sinks.remediation import KILL_GRACE, OUTPUT_GRACE, run_remediation
from mendline.stages._waiting import (
    outage_backoff,
    outage_over,
    pause_for_outage,
    through_outages,
    wait_any,
)
from mendline.stages.monitor import checks_of

__all__ = ["RemediationStats", "RemediationWorker"]

log = logging.getLogger("mendline.heal")

# A run holds its target's slot for its timeout and this much more (the kill's grace, the
# output's, the writes around it); a worker that dies mid-run frees the slot after it.
_LEASE_MARGIN = 30.0 + KILL_GRACE + OUTPUT_GRACE

# The store's writes of a run's steps: finish, record_verification, record_escalation.
_Write: TypeAlias = Callable[..., Awaitable[RemediationRun]]


@dataclass
class RemediationStats:
    """What a remediation worker did: in one pass (``pass_once``), or in all (``stats``)."""

    #: Checks down and issues active looked at, and the remediations they matched.
    troubles: int = 0
    matched: int = 0
    #: What was recorded of the decisions: refused, requested from a person, started; and
    #: matched with nothing to record (done already in this down period).
    refused: int = 0
    requested: int = 0
    started: int = 0
    unchanged: int = 0
    #: Approved runs waiting (their target's slot taken, a guardrail holding them), and
    #: open runs withdrawn (their down period is over, or the policy no longer names them).
    waiting: int = 0
    withdrawn: int = 0
    #: How the runs ended: succeeded, failed (or timed out), dry runs.
    succeeded: int = 0
    failed: int = 0
    dry_runs: int = 0
    #: The checks run again afterwards: passed, failed again; and the alerts made.
    helped: int = 0
    not_helped: int = 0
    escalated: int = 0

    def add(self, other: RemediationStats) -> None:
        """Add ``other``'s counts to these."""
        for each in fields(self):
            setattr(self, each.name, getattr(self, each.name) + getattr(other, each.name))


class RemediationWorker:
    """Runs the fix policy's ``[[remediations]]``; any number of workers run side by side.

    A pass (``pass_once``) reads what is in trouble: every check that is down (as the
    monitor recorded it) and, when a remediation matches on labels or category only, every
    error issue unresolved and seen within ``issue_window`` seconds. Each is a
    RemediationSubject: the check's name, the labels its alert is routed by
    (``alert_labels``: severity, kind, service, environment and the tags; a check's with
    ``tag:check`` and ``tag:check_kind``), and the category of its newest finding (a check's:
    the finding on the trigger that told it down). For each remediation that matches, the
    store decides under the target's lock (``RemediationStore.ask``, as SYSTEM_ACTOR, the
    decision's reasons on the run and its audit rows): refused (recorded once a down period),
    requested from a person (once a down period), or approved and started at once. Runs a
    person approved since (``mendline remediations approve``) are started when their
    guardrails let them; open runs whose down period ended are withdrawn.

    A started run is run (``run_remediation``: the command without a shell, or the HTTP
    call with its headers read from the environment now) and finished with its outcome and
    output. One that succeeded with ``verify = true`` has its check run again (the checks
    file's definition, through ``run_check``: up to ``verify_attempts`` times,
    ``verify_delay`` seconds apart, a pass being enough) and the verdict recorded; one that
    did not help, failed or ran out of time is escalated (``record_escalation``: a
    ``remediation_failed`` trigger on the check's or the issue's issue, which the alert
    stage routes). A heartbeat check, or one not in the checks file, is not run again.
    """

    def __init__(
        self,
        settings: Settings,
        store: RemediationStore,
        *,
        policy: FixPolicy | None = None,
        checks: Iterable[Check] | None = None,
        owner: str | None = None,
        environ: Mapping[str, str] | None = None,
        poll_interval: float = 10.0,
        issue_window: float = 3600.0,
        verify_delay: float = 5.0,
        verify_attempts: int = 3,
    ) -> None:
        self.settings = settings
        self.store = store
        #: The policy whose remediations run (``load_policy(settings.fix_policy_file)``
        #: unless given); replace it to take an edited file.
        self.policy = load_policy(settings.fix_policy_file) if policy is None else policy
        #: The checks run again after a run, by name (``checks_of(settings)`` unless given).
        self.checks: dict[str, Check] = {
            c.name: c for c in (checks_of(settings).checks if checks is None else checks)
        }
        self.owner = owner or f"heal {socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: The environment of commands (filtered by run_command) and of the HTTP headers.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.poll_interval = poll_interval
        self.issue_window = issue_window
        self.verify_delay = verify_delay
        self.verify_attempts = max(1, verify_attempts)
        self.stats = RemediationStats()
        self._outage = outage_backoff(settings.outage_retry_max)
        self._stop: asyncio.Event | None = None

    def waiting_for(self) -> str | None:
        """None while the worker reaches its database; else what it waits out."""
        return "waiting out an outage of PostgreSQL" if self._outage.attempts else None

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``: every ``poll_interval`` seconds, and at once when
        a check goes down, an issue or a finding comes in, or a person approves a run
        (LISTEN); through a PostgreSQL outage with jittered backoff. A run in progress is
        finished (within its timeout) before it returns."""
        self._stop = stop
        listener = Listener(
            self.settings.database_url.get_secret_value(),
            (TRIGGERS_CHANNEL, FINDINGS_CHANNEL, REMEDIATIONS_CHANNEL),
        )
        try:
            while not stop.is_set():
                await listener.keep()
                listener.wake.clear()
                try:
                    await self.pass_once()
                    outage_over(self._outage, log)
                except Exception as exc:
                    await pause_for_outage(exc, self._outage, stop, log)
                    continue
                await wait_any(stop, listener.wake, self.poll_interval)
        finally:
            await listener.close()

    async def pass_once(self, now: datetime | None = None) -> RemediationStats:
        """One pass: ask for runs for what is in trouble, start the approved ones, withdraw
        those no longer needed, then run what was started, verify and escalate; what it did.
        ``now`` is when the guardrails are decided at (the database's clock unless given)
        and the issues' window ends (this host's clock unless given). Cancelled, the runs it
        started and did not finish are left to their lease (then ended ``failed``,
        abandoned)."""
        done = RemediationStats()
        started: list[tuple[RemediationRun, Remediation]] = []
        try:
            try:
                await self._ask(now, done, started)
            except Exception:
                # An outage midway: what was started is run, finished and told all the same.
                await self._carry_out_all(started, done)
                raise
            await self._carry_out_all(started, done)
        finally:
            self.stats.add(done)
        return done

    async def _ask(
        self,
        now: datetime | None,
        done: RemediationStats,
        started: list[tuple[RemediationRun, Remediation]],
    ) -> None:
        """Ask for the runs of what is in trouble, start the approved runs and withdraw the
        open runs no longer needed; the runs started are added to ``started``."""
        policy = self.policy
        # Issues are read only when a remediation can match one: one without a check.
        on_issues = any(r.when.check is None for r in policy.remediations)
        since = (now or datetime.now(UTC)) - timedelta(seconds=self.issue_window)
        troubles = await self.store.troubles(since if on_issues else None)
        done.troubles = len(troubles)
        for trouble in troubles:
            for remediation in remediations_for(policy, _subject(trouble)):
                done.matched += 1
                asked = await self.store.ask(
                    SYSTEM_ACTOR,
                    remediation,
                    trouble.subject,
                    trouble.since,
                    _trigger(trouble, remediation.when),
                    self.owner,
                    lease=remediation.timeout + _LEASE_MARGIN,
                    now=now,
                )
                self._count_asked(asked, remediation, trouble, done)
                if asked.started and asked.run is not None:
                    started.append((asked.run, remediation))
        current = {(t.subject, t.since) for t in troubles}
        by_name = {r.name: r for r in policy.remediations}
        for run in await self.store.open_runs():
            named = by_name.get(run.name)
            if named is None or (
                run.subject is not None and (run.subject, run.episode_at) not in current
            ):
                await self._withdraw(run, named, done)
            elif run.state == "approved":
                begun = await self.store.start(
                    run.id,
                    self.owner,
                    lease=named.timeout + _LEASE_MARGIN,
                    remediation=named,
                    now=now,
                )
                if begun is None:
                    done.waiting += 1
                else:
                    done.started += 1
                    log.info("mendline: approved remediation run %d started", run.id)
                    started.append((begun, named))

    async def _carry_out_all(
        self, started: list[tuple[RemediationRun, Remediation]], done: RemediationStats
    ) -> None:
        """Run the started runs side by side (each on its own target), each to its end."""
        outcomes = await asyncio.gather(
            *(self._carry_out(run, remediation, done) for run, remediation in started),
            return_exceptions=True,
        )
        for (run, _), outcome in zip(started, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):  # a bug: the run is ended by its lease
                log.error("mendline: remediation run %d failed: %r", run.id, outcome)

    def _count_asked(
        self, asked: Asked, remediation: Remediation, trouble: Trouble, done: RemediationStats
    ) -> None:
        said = f"{printable(remediation.name)} for {printable(trouble.subject)}"
        if asked.step == "none":
            done.unchanged += 1
        elif asked.step == "refuse":
            done.refused += 1
            log.info("mendline: remediation %s refused: %s", said, printable(asked.why))
        elif asked.step == "request":
            done.requested += 1
            run_id = asked.run.id if asked.run else "?"
            log.info("mendline: remediation %s waits for approval (run %s)", said, run_id)
        elif asked.started:
            done.started += 1
            run_id = asked.run.id if asked.run else "?"
            log.info("mendline: remediation %s started (run %s)", said, run_id)
        else:  # approved, its slot taken meanwhile: started later, as approved runs are
            done.waiting += 1

    async def _withdraw(
        self, run: RemediationRun, remediation: Remediation | None, done: RemediationStats
    ) -> None:
        if remediation is None:
            reason = "the fix policy no longer names this remediation: not run"
        elif run.subject is not None and run.subject.startswith("check:"):
            reason = "the check is no longer down (or went down again since): not run"
        else:
            reason = "the issue is no longer active (resolved, or quiet): not run"
        try:
            await self.store.decline(SYSTEM_ACTOR, run.id, reason)
        except IllegalTransition:
            return  # another worker started or ended it meanwhile
        done.withdrawn += 1
        log.info("mendline: remediation run %d withdrawn: %s", run.id, reason)

    async def _carry_out(
        self, run: RemediationRun, remediation: Remediation, done: RemediationStats
    ) -> None:
        """Run a started run, finish it, and verify or escalate as its outcome says."""
        outcome = await run_remediation(remediation, self.environ)
        finished = await self._written(self.store.finish, run.id, outcome)
        log.info(
            "mendline: remediation run %d %s: %s",
            run.id,
            finished.state,
            printable(outcome.detail),
        )
        if finished.state == "dry_run":
            done.dry_runs += 1
            return
        if finished.state != "succeeded":
            done.failed += 1
            await self._escalate(finished, done)
            return
        done.succeeded += 1
        check = remediation.when.check
        if not remediation.verify or check is None:
            return
        helped = await self._verify(check)
        if helped is None:
            log.warning(
                "mendline: remediation run %d not verified: %s is not a check run here that"
                " can be run again (a heartbeat, or not in the checks file)",
                run.id,
                printable(check),
            )
            return
        verified = await self._written(self.store.record_verification, run.id, helped)
        if helped:
            done.helped += 1
            return
        done.not_helped += 1
        await self._escalate(verified, done)

    async def _verify(self, name: str) -> bool | None:
        """Whether the check ``name`` passes now: run again up to ``verify_attempts`` times,
        ``verify_delay`` seconds apart (after the first wait, too: what was restarted
        comes up); None when it cannot be run here."""
        check = self.checks.get(name)
        if check is None or isinstance(check, HeartbeatCheck):
            return None
        # The self checks read mendline's own database through a variable of their own.
        environ = {**self.environ, SELF_DSN_ENV: self.settings.database_url.get_secret_value()}
        for _ in range(self.verify_attempts):
            await asyncio.sleep(self.verify_delay)
            result = await run_check(check, datetime.now(UTC), self.settings, environ)
            if result.success:
                return True
        return False

    async def _escalate(self, run: RemediationRun, done: RemediationStats) -> None:
        await self._written(self.store.record_escalation, run.id)
        done.escalated += 1
        log.warning(
            "mendline: remediation run %d (%s) did not help: people are alerted",
            run.id,
            printable(run.name),
        )

    async def _written(self, write: _Write, *args: object) -> RemediationRun:
        """``write(*args)``, waited out through a database outage: what a run did is kept."""
        return await through_outages(
            write,
            *args,
            what="record a remediation run",
            stop=self._stop,
            longest=self.settings.outage_retry_max,
        )


def _subject(trouble: Trouble) -> RemediationSubject:
    """What the policy matches remediations on: the check, the alert's labels, the category."""
    severity = alert_severity(trouble.level, trouble.finding_severity, trouble.kind)
    labels = alert_labels(
        severity=severity,
        kind=trouble.kind,
        service=trouble.service,
        environment=trouble.environment,
        tags=trouble.tags,
    )
    return RemediationSubject(check=trouble.check, labels=labels, category=trouble.category)


def _trigger(trouble: Trouble, when: RemediationWhen) -> str:
    """What asked for a run, for people: the check down since when, or the issue and what
    of it matched (as the policy says it: no text from events)."""
    if trouble.check is not None:
        since = f" since {trouble.since:%Y-%m-%d %H:%M:%S %Z}" if trouble.since else ""
        return printable(f"check {trouble.check} is down{since}")[:1000]
    matched = [f"{name} = {'|'.join(values)}" for name, values in sorted(when.labels.items())]
    if when.category is not None:
        matched.insert(0, f"category = {when.category}")
    return printable(f"issue {trouble.issue_id} matched {', '.join(matched)}")[:1000]
