-- Silences, as Alertmanager has them: while one is active (starts_at <= now < ends_at, not
-- expired), an alert whose labels its matchers all match is not sent; its delivery is kept
-- as 'suppressed' with the silence's id. Matchers are [{"label", "op", "value"}], op one of
-- =, !=, =~, !~ (analyzers/policy/silences.py); they are decided when the alert is sent.

CREATE TABLE IF NOT EXISTS mendline.silences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers    jsonb       NOT NULL CHECK (jsonb_typeof(matchers) = 'array'
                                            AND jsonb_array_length(matchers) > 0),
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    created_by  text        NOT NULL,
    comment     text        NOT NULL CHECK (length(comment) BETWEEN 1 AND 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Ended early by someone (`mendline silences expire`).
    expired_at  timestamptz,
    expired_by  text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS silences_current ON mendline.silences (ends_at)
    WHERE expired_at IS NULL;

ALTER TABLE mendline.deliveries
    ADD COLUMN IF NOT EXISTS silence_id bigint REFERENCES mendline.silences (id);

-- The silences in effect now (public: a dashboard's "silenced" panel reads it).
CREATE OR REPLACE VIEW mendline.silences_active AS
SELECT s.id, s.matchers, s.starts_at, s.ends_at, s.created_by, s.comment, s.created_at,
       (SELECT count(*) FROM mendline.deliveries d WHERE d.silence_id = s.id) AS suppressed
FROM mendline.silences s
WHERE s.expired_at IS NULL AND s.starts_at <= now() AND s.ends_at > now();

-- The view only grows: which silence held a delivery back goes last.
CREATE OR REPLACE VIEW mendline.alert_deliveries AS
SELECT d.id, d.issue_id, i.service, i.title, d.receiver, d.kind, d.severity, d.mode, d.status,
       d.attempts, d.last_error, d.created_at, d.due_at, d.delivered_at, d.digest_of,
       d.finding_id IS NOT NULL AS with_root_cause,
       d.reasons,
       d.silence_id
FROM mendline.deliveries d
JOIN mendline.issues i ON i.id = d.issue_id;
