-- The audit trail: one row per state change, by a person or by mendline itself, appended in
-- the transaction of the change (sinks/postgres/_audit.py, append_audit). Append-only: the
-- trigger below refuses UPDATE, DELETE and TRUNCATE, whoever asks. Hash-chained: row_hash is
-- the SHA-256 of the row's content and prev_hash (schemas/people.py, audit_hash), prev_hash
-- the row_hash of the row before it, so a row altered or removed behind the trigger's back
-- (a superuser can disable it) breaks the chain there: `mendline audit verify` says where.
CREATE TABLE IF NOT EXISTS mendline.audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL,
    actor_name     text NOT NULL,
    actor_role     text NOT NULL CHECK (actor_role IN ('viewer', 'responder', 'approver', 'admin')),
    actor_auth     text NOT NULL CHECK (actor_auth IN ('token', 'local', 'session', 'system')),
    actor_user_id  bigint,
    actor_token_id text,
    action         text NOT NULL,
    target         text NOT NULL,
    before         jsonb,
    after          jsonb,
    origin         text NOT NULL DEFAULT '',
    prev_hash      text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    row_hash       text NOT NULL CHECK (row_hash ~ '^[0-9a-f]{64}$')
);

CREATE INDEX IF NOT EXISTS audit_log_at ON mendline.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_action ON mendline.audit_log (action text_pattern_ops, id);
CREATE INDEX IF NOT EXISTS audit_log_target ON mendline.audit_log (target, id);
CREATE INDEX IF NOT EXISTS audit_log_actor ON mendline.audit_log (actor_name, id);

CREATE OR REPLACE FUNCTION mendline.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mendline.audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'audit rows are never changed or removed; append a new one instead';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_change ON mendline.audit_log;
CREATE TRIGGER audit_log_no_change
    BEFORE UPDATE OR DELETE ON mendline.audit_log
    FOR EACH ROW EXECUTE FUNCTION mendline.audit_log_append_only();

DROP TRIGGER IF EXISTS audit_log_no_truncate ON mendline.audit_log;
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON mendline.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.audit_log_append_only();

-- Public: every audit row (newest first when ordered by id DESC).
CREATE OR REPLACE VIEW mendline.audit_events AS
SELECT id, at, actor_name, actor_role, actor_auth, actor_user_id, actor_token_id, action,
       target, before, after, origin, prev_hash, row_hash
FROM mendline.audit_log;
