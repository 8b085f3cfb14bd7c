-- Review rules learned from findings marked right (`mendline review`): the shape of the
-- issue's culprit line (analyzers/review's shape of it), the line itself as an example, and
-- the issue and finding that taught it. One rule per shape: a second finding with the same
-- shape teaches nothing new. A disabled rule is kept (and stays disabled when the same
-- shape is learned again) but not applied.

CREATE TABLE IF NOT EXISTS mendline.review_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shape       text        NOT NULL UNIQUE CHECK (length(shape) BETWEEN 1 AND 4000),
    example     text        NOT NULL,
    title       text        NOT NULL,
    issue_id    bigint      NOT NULL REFERENCES mendline.issues (id),
    finding_id  bigint      REFERENCES mendline.findings (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    disabled_by text
);

-- The learned rules, whether they apply, and how their issue was fixed when that is known: the
-- note it was resolved with, else the suggested fix of the finding that taught the rule (public:
-- `mendline review rules list` and the review read it).
CREATE OR REPLACE VIEW mendline.learned_review_rules AS
SELECT r.id, 'MRL' || r.id AS rule_id, r.shape, r.example, r.title, r.issue_id, r.finding_id,
       r.created_at, r.disabled_at, r.disabled_by, r.disabled_at IS NULL AS active,
       coalesce(nullif(btrim(i.resolution_note), ''), nullif(btrim(f.suggested_fix), '')) AS fix
FROM mendline.review_rules r
JOIN mendline.issues i ON i.id = r.issue_id
LEFT JOIN mendline.findings f ON f.id = r.finding_id;
