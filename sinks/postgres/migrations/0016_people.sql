-- People who act on mendline, each with a role (schemas/people.py ROLES), and their API
-- tokens. A disabled user keeps their row (the audit trail names them) and their tokens stop
-- authenticating.
CREATE TABLE IF NOT EXISTS mendline.users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('viewer', 'responder', 'approver', 'admin')),
    disabled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL
);

-- API tokens: ``mlt_<8 hex>_<secret>``, shown once. Only the visible id and the SHA-256 of
-- the whole token are kept: the secret has 256 bits of entropy, so a fast hash cannot be
-- brute-forced, and a slow one (bcrypt) would only slow every authenticated call. A token's
-- role is at most its user's (checked when it is made, and again when it is used).
CREATE TABLE IF NOT EXISTS mendline.api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id     text NOT NULL UNIQUE CHECK (token_id ~ '^mlt_[0-9a-f]{8}$'),
    secret_hash  text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    user_id      bigint NOT NULL REFERENCES mendline.users (id),
    role         text NOT NULL CHECK (role IN ('viewer', 'responder', 'approver', 'admin')),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    expires_at   timestamptz CHECK (expires_at > created_at),
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX IF NOT EXISTS api_tokens_user ON mendline.api_tokens (user_id);
