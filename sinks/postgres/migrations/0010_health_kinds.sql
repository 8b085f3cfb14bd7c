-- Health checks open issues of their own kind and make triggers of their own kinds; the rest
-- of the health tables come in 0011_health.sql.

-- An issue is an error group (from events) or a check's downtime (one per check and
-- environment); views and triage show both.
ALTER TABLE mendline.issues
    ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'error' CHECK (kind IN ('error', 'health'));

-- health_down: a check went down (failure_threshold results in a row); health_recovered: it
-- came back (resolves the issue, and PagerDuty's incident); health_flapping: its state flips
-- so often that its alerts collapse into one notification until it settles.
ALTER TABLE mendline.triggers DROP CONSTRAINT triggers_kind_check;
ALTER TABLE mendline.triggers ADD CONSTRAINT triggers_kind_check
    CHECK (kind IN ('new_issue', 'regression', 'frequency', 'resolved',
                    'health_down', 'health_recovered', 'health_flapping'));
