-- Several alert and analyze workers side by side: one owner per alert receiver, one LLM
-- analysis per fingerprint and release at a time, the LLM budget reserved before a call; and
-- triggers that carry their event's environment and tags, so that routing reads no events.
-- IF NOT EXISTS throughout: safe to run again over a schema that has some of it.

-- The environment and tags of the newest event of the batch that made the trigger, written
-- with it. NULL on triggers from before (and on resolves): routing looks at the events then.
-- json as in events.payload: attacker-controlled strings may hold what jsonb refuses (\u0000).
ALTER TABLE mendline.triggers
    ADD COLUMN IF NOT EXISTS environment text,
    ADD COLUMN IF NOT EXISTS tags        json;

-- The alert worker that sends to a receiver: it alone paces the receiver's messages and
-- builds its digests. Taken when free or expired, renewed while held, deleted on a clean
-- stop; a killed worker's expires and another takes the receiver over.
CREATE TABLE IF NOT EXISTS mendline.receiver_leases (
    receiver   text        PRIMARY KEY,
    owner      text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The fingerprint and release (a finding's cache_key) an analyze worker is analysing now:
-- another worker with a trigger of the same key waits for its finding instead of asking
-- the LLM again. Deleted when the finding is stored; a killed worker's expires.
CREATE TABLE IF NOT EXISTS mendline.analyses_in_flight (
    cache_key  text        PRIMARY KEY,
    owner      text        NOT NULL,
    trigger_id bigint,
    expires_at timestamptz NOT NULL
);

-- LLM budget taken by analyses in flight, at an estimate: granted under an advisory lock
-- while today's calls and the other reservations leave budget, deleted once the calls are
-- recorded in llm_calls. A killed worker's expires.
CREATE TABLE IF NOT EXISTS mendline.llm_reservations (
    id         bigserial      PRIMARY KEY,
    owner      text           NOT NULL,
    tokens     bigint         NOT NULL,
    cost_usd   numeric(14, 6) NOT NULL,
    expires_at timestamptz    NOT NULL
);
