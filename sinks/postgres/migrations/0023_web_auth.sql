-- The dashboard's login: users' passwords, sessions, the back-off of failed logins, and the
-- trusted proxy as a way of telling who acts.

-- A user's password as its argon2id hash (the PHC string: algorithm, parameters, salt and
-- hash; analyzers/policy/login.py). NULL: no password, so no dashboard login by form (API
-- tokens and a trusted proxy still work).
ALTER TABLE mendline.users ADD COLUMN IF NOT EXISTS password_hash text
    CHECK (password_hash LIKE '$argon2%');
ALTER TABLE mendline.users ADD COLUMN IF NOT EXISTS password_set_at timestamptz;

-- Dashboard sessions. The cookie holds a 32-byte random secret; only its SHA-256 is the id
-- here, so a copy of this table logs no one in. A session ends at expires_at (the absolute
-- lifetime, web_session_max, from its start) or after web_session_idle without use
-- (last_seen_at, written at most once a minute); the user's role and whether they are
-- disabled are read from mendline.users at every request.
CREATE TABLE IF NOT EXISTS mendline.web_sessions (
    id           text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    user_id      bigint      NOT NULL REFERENCES mendline.users (id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL CHECK (length(csrf_token) BETWEEN 32 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
    client       text        NOT NULL DEFAULT '' CHECK (length(client) <= 100),
    user_agent   text        NOT NULL DEFAULT '' CHECK (length(user_agent) <= 300)
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON mendline.web_sessions (user_id);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON mendline.web_sessions (expires_at);
CREATE INDEX IF NOT EXISTS web_sessions_last_seen ON mendline.web_sessions (last_seen_at);

-- Failed logins by key: 'user:<name>' (an account, known or not), 'addr:<client address>',
-- 'pair:<address> <name>' (an account from an address: what a success there forgives on the
-- address). The next attempt of a key waits until blocked_until (analyzers/policy/login.py:
-- the free failures, then 1 s doubling up to 15 minutes). Rows a day old are forgotten.
CREATE TABLE IF NOT EXISTS mendline.login_failures (
    key             text        PRIMARY KEY CHECK (length(key) <= 400),
    failures        integer     NOT NULL CHECK (failures >= 0),
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz
);
CREATE INDEX IF NOT EXISTS login_failures_last ON mendline.login_failures (last_failure_at);

-- 'proxy': a user told apart by a trusted SSO proxy's header (web_auth_proxy_header).
ALTER TABLE mendline.audit_log DROP CONSTRAINT IF EXISTS audit_log_actor_auth_check;
ALTER TABLE mendline.audit_log ADD CONSTRAINT audit_log_actor_auth_check
    CHECK (actor_auth IN ('token', 'local', 'session', 'proxy', 'system'));
ALTER TABLE mendline.fix_jobs DROP CONSTRAINT IF EXISTS fix_jobs_requested_auth_check;
ALTER TABLE mendline.fix_jobs ADD CONSTRAINT fix_jobs_requested_auth_check
    CHECK (requested_auth IN ('token', 'local', 'session', 'proxy', 'system'));
