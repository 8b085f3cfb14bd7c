-- Sampling: of one issue's events in an hour, the first MENDLINE_EVENTS_FULL_PER_HOUR (and
-- the first of each fingerprint's release and environment) are stored whole, then a
-- reservoir sample of MENDLINE_EVENTS_SAMPLE_PER_HOUR; every event is still counted. What
-- read event rows to count reads counts instead: an unmerge's per-minute counts here, an
-- ignore's "events in the last hour" in 0030.
--
-- mendline.events is only read (shared locks) until the last statements: its new column
-- takes the table's exclusive lock at the end, for a moment. The issues table's change is
-- 0030, a transaction of its own: one holding both tables' exclusive locks could deadlock
-- with a process that uses them in the other order.

-- Per issue and hour of receipt: events received, stored whole, offered to the reservoir,
-- reservoir slots filled, and the fingerprint/release/environment triples stored.
CREATE TABLE IF NOT EXISTS mendline.event_samples (
    issue_id bigint      NOT NULL,
    hour     timestamptz NOT NULL,
    received bigint      NOT NULL,
    kept     integer     NOT NULL,
    offered  bigint      NOT NULL,
    sampled  integer     NOT NULL,
    pairs    text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (issue_id, hour)
);
CREATE INDEX IF NOT EXISTS event_samples_hour ON mendline.event_samples (hour);

-- Occurrences per fingerprint and minute of receipt, with the newest of them: what an
-- unmerge gives back, whichever events were stored.
CREATE TABLE IF NOT EXISTS mendline.fingerprint_counts (
    hash         text        NOT NULL,
    minute       timestamptz NOT NULL,
    count        integer     NOT NULL,
    last_seen    timestamptz NOT NULL,
    last_release text,
    PRIMARY KEY (hash, minute)
);
CREATE INDEX IF NOT EXISTS fingerprint_counts_minute ON mendline.fingerprint_counts (minute);

-- Until now every event was stored: its rows count exactly.
INSERT INTO mendline.fingerprint_counts (hash, minute, count, last_seen, last_release)
SELECT fingerprint, date_trunc('minute', received_at), least(sum(count), 2147483647),
       max("timestamp"), (array_agg(release ORDER BY "timestamp" DESC))[1]
FROM mendline.events
GROUP BY 1, 2
ON CONFLICT (hash, minute) DO NOTHING;

-- A reservoir event's slot (0 .. MENDLINE_EVENTS_SAMPLE_PER_HOUR - 1) in its issue's hour,
-- which a later event may take (it is then deleted); -1: kept as a sample, in no reservoir
-- any more (a merge moved it); NULL: stored whole.
ALTER TABLE mendline.events ADD COLUMN IF NOT EXISTS sample_slot smallint;

-- Every stored event with its issue, how many occurrences it stands for, and (new, last)
-- whether it was kept as a sample: its issue had more events that hour than were stored.
CREATE OR REPLACE VIEW mendline.issue_events AS
SELECT e.issue_id, e.event_id, e."timestamp", e.received_at, e.service, e.environment,
       e.release, e.host, e.level, e.message, e.payload -> 'exceptions' AS exceptions,
       e.payload -> 'context' AS context, e.payload -> 'tags' AS tags, e.count,
       e.sample_slot IS NOT NULL AS sampled
FROM mendline.events e;

-- Per issue and hour of receipt (while sampling is on): the events received and how many of
-- them were stored. An hour with stored < received was sampled. As the events came: a merge
-- since moves the rows, not these figures.
CREATE OR REPLACE VIEW mendline.issue_sampling AS
SELECT s.issue_id, s.hour, s.received, s.kept + s.sampled AS stored
FROM mendline.event_samples s;
