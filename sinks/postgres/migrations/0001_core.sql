-- Issues, their fingerprints, stored events, deduplication and triggers.
-- Everything lives in schema mendline. Tables may change between releases; the views
-- (0002_views.sql and later) are the public interface and change only additively.

CREATE TABLE mendline.issues (
    id              bigserial PRIMARY KEY,
    service         text        NOT NULL,
    -- The fingerprint that created the issue; new fingerprints are upserted on it, so two
    -- consumers that see a new bug at the same moment create one issue, not two.
    primary_hash    text        NOT NULL UNIQUE,
    title           text        NOT NULL,
    culprit         text,
    level           text        NOT NULL,
    level_rank      smallint    NOT NULL,
    status          text        NOT NULL DEFAULT 'unresolved'
                    CHECK (status IN ('unresolved', 'resolved', 'ignored', 'merged')),
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    times_seen      bigint      NOT NULL DEFAULT 0,
    first_release   text,
    last_release    text,
    environments    text[]      NOT NULL DEFAULT '{}',
    hosts           text[]      NOT NULL DEFAULT '{}',
    resolved_at     timestamptz,
    resolution_note text,
    regressed_at    timestamptz,
    regressions     integer     NOT NULL DEFAULT 0,
    merged_into     bigint      REFERENCES mendline.issues (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX issues_open_by_service ON mendline.issues (service, last_seen DESC)
    WHERE status = 'unresolved';

-- Which issue a fingerprint belongs to. An issue can own several (a merge, or a later
-- grouping algorithm), so a change of algorithm never silently splits an existing issue.
CREATE TABLE mendline.fingerprints (
    hash              text        PRIMARY KEY,
    issue_id          bigint      NOT NULL REFERENCES mendline.issues (id),
    algorithm_version integer     NOT NULL,
    basis             text        NOT NULL,
    components        text[]      NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fingerprints_issue ON mendline.fingerprints (issue_id);

-- Every event id ever stored (pruned with the events' retention): a redelivered event is
-- recognised here and changes nothing.
CREATE TABLE mendline.event_ids (
    event_id    uuid        PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_ids_received ON mendline.event_ids (received_at);

-- The events, partitioned by the day they were received (the emitter's clock is not
-- trusted to pick a partition); old days are dropped whole by `mendline events prune`.
CREATE TABLE mendline.events (
    event_id        uuid        NOT NULL,
    issue_id        bigint      NOT NULL,
    received_at     timestamptz NOT NULL,
    "timestamp"     timestamptz NOT NULL,
    service         text        NOT NULL,
    environment     text        NOT NULL,
    release         text,
    host            text,
    level           text        NOT NULL,
    message         text        NOT NULL,
    fingerprint     text        NOT NULL,
    -- json, not jsonb: stored as sent (scrubbed), without the cost of a binary form;
    -- the -> and ->> operators work on it alike.
    payload         json        NOT NULL,
    kafka_partition integer,
    kafka_offset    bigint
) PARTITION BY RANGE (received_at);
CREATE INDEX events_by_issue ON mendline.events (issue_id, received_at DESC);
-- Catches rows outside the daily partitions (the consumer creates those ahead of time).
CREATE TABLE mendline.events_default PARTITION OF mendline.events DEFAULT;

-- Events per issue per minute of receipt: frequency triggers and error-rate views.
CREATE TABLE mendline.issue_counts (
    issue_id bigint      NOT NULL REFERENCES mendline.issues (id),
    minute   timestamptz NOT NULL,
    count    integer     NOT NULL,
    PRIMARY KEY (issue_id, minute)
);
CREATE INDEX issue_counts_minute ON mendline.issue_counts (minute);

-- Work for the later stages (analysis, alerting), written in the same transaction as the
-- events that caused it. dedup_key makes each trigger exist once, whatever is replayed.
CREATE TABLE mendline.triggers (
    id         bigserial   PRIMARY KEY,
    issue_id   bigint      NOT NULL REFERENCES mendline.issues (id),
    kind       text        NOT NULL CHECK (kind IN ('new_issue', 'regression', 'frequency')),
    dedup_key  text        NOT NULL UNIQUE,
    details    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX triggers_issue ON mendline.triggers (issue_id);

-- Daily partitions of mendline.events from `start_day` for `days` days; idempotent.
CREATE FUNCTION mendline.ensure_event_partitions(start_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    made integer := 0;
    day  date;
    name text;
BEGIN
    -- Two consumers may start a new day at once.
    PERFORM pg_advisory_xact_lock(hashtext('mendline.ensure_event_partitions'));
    FOR i IN 0 .. days - 1 LOOP
        day := start_day + i;
        name := 'events_' || to_char(day, 'YYYYMMDD');
        IF to_regclass('mendline.' || name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE mendline.%I PARTITION OF mendline.events
                 FOR VALUES FROM (%L) TO (%L)', name,
                day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;
