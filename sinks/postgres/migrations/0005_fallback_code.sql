-- Why a finding fell back to the heuristic analyser, as a code (Finding.fallback_code): a
-- small fixed set to count and filter by, next to fallback_reason, the words for people.

ALTER TABLE mendline.findings ADD COLUMN fallback_code text;

-- The code of a reason as mendline wrote it before codes existed: its fixed forms, read
-- this once for the findings already stored, and for any a mendline from before this
-- migration writes while an upgrade is rolling out (it sets a reason without a code).
CREATE FUNCTION mendline.fallback_code_of(reason text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
    WHEN reason IS NULL THEN NULL
    WHEN reason LIKE 'the daily LLM budget is spent%' THEN 'budget_spent'
    WHEN reason LIKE 'the LLM circuit breaker is open%' THEN 'breaker_open'
    WHEN reason LIKE 'the LLM call failed: cannot reach the LLM endpoint%'
        THEN 'llm_unreachable'
    WHEN reason LIKE 'the LLM call failed: the LLM call timed out%' THEN 'llm_timeout'
    WHEN reason LIKE 'the LLM call failed: the LLM endpoint answered HTTP %'
        THEN 'llm_http_error'
    WHEN reason LIKE
            'the LLM call failed: the LLM endpoint answered % without a chat completion%'
        THEN 'llm_bad_response'
    WHEN reason LIKE 'the LLM''s answer was invalid twice%' THEN 'invalid_answer'
    WHEN reason LIKE 'claimed % times without finishing' THEN 'abandoned_claim'
    WHEN reason LIKE 'the finding could not be stored%' THEN 'unstorable'
    -- 'the LLM analysis failed: ...', and anything edited by hand.
    ELSE 'unexpected_error'
END
$$;

UPDATE mendline.findings SET fallback_code = mendline.fallback_code_of(fallback_reason)
WHERE fallback_reason IS NOT NULL;

CREATE FUNCTION mendline.fill_fallback_code() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.fallback_reason IS NOT NULL AND NEW.fallback_code IS NULL THEN
        NEW.fallback_code := mendline.fallback_code_of(NEW.fallback_reason);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER findings_fill_fallback_code
BEFORE INSERT OR UPDATE OF fallback_reason, fallback_code ON mendline.findings
FOR EACH ROW EXECUTE FUNCTION mendline.fill_fallback_code();

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
