-- Root-cause analysis: the work queue on triggers, findings, people's verdicts, LLM usage.

-- New-issue and regression triggers are the analysis queue. A worker claims one with
-- FOR UPDATE SKIP LOCKED and a lease (committed, so the long LLM call holds no lock); a worker
-- killed mid-call leaves the lease to run out, and the trigger is claimed again.
ALTER TABLE mendline.triggers
    ADD COLUMN analysed_at          timestamptz,
    ADD COLUMN analysis_lease_until timestamptz,
    ADD COLUMN analysis_owner       text,
    ADD COLUMN analysis_attempts    integer NOT NULL DEFAULT 0;
CREATE INDEX triggers_to_analyse ON mendline.triggers (id)
    WHERE analysed_at IS NULL AND kind IN ('new_issue', 'regression');

CREATE TABLE mendline.findings (
    id                bigserial   PRIMARY KEY,
    issue_id          bigint      NOT NULL REFERENCES mendline.issues (id),
    -- NULL for an analysis asked for by a person (`mendline analyze --issue`).
    trigger_id        bigint      UNIQUE REFERENCES mendline.triggers (id),
    -- The fingerprint and release it was made for: a re-analysis of the same pair is served
    -- from here, with no LLM call.
    cache_key         text        NOT NULL,
    analyser          text        NOT NULL CHECK (analyser IN ('heuristic', 'llm')),
    rule              text,
    root_cause        text        NOT NULL,
    confidence        real        NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    category          text        NOT NULL,
    severity          text        NOT NULL
                      CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    suggested_fix     text        NOT NULL,
    fix_patch         text,
    fix_kind          text,
    evidence          jsonb       NOT NULL DEFAULT '[]',
    model             text,
    prompt_tokens     integer,
    completion_tokens integer,
    cost_usd          numeric(14, 6),
    latency_ms        integer,
    -- Why the LLM's answer was not used (breaker open, budget spent, invalid twice...).
    fallback_reason   text,
    -- The exact chat messages sent, for audit.
    prompt            jsonb,
    cached_from       bigint      REFERENCES mendline.findings (id),
    verdict           text        CHECK (verdict IN ('right', 'wrong')),
    verdict_note      text,
    verdict_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX findings_issue ON mendline.findings (issue_id, id DESC);
CREATE INDEX findings_cache ON mendline.findings (cache_key, id DESC) WHERE cached_from IS NULL;

-- Every LLM call, whatever came of it: the daily budget is the sum of today's rows.
CREATE TABLE mendline.llm_calls (
    id                bigserial   PRIMARY KEY,
    issue_id          bigint      REFERENCES mendline.issues (id),
    model             text        NOT NULL,
    outcome           text        NOT NULL,
    prompt_tokens     integer     NOT NULL DEFAULT 0,
    completion_tokens integer     NOT NULL DEFAULT 0,
    cost_usd          numeric(14, 6) NOT NULL DEFAULT 0,
    latency_ms        integer     NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_created ON mendline.llm_calls (created_at);

-- The newest finding of every issue, with the issue: what people read first.
CREATE VIEW mendline.issue_findings AS
SELECT DISTINCT ON (f.issue_id)
       f.issue_id, i.service, i.title, i.culprit, i.status, i.times_seen, i.last_seen,
       f.id AS finding_id, f.analyser, f.model, f.category, f.severity, f.confidence,
       f.root_cause, f.suggested_fix, f.fix_kind, f.fix_patch, f.fallback_reason,
       f.cached_from, f.verdict, f.verdict_note, f.created_at AS analysed_at
FROM mendline.findings f
JOIN mendline.issues i ON i.id = f.issue_id
ORDER BY f.issue_id, f.id DESC;

-- LLM calls, tokens and money per day (UTC) and model.
CREATE VIEW mendline.llm_usage_daily AS
SELECT date_trunc('day', c.created_at AT TIME ZONE 'UTC') AS day, c.model,
       count(*) AS calls,
       count(*) FILTER (WHERE c.outcome = 'ok') AS answered,
       sum(c.prompt_tokens + c.completion_tokens)::bigint AS tokens,
       sum(c.cost_usd) AS cost_usd
FROM mendline.llm_calls c
GROUP BY 1, 2;
