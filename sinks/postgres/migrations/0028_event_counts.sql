-- An event may stand for several identical occurrences (ErrorEvent's `count`: an emitter
-- rolled up the repeats of one error in a storm). Issue counters, per-minute counts and the
-- triggers add the count, not 1; the stored event keeps it.
ALTER TABLE mendline.events ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1;

-- issue_counts.count stays an integer: a minute of one issue saturates at 2^31 - 1 (the store
-- writes least(..., 2147483647)) rather than the migration rewriting the table, and dropping
-- the public views built on it, to widen the column.

-- Every stored event with its issue, and (new, last) how many occurrences it stands for.
CREATE OR REPLACE VIEW mendline.issue_events AS
SELECT e.issue_id, e.event_id, e."timestamp", e.received_at, e.service, e.environment,
       e.release, e.host, e.level, e.message, e.payload -> 'exceptions' AS exceptions,
       e.payload -> 'context' AS context, e.payload -> 'tags' AS tags, e.count
FROM mendline.events e;

-- Events the emitting processes counted but could not send (ErrorEvent's `lost`: a full
-- queue or spool), by service, host and minute of receipt: "N events not received".
CREATE TABLE IF NOT EXISTS mendline.lost_events (
    service text        NOT NULL,
    host    text        NOT NULL DEFAULT '',
    minute  timestamptz NOT NULL,
    lost    bigint      NOT NULL,
    PRIMARY KEY (service, host, minute)
);
