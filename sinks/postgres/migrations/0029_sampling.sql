-- Sampling: of one issue's events in an hour, the first MENDLINE_EVENTS_FULL_PER_HOUR (and
-- the first of each release and environment) are stored whole, then a reservoir sample of
-- MENDLINE_EVENTS_SAMPLE_PER_HOUR; every event is still counted. What read event rows to
-- count (an unmerge's per-minute counts, an ignore's "events in the last hour") reads these
-- counts instead.

-- Per issue and hour of receipt: events received, stored whole, offered to the reservoir,
-- reservoir slots filled, and the release/environment pairs stored (release, chr(31),
-- environment).
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

-- A reservoir event's slot (0 .. MENDLINE_EVENTS_SAMPLE_PER_HOUR - 1) in its issue's hour;
-- NULL for an event stored whole. A later event that takes the slot replaces it.
ALTER TABLE mendline.events ADD COLUMN IF NOT EXISTS sample_slot smallint;

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

-- Until now every event was stored: its rows count exactly.
INSERT INTO mendline.fingerprint_counts (hash, minute, count, last_seen, last_release)
SELECT fingerprint, date_trunc('minute', received_at), least(sum(count), 2147483647),
       max("timestamp"), (array_agg(release ORDER BY "timestamp" DESC))[1]
FROM mendline.events
GROUP BY 1, 2
ON CONFLICT (hash, minute) DO NOTHING;

-- The occurrences of the minute an ignore was made in that came before it: an ignore "N per
-- hour" counts that minute's later ones from its per-minute count.
ALTER TABLE mendline.issues ADD COLUMN IF NOT EXISTS ignore_minute_seen integer;
UPDATE mendline.issues i SET ignore_minute_seen = (
    SELECT coalesce(sum(e.count), 0) FROM mendline.events e
    WHERE e.issue_id = i.id AND e.received_at >= date_trunc('minute', i.ignored_at)
      AND e.received_at <= i.ignored_at)
WHERE i.status = 'ignored' AND i.ignore_per_hour IS NOT NULL;

-- Every stored event with its issue, how many occurrences it stands for, and (new, last)
-- whether it was kept as a sample: its issue had more events that hour than were stored.
CREATE OR REPLACE VIEW mendline.issue_events AS
SELECT e.issue_id, e.event_id, e."timestamp", e.received_at, e.service, e.environment,
       e.release, e.host, e.level, e.message, e.payload -> 'exceptions' AS exceptions,
       e.payload -> 'context' AS context, e.payload -> 'tags' AS tags, e.count,
       e.sample_slot IS NOT NULL AS sampled
FROM mendline.events e;

-- Per issue and hour: the events received and how many of them were stored. An hour with
-- stored < received was sampled.
CREATE OR REPLACE VIEW mendline.issue_sampling AS
SELECT s.issue_id, s.hour, s.received, s.kept + s.sampled AS stored
FROM mendline.event_samples s;
