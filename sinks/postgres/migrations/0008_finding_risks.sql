-- What a person must look at before acting on a finding (Finding.risks in
-- mendline/schemas/finding.py): a suggested fix or patch that runs a shell command, fetches a
-- URL or executes code, or a severity the answer asked for and did not get. The fix stage
-- must refuse to apply a patch whose finding has any. Findings from before have none.

ALTER TABLE mendline.findings ADD COLUMN risks text[] NOT NULL DEFAULT '{}';

-- The view only grows: the new column goes last.
CREATE OR REPLACE VIEW mendline.issue_findings AS
SELECT DISTINCT ON (f.issue_id)
       f.issue_id, i.service, i.title, i.culprit, i.status, i.times_seen, i.last_seen,
       f.id AS finding_id, f.analyser, f.model, f.category, f.severity, f.confidence,
       f.root_cause, f.suggested_fix, f.fix_kind, f.fix_patch, f.fallback_reason,
       f.cached_from, f.verdict, f.verdict_note, f.created_at AS analysed_at,
       f.fallback_code, f.risks
FROM mendline.findings f
JOIN mendline.issues i ON i.id = f.issue_id
ORDER BY f.issue_id, f.id DESC;
