-- What a remediation run was for, and the alert a run that did not help makes.

-- A run's target is what the remediation acts on, one run at a time: the policy's `target`,
-- else the remediation's name ("orders-worker"), as written. What asked for the run is its
-- subject ("check:api", "issue:12"), and the down period of that subject it belongs to
-- (episode_at: when the check went down, when the issue opened or last regressed): a
-- refusal, or a request for a person, is made once per down period, not on every pass. The
-- verdict is what policy said when it was asked for (run, needs_approval or refused): a run
-- a person declined is refused too, and still counts as the period's request.
ALTER TABLE mendline.remediation_runs DROP CONSTRAINT IF EXISTS remediation_runs_target_check;
ALTER TABLE mendline.remediation_runs ADD CONSTRAINT remediation_runs_target_check
    CHECK (length(target) BETWEEN 1 AND 300);
ALTER TABLE mendline.remediation_runs
    ADD COLUMN IF NOT EXISTS subject    text CHECK (subject ~ '^[a-z_]+:.+' AND length(subject) <= 300),
    ADD COLUMN IF NOT EXISTS episode_at timestamptz,
    ADD COLUMN IF NOT EXISTS verdict    text CHECK (verdict IN ('run', 'needs_approval', 'refused'));
CREATE INDEX IF NOT EXISTS remediation_runs_episode
    ON mendline.remediation_runs (name, subject, episode_at);

-- remediation_failed: a remediation run did not help (its check failed again afterwards), or
-- failed or ran out of time; made on the subject's issue, routed like the other kinds.
ALTER TABLE mendline.triggers DROP CONSTRAINT triggers_kind_check;
ALTER TABLE mendline.triggers ADD CONSTRAINT triggers_kind_check
    CHECK (kind IN ('new_issue', 'regression', 'frequency', 'resolved',
                    'health_down', 'health_recovered', 'health_flapping',
                    'remediation_failed'));

-- Public: every remediation run, with what it did (subject, episode_at and verdict added).
CREATE OR REPLACE VIEW mendline.remediations AS
SELECT id, name, target, state, trigger, reasons, requested_by, requested_at, approved_by,
       approved_at, owner, started_at, finished_at, outcome ->> 'result' AS result,
       outcome ->> 'ran' AS ran, outcome ->> 'detail' AS detail, (outcome ->> 'exit_code')::int AS exit_code,
       (outcome ->> 'http_status')::int AS http_status, output, verified, escalated_at,
       finished_at - started_at AS took, subject, episode_at, verdict
FROM mendline.remediation_runs;
