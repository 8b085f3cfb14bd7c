-- The analysis and follow-up queues take health_down triggers too (a check's downtime is
-- explained and its message updated): their partial indexes say the same kinds as the
-- queries, so the planner can use them.
DROP INDEX IF EXISTS mendline.triggers_to_analyse;
CREATE INDEX triggers_to_analyse ON mendline.triggers (id)
    WHERE analysed_at IS NULL AND kind IN ('new_issue', 'regression', 'health_down');
DROP INDEX IF EXISTS mendline.triggers_to_follow;
CREATE INDEX triggers_to_follow ON mendline.triggers (id)
    WHERE followed_at IS NULL AND kind IN ('new_issue', 'regression', 'health_down');
