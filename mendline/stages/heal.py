"""The heal stage: fixes proposed from findings by the fix policy, applied in worktrees of their
own (verified, committed, delivered), the releases that carry them noticed, and deployed fixes
settled by what production does after."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mendline.analyzers.policy import (
    SHIPPED_POLICY,
    FixCandidate,
    MappedPatch,
    authorize,
    decide,
    load_policy,
    map_patch,
    shipped_policy_text,
)
from mendline.schemas.errors import ForgeError, PatchRefused
from mendline.schemas.finding import Finding
from mendline.schemas.fix import PolicyDecision, check_transition
from mendline.schemas.fixpolicy import FixPolicy, Repository
from mendline.schemas.people import SYSTEM_ACTOR, Actor
from mendline.schemas.settings import Settings
from mendline.sinks.forges import (
    ApplyOutcome,
    Checkout,
    DeliveryPlan,
    FixChange,
    ForgeAPI,
    RevertChange,
    VerifyPlan,
    apply_fix,
    cleanup_stale,
    fetch_base,
    release_contains,
    revert,
)
from mendline.sinks.postgres import (
    FindingStore,
    FixStore,
    Handover,
    RemediationStore,
    StoredFix,
    connect_fixes,
    is_outage,
)
from mendline.stages._remediation import RemediationStats, RemediationWorker
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

__all__ = [
    "METRICS",
    "REMEDIATION_METRICS",
    "HealStats",
    "Healer",
    "check",
    "policy_decision",
    "policy_digest",
    "run",
    "verify_plan",
]

log = logging.getLogger("mendline.heal")

#: The window ``max_per_hour`` counts automatic fixes in.
_HOUR = 3600.0


@dataclass
class HealStats:
    """What a heal worker did: fixes proposed (by the policy's verdict), applying outcomes
    (applied, refused, failed, or ``retry`` when git or the forge failed for now), fixes
    found deployed, deployed fixes settled (verified, regressed), and passes that failed."""

    proposed: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    deployed: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    errors: int = 0


#: What the heal stage counts, read from its HealStats at each scrape.
METRICS: tuple[StatsMetric[HealStats], ...] = (
    StatsMetric(
        "mendline_fixes_proposed_total",
        "Fixes proposed from findings, by the policy's verdict: auto, approval or deny.",
        lambda s: {(verdict,): n for verdict, n in s.proposed.items()},
        ("verdict",),
    ),
    StatsMetric(
        "mendline_fixes_applying_total",
        "Fixes applied, by outcome: applied, refused, failed, or retry (git or the forge"
        " failed for now).",
        lambda s: {(outcome,): n for outcome, n in s.outcomes.items()},
        ("outcome",),
    ),
    StatsMetric(
        "mendline_fixes_deployed_total",
        "Applied fixes found in a release production runs.",
        lambda s: {(): s.deployed},
    ),
    StatsMetric(
        "mendline_fixes_settled_total",
        "Deployed fixes settled by production's events: verified or regressed.",
        lambda s: {(state,): n for state, n in s.settled.items()},
        ("state",),
    ),
    StatsMetric(
        "mendline_heal_errors_total",
        "Heal passes that failed for another reason than a database outage.",
        lambda s: {(): s.errors},
    ),
)


#: What the heal stage's remediation worker counts, by what happened.
REMEDIATION_METRICS: tuple[StatsMetric[RemediationStats], ...] = (
    StatsMetric(
        "mendline_remediations_total",
        "Remediations by what happened: matched, refused, requested (from a person), started,"
        " succeeded, failed, dry_run, helped, not_helped (the check failed again), escalated.",
        lambda s: {
            ("matched",): s.matched,
            ("refused",): s.refused,
            ("requested",): s.requested,
            ("started",): s.started,
            ("succeeded",): s.succeeded,
            ("failed",): s.failed,
            ("dry_run",): s.dry_runs,
            ("helped",): s.helped,
            ("not_helped",): s.not_helped,
            ("escalated",): s.escalated,
        },
        ("outcome",),
    ),
)


def check(settings: Settings) -> FixPolicy:
    """The fix policy, read before any stage starts, and each repository's checkout as the
    settings make it (the work root outside it, the commit author well formed): ConfigError
    names what is wrong, before a fix is claimed."""
    policy = load_policy(settings.fix_policy_file)
    for repository in policy.repositories:
        Checkout(
            path=repository.path,
            work_root=settings.fix_work_root.expanduser(),
            base=repository.base_branch,
            author=settings.fix_author,
        )
    return policy


async def run(settings: Settings, stop: asyncio.Event, context: StageContext) -> None:
    """The heal stage (one worker) until ``stop``; a fix being applied is finished first.
    Ready while it holds its database pool and is not waiting out an outage."""
    policy = check(settings)
    context.not_ready("connecting to PostgreSQL")
    origin = f"heal {socket.gethostname()}:{os.getpid()}"
    fixes = await connect_patiently(lambda: connect_fixes(settings, origin=origin, size=4), stop)
    if fixes is None:
        return
    healer = Healer(settings, policy, fixes, FindingStore(fixes.pool))
    context.watch(healer.stats, METRICS)
    remediations = None
    if policy.remediations:  # none named: nothing to look for
        store = RemediationStore(fixes.pool, fixes.audit, fixes.origin)
        remediations = RemediationWorker(settings, store, policy=policy, owner=healer.owner)
        context.watch(remediations.stats, REMEDIATION_METRICS)
    context.ready_when(lambda: _waiting_for(healer, remediations))
    log.info(
        "mendline: heal worker %s started (%d repositories, %d remediations in the fix policy)",
        healer.owner,
        len(policy.repositories),
        len(policy.remediations),
    )
    try:
        await through_outages(
            fixes.record_policy,
            *policy_digest(settings),
            what="note the fix policy in the audit trail",
            stop=stop,
            longest=settings.outage_retry_max,
        )
        await through_outages(
            healer.cleanup,
            what="clean up after a crash",
            stop=stop,
            longest=settings.outage_retry_max,
        )
        if remediations is None:
            await healer.run(stop)
        else:
            await asyncio.gather(healer.run(stop), remediations.run(stop))
    finally:
        await fixes.pool.close()


def _waiting_for(healer: Healer, remediations: RemediationWorker | None) -> str | None:
    return healer.waiting_for() or (remediations.waiting_for() if remediations else None)


class Healer:
    """One heal worker: any number can share the fixes (claims with leases). Each pass
    proposes fixes of new findings, applies one claimed fix at a time, notices deployments
    and settles deployed fixes. ``apply`` and ``rollback`` also serve ``mendline fix``."""

    def __init__(
        self,
        settings: Settings,
        policy: FixPolicy,
        fixes: FixStore,
        findings: FindingStore,
        *,
        owner: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.fixes = fixes
        self.findings = findings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = HealStats()
        self.environ = os.environ if environ is None else environ
        self._applying: set[int] = set()
        self._outage = outage_backoff(settings.outage_retry_max)
        self._stop = asyncio.Event()  # set by ``run``'s stop: no new fix is claimed then

    def waiting_for(self) -> str | None:
        """None while the worker reaches its database; else what it waits out."""
        return "waiting out an outage of PostgreSQL" if self._outage.attempts else None

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; the lease of the fix being applied is renewed."""
        self._stop = stop
        lease = self.settings.fix_lease
        renewer = asyncio.create_task(
            keep_renewing(
                lease,
                lambda: self._applying,
                self._renew,
                "fixes",
            )
        )
        try:
            while not stop.is_set():
                try:
                    await self.pass_once()
                    outage_over(self._outage, log)
                except Exception as exc:
                    if not _is_outage_or_raise(exc, self.stats):
                        await wait_any(stop, None, self.settings.heal_poll_interval)
                        continue
                    await pause_for_outage(exc, self._outage, stop, log)
                    continue
                await wait_any(stop, None, self.settings.heal_poll_interval)
        finally:
            renewer.cancel()

    async def _renew(self, fix_ids: list[int]) -> None:
        lost = set(fix_ids) - set(
            await self.fixes.renew(self.owner, fix_ids, self.settings.fix_lease)
        )
        for fix_id in lost:  # its lease lapsed and another worker took it over
            log.warning("mendline: fix %d was taken over by another worker", fix_id)

    async def pass_once(self) -> None:
        """Propose, apply what is claimable, notice deployments, settle deployed fixes."""
        await self.propose_new()
        while not self._stop.is_set() and await self.apply_next():
            pass
        await self.notice_deployments()
        await self.settle()

    # -- proposing ------------------------------------------------------------------------

    async def propose_new(self) -> list[StoredFix]:
        """A fix of each finding the store says is waiting for one, as the policy decides;
        none while the policy names no repository (no fix could go anywhere: the findings
        keep their patches for people to read)."""
        proposed: list[StoredFix] = []
        if not self.policy.repositories:
            return proposed
        for finding_id in await self.fixes.unproposed():
            stored = await self.findings.get(finding_id)
            decision = await self.decide(stored.finding)
            fix = await self.fixes.propose(SYSTEM_ACTOR, finding_id, decision)
            _count(self.stats.proposed, decision.verdict)
            log.info("mendline: fix %d of finding %d: %s", fix.id, finding_id, decision.verdict)
            proposed.append(fix)
        return proposed

    async def decide(self, finding: Finding) -> PolicyDecision:
        """The policy's decision on ``finding``'s patch now (``policy_decision``)."""
        return await policy_decision(self.policy, finding, self.fixes)

    # -- applying -------------------------------------------------------------------------

    async def apply_next(self) -> bool:
        """Claim one fix and apply it; whether there was one."""
        claimed = await self.fixes.claim(
            self.owner, self.settings.fix_lease, 1, self.settings.fix_max_attempts
        )
        for fix in claimed:
            await self.apply(fix)
        return bool(claimed)

    async def apply(
        self, fix: StoredFix, *, actor: Actor = SYSTEM_ACTOR, owner: str | None = None
    ) -> Handover | None:
        """Apply a fix claimed by ``owner`` (this worker by default) and record the outcome
        as ``actor``. None when git or the forge failed for now: the fix stays claimed until
        its lease runs out, then it is tried again (``fix_max_attempts`` in all)."""
        owner = owner or self.owner
        refused = await self._decided_again(fix, owner, actor)
        if refused is not None:
            return refused
        self._applying.add(fix.id)
        try:
            outcome = await self._apply(fix)
        except ForgeError as exc:
            if exc.retriable:
                _count(self.stats.outcomes, "retry")
                log.warning("mendline: fix %d not applied for now, tried again: %s", fix.id, exc)
                return None
            outcome = ApplyOutcome("failed", reason=str(exc), code=exc.code)
        finally:
            self._applying.discard(fix.id)
        _count(self.stats.outcomes, outcome.result)
        if outcome.result == "applied":
            assert outcome.delivery is not None and outcome.verification is not None
            return await self.fixes.finish_applied(
                owner, fix.id, outcome.delivery, outcome.verification, actor=actor
            )
        reason = outcome.reason or outcome.result
        log.info("mendline: fix %d %s: %s", fix.id, outcome.result, reason)
        return await self.fixes.finish_failed(
            owner, fix.id, reason, outcome.verification, actor=actor
        )

    async def _decided_again(self, fix: StoredFix, owner: str, actor: Actor) -> Handover | None:
        """The policy asked again, as the fix is about to be applied (it may have changed
        since the fix was proposed, and ``[auto] max_per_hour`` counts what was applied
        meanwhile): None when it still lets this fix go; else the fix failed (denied now, or
        its patch maps otherwise: approvals were for another patch) or given back to
        ``proposed`` (it wants a person now, or more approvals than the fix has)."""
        finding = (await self.findings.get(fix.finding_id)).finding
        now = await policy_decision(self.policy, finding, self.fixes, applying=fix)
        if now.verdict == "deny" or now.mapped_patch != fix.mapped_patch:
            why = "denies it" if now.verdict == "deny" else "maps its patch otherwise"
            reasons = "; ".join(now.reasons)
            _count(self.stats.outcomes, "refused")
            return await self.fixes.finish_failed(
                owner, fix.id, f"the fix policy now {why}: {reasons}", actor=actor
            )
        if now.verdict == "approval" and len(fix.approvals) < now.approvals_needed:
            _count(self.stats.outcomes, "given_back")
            log.info("mendline: fix %d given back: %s", fix.id, "; ".join(now.reasons))
            return await self.fixes.give_back(owner, fix.id, now)
        return None

    async def apply_now(self, actor: Actor, fix_id: int) -> Handover | None:
        """``mendline fix apply``: claim fix ``fix_id`` as ``actor`` and apply it now
        (``claim_for`` then ``apply_claimed``)."""
        return await self.apply_claimed(await self.claim_for(actor, fix_id), actor)

    async def claim_for(self, actor: Actor, fix_id: int) -> StoredFix:
        """Claim fix ``fix_id`` for ``actor`` (an approver; a fix that needs approval must
        have it), with this worker's lease: the fix is ``applying`` from now on, audited as
        theirs. Refused before the claim (ForgeError, not retried) when its repository is not
        in this worker's fix policy: applying would only fail it. Whoever claims it must
        ``apply_claimed`` it; should they die first, its lease runs out and a heal worker
        claims it again."""
        self.repository(await self.fixes.get(fix_id))
        return await self.fixes.claim_one(actor, self.owner, fix_id, self.settings.fix_lease)

    async def apply_claimed(self, fix: StoredFix, actor: Actor) -> Handover | None:
        """Apply a fix this worker claimed for ``actor`` (``claim_for``), its lease renewed
        meanwhile; the outcome is recorded as theirs (``apply``)."""
        renewer = asyncio.create_task(
            keep_renewing(self.settings.fix_lease, lambda: self._applying, self._renew, "fixes")
        )
        try:
            return await self.apply(fix, actor=actor)
        finally:
            renewer.cancel()

    async def _apply(self, fix: StoredFix) -> ApplyOutcome:
        repository = self.repository(fix)
        finding = (await self.findings.get(fix.finding_id)).finding
        change = FixChange(
            issue_id=fix.issue_id,
            fix_id=fix.id,
            finding_id=fix.finding_id,
            patch=_mapped(fix),
            issue_title=await self._title(fix),
            finding=finding,
            approvers=fix.approvals,
            when=fix.approved_at or fix.created_at,
        )
        return await apply_fix(
            self.checkout(repository),
            change,
            verify_plan=verify_plan(repository, self.policy),
            delivery=self.delivery(repository),
        )

    # -- rolling back ---------------------------------------------------------------------

    async def rollback(self, actor: Actor, fix_id: int, reason: str) -> StoredFix:
        """Undo an applied fix with a revert commit, delivered as the repository's fixes are
        (never rewriting history), verified first, and record it as ``actor``'s. Raises
        PermissionDenied (before any git work) when ``actor`` may not roll back, and
        PatchRefused when the revert does not apply or fails verification."""
        authorize(actor, "fix.rollback")  # a refusal must not leave a revert commit behind
        fix = await self.fixes.get(fix_id)
        check_transition(fix.state, "rolled_back")  # before any git work: a clear refusal
        assert fix.delivery is not None  # every state that may roll back was delivered
        repository = self.repository(fix)
        checkout, delivery = self.checkout(repository), self.delivery(repository)
        # The fix may have been merged on the forge: the revert starts from what the
        # remote's base holds (a retriable ForgeError when it cannot be fetched now).
        await self._fetch_quietly(repository)  # offline, it reverts on what the clone has
        change = RevertChange(
            issue_id=fix.issue_id,
            fix_id=fix.id,
            commit=fix.delivery.commit,
            reason=reason,
            issue_title=await self._title(fix),
            approvers=(actor.name,),
            when=fix.applied_at,  # a retried rollback makes the same commit
        )
        outcome = await revert(
            checkout,
            change,
            delivery=delivery,
            verify_plan=verify_plan(repository, self.policy),
        )
        if outcome.result != "applied" or outcome.delivery is None:
            raise PatchRefused(
                "conflict" if outcome.result == "refused" else "rejected",
                f"fix {fix_id} was not rolled back: {outcome.reason or outcome.result}",
            )
        return await self.fixes.rollback(actor, fix_id, outcome.delivery)

    # -- production -----------------------------------------------------------------------

    async def notice_deployments(self) -> int:
        """Mark deployed each applied fix whose commit a release seen since holds. The
        remote's base and tags are fetched first, once per repository and pass (a failed
        fetch is logged, and the clone's tags are read as they are)."""
        found = 0
        fetched: set[str] = set()
        for fix in await self.fixes.list(state="applied", limit=100):
            repository = self._known(fix)
            if repository is None or fix.delivery is None:
                continue
            releases = await self.fixes.releases_after(fix.id)
            if releases and repository.name not in fetched:
                fetched.add(repository.name)
                await self._fetch_quietly(repository)
            for release in releases:
                held = await release_contains(
                    self.checkout(repository), release, fix.delivery.commit
                )
                if held:
                    await self.fixes.deployed(SYSTEM_ACTOR, fix.id, release)
                    self.stats.deployed += 1
                    found += 1
                    break
        return found

    async def _fetch_quietly(self, repository: Repository) -> None:
        try:
            await fetch_base(self.checkout(repository), self.delivery(repository))
        except ForgeError as exc:
            log.warning("mendline: could not fetch into %s: %s", repository.name, exc)

    async def settle(self) -> list[StoredFix]:
        """Settle the deployed fixes whose verification window has passed."""
        settled = await self.fixes.settle_deployed(self.settings.fix_verification_window)
        for fix in settled:
            _count(self.stats.settled, fix.state)
            log.info("mendline: fix %d %s", fix.id, fix.state)
        return settled

    async def cleanup(self) -> None:
        """After a crash: remove the worktrees and branches of fixes no longer being applied
        or delivered, in every repository of the policy. The branches of every live fix
        are kept in each (a clone may serve two entries of the policy)."""
        keep = await self.fixes.live_branches()
        for repository in self.policy.repositories:
            try:
                report = await cleanup_stale(repository.path, self.work_root, keep)
            except ForgeError as exc:
                log.warning("mendline: could not clean up %s: %s", repository.name, exc)
                continue
            if report.worktrees or report.branches:
                log.info(
                    "mendline: cleaned up %s: %d worktrees, %d branches left by a crash",
                    repository.name,
                    len(report.worktrees),
                    len(report.branches),
                )

    # -- the repository's settings --------------------------------------------------------

    @property
    def work_root(self) -> Path:
        """Where the worktrees go."""
        return self.settings.fix_work_root.expanduser()

    def checkout(self, repository: Repository) -> Checkout:
        """The repository's clone as the forges work on it."""
        return Checkout(
            path=repository.path,
            work_root=self.work_root,
            base=repository.base_branch,
            author=self.settings.fix_author,
        )

    def delivery(self, repository: Repository) -> DeliveryPlan:
        """How the repository's fixes are delivered; the token read from its variable now.
        ForgeError (not retried) when a token the delivery needs is not set."""
        token = None
        if repository.token_env is not None and repository.delivery in ("push", "pull_request"):
            token = self.environ.get(repository.token_env) or None
            if token is None:
                raise ForgeError(
                    f"{repository.token_env} is not set: the repository {repository.name}"
                    f" delivers fixes by {repository.delivery} with the token it holds",
                    code="config",
                    retriable=False,
                )
        forge = None
        if repository.delivery == "pull_request":
            assert repository.forge is not None and repository.project is not None
            api = repository.forge_api_url
            assert api is not None and token is not None
            forge = ForgeAPI(repository.forge, api, repository.project, token)
        return DeliveryPlan(
            mode=repository.delivery,
            remote=repository.remote or "origin",
            push_token=token,
            forge=forge,
            patch_dir=self.settings.fix_patch_dir.expanduser(),
        )

    async def _title(self, fix: StoredFix) -> str:
        return await self.fixes.issue_title(fix.issue_id) or f"issue {fix.issue_id}"

    def _known(self, fix: StoredFix) -> Repository | None:
        return next((r for r in self.policy.repositories if r.name == fix.repository), None)

    def repository(self, fix: StoredFix) -> Repository:
        """The repository of the fix policy the fix's patch maps into; ForgeError (not
        retried) when this worker's policy has none by its name."""
        repository = self._known(fix)
        if repository is None:
            raise ForgeError(
                f"the repository {fix.repository!r} of fix {fix.id} is not in the fix policy",
                code="config",
                retriable=False,
                hint="`mendline fix policy check` lists the policy's repositories",
            )
        return repository


async def policy_decision(
    policy: FixPolicy, finding: Finding, fixes: FixStore, *, applying: StoredFix | None = None
) -> PolicyDecision:
    """The policy's decision on ``finding``'s patch now: the patch is mapped first, so that
    only its repository's automatic fixes of the last hour are counted (``[auto]
    max_per_hour``); ``decide`` maps it again, the one place the decision is made. The heal
    stage and ``mendline fix propose|policy explain`` both ask it; the heal stage again as it
    applies a fix (``applying``, which is not counted against itself)."""
    candidate = FixCandidate.of(finding)
    recent: dict[str, int] = {}
    mapped = map_patch(candidate.patch, policy.repositories) if candidate.patch else None
    if isinstance(mapped, MappedPatch):
        name = mapped.repository.name
        recent[name] = await fixes.automatic_since(name, _HOUR)
        if applying is not None and _automatic(applying) and applying.repository == name:
            recent[name] -= 1
    return decide(policy, candidate, recent)


def _automatic(fix: StoredFix) -> bool:
    """Whether the fix is one the policy let go without a person (as automatic_since counts)."""
    return fix.decision.verdict == "auto" and fix.approvals_needed == 0


def policy_digest(settings: Settings) -> tuple[str, str]:
    """The fix policy's SHA-256 and where it is from (the file, or the shipped default): a
    change of it is noted in the audit trail when a heal stage starts with it."""
    path = settings.fix_policy_file
    if path is None:
        return hashlib.sha256(shipped_policy_text().encode()).hexdigest(), SHIPPED_POLICY
    return hashlib.sha256(path.read_bytes()).hexdigest(), str(path)


def verify_plan(repository: Repository, policy: FixPolicy) -> VerifyPlan:
    """How the repository's fixes are verified (the forges' defaults unless it says); the
    commands never get a variable ``policy`` names as holding a secret (every repository's
    ``token_env``, every remediation's ``http.headers_env``)."""
    secret_env = {r.token_env for r in policy.repositories if r.token_env is not None}
    for remediation in policy.remediations:
        if remediation.http is not None:
            secret_env.update(remediation.http.headers_env.values())
    return VerifyPlan(
        secret_env=frozenset(secret_env),
        checks=None if repository.verify is None else tuple(tuple(c) for c in repository.verify),
        test_command=None if repository.test is None else tuple(repository.test),
        timeout=repository.verify_timeout,
        output_limit=repository.output_limit,
    )


def _mapped(fix: StoredFix) -> str:
    """The fix's patch on the repository's paths (never the frames' paths)."""
    if fix.mapped_patch is None:
        raise ForgeError(
            f"fix {fix.id} has no patch mapped onto its repository", code="config", retriable=False
        )
    return fix.mapped_patch


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _is_outage_or_raise(exc: Exception, stats: HealStats) -> bool:
    """Whether a failed pass met a database outage (waited out by the caller); anything
    else is logged and counted, and the next pass tries again (one bad fix must not stop
    the others)."""
    if is_outage(exc):
        return True
    stats.errors += 1
    log.exception("mendline: a heal pass failed: %s", exc)
    return False
