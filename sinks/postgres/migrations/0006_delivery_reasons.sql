-- Why each delivery was decided as it was (new, repeat, update, suppressed; its wait): the
-- reasons analyzers.policy gives with every decision, kept with the row so people can read
-- why an alert went, waited or was held back. Deliveries from before have none.

ALTER TABLE mendline.deliveries ADD COLUMN reasons text[] NOT NULL DEFAULT '{}';

-- The view only grows: the new column goes last.
CREATE OR REPLACE VIEW mendline.alert_deliveries AS
SELECT d.id, d.issue_id, i.service, i.title, d.receiver, d.kind, d.severity, d.mode, d.status,
       d.attempts, d.last_error, d.created_at, d.due_at, d.delivered_at, d.digest_of,
       d.finding_id IS NOT NULL AS with_root_cause,
       d.reasons
FROM mendline.deliveries d
JOIN mendline.issues i ON i.id = d.issue_id;
