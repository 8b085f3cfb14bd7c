-- The relay's keys (`mendline keys`): each the public key of a Sentry DSN, speaking for one
-- service (an HTTP producer cannot claim another) with a default environment. The DSN's
-- project id is the first key's id of a line of rotations, so a rotated key's DSN differs
-- only in its key. A key is refused from revoked_at on: a rotation sets it ahead (a grace
-- while apps move to the new DSN). Public keys are not secrets (browsers send them).

CREATE TABLE IF NOT EXISTS mendline.relay_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_key      text        NOT NULL UNIQUE CHECK (public_key ~ '^[0-9a-f]{32}$'),
    project_id      bigint      NOT NULL,
    service         text        NOT NULL CHECK (length(service) BETWEEN 1 AND 200),
    environment     text        NOT NULL CHECK (length(environment) BETWEEN 1 AND 200),
    label           text        NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    -- Browser origins allowed to send (CORS): '*' any; a request without an Origin always is.
    allowed_origins text[]      NOT NULL DEFAULT '{*}',
    -- Events a minute (a token bucket of as many); NULL: MENDLINE_RELAY_RATE_LIMIT; 0: none.
    rate_limit      integer     CHECK (rate_limit IS NULL OR rate_limit >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL,
    revoked_at      timestamptz,
    rotated_to      bigint      REFERENCES mendline.relay_keys (id)
);

CREATE INDEX IF NOT EXISTS relay_keys_project ON mendline.relay_keys (project_id);
