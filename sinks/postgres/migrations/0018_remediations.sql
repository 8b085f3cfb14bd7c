-- Remediation runs: a runbook step the policy names for a check that went down or an issue
-- that matched (schemas/remediation.py draws a run's life). Every change to a row is made by
-- sinks/postgres/_remediations.py with its audit row, in one transaction.
CREATE TABLE IF NOT EXISTS mendline.remediation_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- What it acts on: "check:api", "issue:12".
    target       text NOT NULL CHECK (target ~ '^[a-z_]+:.+' AND length(target) <= 300),
    state        text NOT NULL CHECK (state IN ('requested', 'approved', 'running', 'succeeded',
                     'failed', 'timed_out', 'dry_run', 'refused', 'not_helped')),
    -- What asked for it, for people: "check api is down".
    trigger      text NOT NULL CHECK (length(trigger) <= 1000),
    -- Why it was let go, held for approval or refused: a JSON array of sentences.
    reasons      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(reasons) = 'array'),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    approved_by  text,
    approved_at  timestamptz,
    -- The worker that started it, and until when the target's slot is its own.
    owner        text,
    started_at   timestamptz,
    lease_until  timestamptz,
    finished_at  timestamptz,
    -- What running it did (schemas/remediation.py RemediationOutcome), its output apart.
    outcome      jsonb,
    output       text,
    -- Whether the check, run again afterwards, passed; NULL until it was run again.
    verified     boolean,
    escalated_at timestamptz,
    CHECK (state <> 'running'
           OR (started_at IS NOT NULL AND lease_until IS NOT NULL AND finished_at IS NULL))
);

-- One run per target at a time: a second start of the same target finds the slot taken.
CREATE UNIQUE INDEX IF NOT EXISTS remediation_runs_one_running
    ON mendline.remediation_runs (target) WHERE state = 'running';
-- The runs of a remediation on a target, newest first: cooldowns and runs per hour.
CREATE INDEX IF NOT EXISTS remediation_runs_recent
    ON mendline.remediation_runs (name, target, requested_at DESC);
-- Runs waiting for a person or a worker.
CREATE INDEX IF NOT EXISTS remediation_runs_open
    ON mendline.remediation_runs (state, id) WHERE state IN ('requested', 'approved');

-- Public: every remediation run, with what it did.
CREATE OR REPLACE VIEW mendline.remediations AS
SELECT id, name, target, state, trigger, reasons, requested_by, requested_at, approved_by,
       approved_at, owner, started_at, finished_at, outcome ->> 'result' AS result,
       outcome ->> 'ran' AS ran, outcome ->> 'detail' AS detail, (outcome ->> 'exit_code')::int AS exit_code,
       (outcome ->> 'http_status')::int AS http_status, output, verified, escalated_at,
       finished_at - started_at AS took
FROM mendline.remediation_runs;
