-- Why a finding fell back to the heuristic analyser, as a code (Finding.fallback_code): a
-- small fixed set to count and filter by, next to fallback_reason, the words for people.

ALTER TABLE mendline.findings ADD COLUMN fallback_code text;

-- Findings stored before this migration: their reasons were written by mendline in these
-- fixed forms, so the code is read from them this once (never again: new findings are
-- stored with their code).
UPDATE mendline.findings SET fallback_code = CASE
    WHEN fallback_reason LIKE 'the daily LLM budget is spent%' THEN 'budget_spent'
    WHEN fallback_reason LIKE 'the LLM circuit breaker is open%' THEN 'breaker_open'
    WHEN fallback_reason LIKE 'the LLM call failed: cannot reach the LLM endpoint%'
        THEN 'llm_unreachable'
    WHEN fallback_reason LIKE 'the LLM call failed: the LLM call timed out%' THEN 'llm_timeout'
    WHEN fallback_reason LIKE 'the LLM call failed: the LLM endpoint answered HTTP %'
        THEN 'llm_http_error'
    WHEN fallback_reason LIKE 'the LLM call failed: the LLM endpoint answered % without a chat completion%'
        THEN 'llm_bad_response'
    WHEN fallback_reason LIKE 'the LLM''s answer was invalid twice%' THEN 'invalid_answer'
    WHEN fallback_reason LIKE 'claimed % times without finishing' THEN 'abandoned_claim'
    WHEN fallback_reason LIKE 'the finding could not be stored%' THEN 'unstorable'
    -- 'the LLM analysis failed: ...', and anything edited by hand.
    ELSE 'unexpected_error'
END
WHERE fallback_reason IS NOT NULL;

-- The codes of FallbackCode in mendline/schemas/finding.py (a test keeps the two equal),
-- and never a code without a reason or a reason without a code.
ALTER TABLE mendline.findings
    ADD CONSTRAINT findings_fallback_code_check CHECK (fallback_code IN (
        'budget_spent', 'breaker_open', 'llm_unreachable', 'llm_timeout', 'llm_http_error',
        'llm_bad_response', 'invalid_answer', 'unexpected_error', 'abandoned_claim',
        'unstorable')),
    ADD CONSTRAINT findings_fallback_code_with_reason
        CHECK ((fallback_code IS NULL) = (fallback_reason IS NULL));

-- The view only grows: the new column goes last.
CREATE OR REPLACE VIEW mendline.issue_findings AS
SELECT DISTINCT ON (f.issue_id)
       f.issue_id, i.service, i.title, i.culprit, i.status, i.times_seen, i.last_seen,
       f.id AS finding_id, f.analyser, f.model, f.category, f.severity, f.confidence,
       f.root_cause, f.suggested_fix, f.fix_kind, f.fix_patch, f.fallback_reason,
       f.cached_from, f.verdict, f.verdict_note, f.created_at AS analysed_at,
       f.fallback_code
FROM mendline.findings f
JOIN mendline.issues i ON i.id = f.issue_id
ORDER BY f.issue_id, f.id DESC;
