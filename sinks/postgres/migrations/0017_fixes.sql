-- Self-healing: fixes made from findings' patches (schemas/fix.py: their states and moves),
-- who approved each, and the views of what they achieved; with the product's own measures,
-- how fast issues are resolved and how often findings are wrong.
-- IF NOT EXISTS and OR REPLACE throughout: safe to run again over a schema that has some of it.

-- One row a fix, moved only by sinks/postgres/_fixes.py, which asks check_transition and
-- writes the audit row of each move in its transaction. A fix is claimed with a lease (owner,
-- lease_until): a worker killed mid-apply leaves it to be claimed again (attempts counts).
CREATE TABLE IF NOT EXISTS mendline.fix_jobs (
    id                bigserial   PRIMARY KEY,
    finding_id        bigint      NOT NULL REFERENCES mendline.findings (id),
    issue_id          bigint      NOT NULL REFERENCES mendline.issues (id),
    state             text        NOT NULL DEFAULT 'proposed'
                      CHECK (state IN ('proposed', 'approved', 'rejected', 'applying', 'applied',
                                       'failed', 'deployed', 'verified', 'regressed',
                                       'rolled_back')),
    -- The finding's fix_patch as it was proposed, and as the policy mapped it onto the
    -- repository's paths (NULL when it did not map).
    patch             text        NOT NULL,
    mapped_patch      text,
    repository        text,
    -- The policy's PolicyDecision (its verdict and reasons), without mapped_patch (above).
    decision          jsonb       NOT NULL,
    approvals_needed  smallint    NOT NULL DEFAULT 0 CHECK (approvals_needed BETWEEN 0 AND 2),
    requested_by      text        NOT NULL,
    requested_auth    text        NOT NULL
                      CHECK (requested_auth IN ('token', 'local', 'session', 'system')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    approved_at       timestamptz,
    rejected_at       timestamptz,
    rejected_by       text,
    rejected_reason   text,
    owner             text,
    lease_until       timestamptz,
    attempts          integer     NOT NULL DEFAULT 0,
    applying_since    timestamptz,
    -- Verification and Delivery (schemas/fix.py) as JSON.
    verification      jsonb,
    delivery          jsonb,
    -- Why it failed, or which event showed it regressed.
    error             text,
    applied_at        timestamptz,
    failed_at         timestamptz,
    -- The release it was deployed in.
    release           text,
    deployed_at       timestamptz,
    verified_at       timestamptz,
    regressed_at      timestamptz,
    rolled_back_at    timestamptz,
    rollback_delivery jsonb
);

-- A finding has at most one fix that is not final: proposing again finds it.
CREATE UNIQUE INDEX IF NOT EXISTS fix_jobs_one_open ON mendline.fix_jobs (finding_id)
    WHERE state NOT IN ('rejected', 'failed', 'rolled_back');
-- The heal stage's queue: what may be applied, and what is being applied (leases to expire).
CREATE INDEX IF NOT EXISTS fix_jobs_to_apply ON mendline.fix_jobs (id)
    WHERE state IN ('proposed', 'approved', 'applying');
CREATE INDEX IF NOT EXISTS fix_jobs_deployed ON mendline.fix_jobs (deployed_at)
    WHERE state = 'deployed';
CREATE INDEX IF NOT EXISTS fix_jobs_issue ON mendline.fix_jobs (issue_id, id DESC);

-- Who approved a fix, once each: a fix that needs two approvals needs two people.
CREATE TABLE IF NOT EXISTS mendline.fix_approvals (
    id       bigserial   PRIMARY KEY,
    fix_id   bigint      NOT NULL REFERENCES mendline.fix_jobs (id),
    approver text        NOT NULL,
    user_id  bigint,
    note     text,
    at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fix_id, approver)
);

-- Every fix with its issue, where it stands, and how long each step took from its proposal;
-- time_to_fix runs from the issue's first event to the fix verified in production.
-- automatic: applied by the policy with no person's approval.
CREATE OR REPLACE VIEW mendline.fixes AS
SELECT f.id, f.finding_id, f.issue_id, i.service, i.title, f.state, f.repository,
       f.decision ->> 'verdict' AS verdict, f.decision -> 'reasons' AS reasons,
       f.approvals_needed,
       (SELECT count(*) FROM mendline.fix_approvals a WHERE a.fix_id = f.id) AS approvals,
       f.decision ->> 'verdict' = 'auto' AND f.approved_at IS NULL AS automatic,
       f.requested_by, f.rejected_by, f.rejected_reason, f.attempts, f.error, f.release,
       f.delivery ->> 'mode' AS delivery_mode, f.delivery ->> 'branch' AS branch,
       f.delivery ->> 'commit' AS commit, f.delivery ->> 'pr_url' AS pr_url,
       f.created_at AS proposed_at, f.approved_at, f.rejected_at, f.applied_at, f.failed_at,
       f.deployed_at, f.verified_at, f.regressed_at, f.rolled_back_at, f.updated_at,
       f.approved_at - f.created_at AS time_to_approve,
       f.applied_at - f.created_at AS time_to_apply,
       f.deployed_at - f.created_at AS time_to_deploy,
       f.verified_at - f.created_at AS time_to_verify,
       f.verified_at - i.first_seen AS time_to_fix
FROM mendline.fix_jobs f
JOIN mendline.issues i ON i.id = f.issue_id;

-- Per UTC day, the fixes' outcomes that day: verified, regressed, failed, rolled back; of
-- the first three, how many came by the automatic path and how many were approved by people,
-- and the success rate, verified / (verified + regressed + failed).
CREATE OR REPLACE VIEW mendline.fix_outcomes_daily AS
WITH outcomes AS (
    SELECT o.outcome, o.at, f.decision ->> 'verdict' = 'auto' AND f.approved_at IS NULL AS automatic
    FROM mendline.fix_jobs f
    CROSS JOIN LATERAL (VALUES ('verified', f.verified_at), ('regressed', f.regressed_at),
                               ('failed', f.failed_at), ('rolled_back', f.rolled_back_at))
        AS o (outcome, at)
    WHERE o.at IS NOT NULL
)
SELECT (at AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE outcome = 'verified') AS verified,
       count(*) FILTER (WHERE outcome = 'regressed') AS regressed,
       count(*) FILTER (WHERE outcome = 'failed') AS failed,
       count(*) FILTER (WHERE outcome = 'rolled_back') AS rolled_back,
       count(*) FILTER (WHERE outcome <> 'rolled_back' AND automatic) AS automatic,
       count(*) FILTER (WHERE outcome <> 'rolled_back' AND NOT automatic) AS approved,
       count(*) FILTER (WHERE outcome = 'verified')::float8
           / nullif(count(*) FILTER (WHERE outcome <> 'rolled_back'), 0) AS success_rate
FROM outcomes
GROUP BY 1;

-- Per UTC day of resolution, the issues resolved that are still resolved (one that regressed
-- counts again on the day it is resolved again), how many of them by a verified fix, and the
-- time from their first event to their resolution (MTTR): median and 90th percentile.
CREATE OR REPLACE VIEW mendline.recovery_daily AS
SELECT (i.resolved_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS resolved,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM mendline.fix_jobs f WHERE f.issue_id = i.id AND f.state = 'verified'))
           AS resolved_by_fixes,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.resolved_at - i.first_seen) AS mttr_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY i.resolved_at - i.first_seen) AS mttr_p90
FROM mendline.issues i
WHERE i.status = 'resolved' AND i.resolved_at IS NOT NULL
GROUP BY 1;

-- Per analyser, the findings people judged and how many they marked wrong: the false
-- positive rate is wrong / judged. A finding served from another's cache shares its verdict
-- and is counted once, as the one it came from.
CREATE OR REPLACE VIEW mendline.finding_accuracy AS
SELECT f.analyser,
       count(*) AS findings,
       count(f.verdict) AS judged,
       count(*) FILTER (WHERE f.verdict = 'right') AS marked_right,
       count(*) FILTER (WHERE f.verdict = 'wrong') AS marked_wrong,
       count(*) FILTER (WHERE f.verdict = 'wrong')::float8 / nullif(count(f.verdict), 0)
           AS false_positive_rate
FROM mendline.findings f
WHERE f.cached_from IS NULL
GROUP BY f.analyser;
