-- The dashboard's status pages (overview, alerts): indexes for what they read, so that no
-- read scans a growing table. Additive only: no table or view changes.
-- IF NOT EXISTS throughout: safe to run again over a schema that has some of it.

-- The alert stage's newest delivery (the overview's "last alert delivered").
CREATE INDEX IF NOT EXISTS deliveries_delivered ON mendline.deliveries (delivered_at)
    WHERE delivered_at IS NOT NULL;
-- Deliveries counted by receiver and status over a window (the alerts page).
CREATE INDEX IF NOT EXISTS deliveries_created ON mendline.deliveries (created_at);
-- Failures and retries, newest first: failed or dead, or pending after a failed attempt.
CREATE INDEX IF NOT EXISTS deliveries_troubled ON mendline.deliveries (id)
    WHERE status IN ('failed', 'dead') OR (status = 'pending' AND last_error IS NOT NULL);
-- MTTR's cases: the issues resolved within a window.
CREATE INDEX IF NOT EXISTS issues_resolved_at ON mendline.issues (resolved_at)
    WHERE status = 'resolved';
