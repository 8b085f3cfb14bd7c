-- Health checks: the registry of checks (from the checks file), when each runs next and who
-- runs it, where each stands, every result (partitioned by day), and rollups per minute, hour
-- and day that keep uptime and response-time percentiles long after the results are gone.

-- The checks file as last synced. A name that left the file is retired, not deleted: its
-- history stays, and it is taken up again (state and all) if the name comes back.
CREATE TABLE mendline.checks (
    name             text        PRIMARY KEY,
    kind             text        NOT NULL
                     CHECK (kind IN ('http', 'tcp', 'dns', 'tls', 'postgres', 'kafka', 'heartbeat')),
    definition       jsonb       NOT NULL,
    -- sha256 of the definition's canonical JSON: an unchanged check is left alone.
    definition_hash  text        NOT NULL,
    environment      text        NOT NULL,
    service          text        NOT NULL,
    tags             jsonb       NOT NULL DEFAULT '{}',
    severity         text        NOT NULL,
    interval_seconds float8      NOT NULL CHECK (interval_seconds > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz
);

-- When each probed check runs next (heartbeats have no row: their check-ins drive them).
-- slot_at is the slot a monitor claimed, until lease_until; a killed monitor's slot is
-- claimed again, the same slot_at, once its lease ran out.
CREATE TABLE mendline.check_schedule (
    check_name  text        PRIMARY KEY REFERENCES mendline.checks (name),
    next_due    timestamptz NOT NULL,
    slot_at     timestamptz,
    owner       text,
    lease_until timestamptz,
    attempts    integer     NOT NULL DEFAULT 0
);
CREATE INDEX check_schedule_due ON mendline.check_schedule (next_due);

-- Where each check stands (analyzers.health.judge's CheckState) and its issue. version is
-- the compare-and-set: a state is written only over the one it was judged from.
-- last_result_at is the slot of the newest result judged (a heartbeat's "judged until").
CREATE TABLE mendline.check_state (
    check_name     text        PRIMARY KEY REFERENCES mendline.checks (name),
    status         text        NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'up', 'down')),
    since          timestamptz,
    failures       integer     NOT NULL DEFAULT 0,
    successes      integer     NOT NULL DEFAULT 0,
    changes        timestamptz[] NOT NULL DEFAULT '{}',
    flapping       boolean     NOT NULL DEFAULT false,
    last_result_at timestamptz,
    last_success   boolean,
    last_error     text,
    issue_id       bigint      REFERENCES mendline.issues (id),
    version        bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every result, partitioned by the day of its slot (the unique key must hold the partition
-- key): a slot's result is stored once, whichever monitor ran it and however often.
-- conditions and timings are json, stored as written: they quote what a probe saw.
CREATE TABLE mendline.check_results_raw (
    check_name   text        NOT NULL,
    scheduled_at timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    duration     float8      NOT NULL,
    success      boolean     NOT NULL,
    maintenance  boolean     NOT NULL DEFAULT false,
    conditions   json        NOT NULL DEFAULT '[]',
    timings      json        NOT NULL DEFAULT '{}',
    error        text,
    error_kind   text,
    owner        text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (check_name, scheduled_at)
) PARTITION BY RANGE (scheduled_at);
-- Catches results outside the daily partitions (the monitor creates those ahead of time).
CREATE TABLE mendline.check_results_raw_default PARTITION OF mendline.check_results_raw DEFAULT;

-- Per check and minute, hour or day (width): results, failures, results in maintenance
-- (counted apart, left out of availability), the seconds observed and the seconds down
-- (each result outside maintenance adds the time since the check's previous result, capped
-- at two intervals, to observed, and to down when the check is down after it), and the
-- response times of the results that got an answer: their sum and a histogram (hour and day
-- only) of mendline.histogram_quantile's buckets, merged by element-wise sums.
CREATE TABLE mendline.check_rollups (
    check_name        text        NOT NULL,
    width             text        NOT NULL CHECK (width IN ('minute', 'hour', 'day')),
    bucket            timestamptz NOT NULL,
    count             integer     NOT NULL DEFAULT 0,
    failures          integer     NOT NULL DEFAULT 0,
    maintenance_count integer     NOT NULL DEFAULT 0,
    observed_seconds  float8      NOT NULL DEFAULT 0,
    downtime_seconds  float8      NOT NULL DEFAULT 0,
    response_count    integer     NOT NULL DEFAULT 0,
    response_sum_ms   float8      NOT NULL DEFAULT 0,
    histogram         integer[],
    PRIMARY KEY (check_name, width, bucket)
);
CREATE INDEX check_rollups_bucket ON mendline.check_rollups (width, bucket);

-- Response-time histogram buckets, in ms: bucket 0 is below 1 ms, bucket k (1..136) is
-- [2^((k-1)/8), 2^(k/8)) ms, bucket 137 is 2^17 ms (131 s) and above. A histogram is an
-- integer[] whose element k + 1 counts bucket k, sparse: it spans only from its first to its
-- last bucket in use (its lower bound says where it starts, '[41:60]={...}'). A quantile is
-- read as its bucket's geometric middle: within 4.4 % of the true value between 1 ms and
-- 131 s. analyzers.health.sketch holds the same logic in Python.
CREATE FUNCTION mendline.histogram_quantile(buckets integer[], q float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    total  bigint;
    target bigint;
    seen   bigint := 0;
    last   constant integer := 138;  -- the index of the last bucket, 2^17 ms and above
BEGIN
    SELECT coalesce(sum(x), 0) INTO total FROM unnest(buckets) AS x;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    target := greatest(1, ceil(least(greatest(q, 0), 1) * total));
    FOR i IN array_lower(buckets, 1) .. array_upper(buckets, 1) LOOP
        seen := seen + coalesce(buckets[i], 0);
        IF seen >= target THEN
            RETURN CASE WHEN i <= 1 THEN 0.5
                        WHEN i >= last THEN power(2, (last - 2) / 8.0)
                        ELSE power(2, (i - 1.5) / 8.0) END;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- Element-wise sum of two histograms (NULL is empty), spanning both; histogram_merge sums a
-- column of them.
CREATE FUNCTION mendline.histogram_add(a integer[], b integer[])
RETURNS integer[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    sum integer[] := '{}';
BEGIN
    IF a IS NULL OR cardinality(a) = 0 THEN
        RETURN b;
    ELSIF b IS NULL OR cardinality(b) = 0 THEN
        RETURN a;
    END IF;
    -- Assigning from the lowest index up builds an array with that lower bound.
    FOR i IN least(array_lower(a, 1), array_lower(b, 1))
             .. greatest(array_upper(a, 1), array_upper(b, 1)) LOOP
        sum[i] := coalesce(a[i], 0) + coalesce(b[i], 0);
    END LOOP;
    RETURN sum;
END $$;
CREATE AGGREGATE mendline.histogram_merge(integer[]) (
    SFUNC = mendline.histogram_add,
    STYPE = integer[]
);

-- The histogram with all its buckets (element k + 1 counts bucket k), for tools that read
-- a plain array.
CREATE FUNCTION mendline.histogram_dense(buckets integer[])
RETURNS integer[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(coalesce(buckets[i], 0) ORDER BY i) FROM generate_series(1, 138) AS i
$$;

-- Daily partitions of mendline.check_results_raw from `start_day` for `days` days; idempotent.
CREATE FUNCTION mendline.ensure_check_results_partitions(start_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    made integer := 0;
    day  date;
    name text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mendline.ensure_check_results_partitions'));
    FOR i IN 0 .. days - 1 LOOP
        day := start_day + i;
        name := 'check_results_raw_' || to_char(day, 'YYYYMMDD');
        IF to_regclass('mendline.' || name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE mendline.%I PARTITION OF mendline.check_results_raw
                 FOR VALUES FROM (%L) TO (%L)', name,
                day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;

-- Each check in the file (not retired): where it stands, its last result and its issue.
CREATE VIEW mendline.check_status AS
SELECT c.name, c.kind, c.service, c.environment, c.severity, c.interval_seconds,
       s.status, s.since, s.flapping, s.failures, s.successes,
       s.last_result_at, s.last_success, s.last_error, s.issue_id,
       d.next_due
FROM mendline.checks c
JOIN mendline.check_state s ON s.check_name = c.name
LEFT JOIN mendline.check_schedule d ON d.check_name = c.name
WHERE c.retired_at IS NULL;

-- The results kept (MENDLINE_CHECK_RESULTS_RETENTION_DAYS), readable.
CREATE VIEW mendline.check_results AS
SELECT r.check_name, c.kind, c.service, c.environment, r.scheduled_at, r.started_at,
       round((r.duration * 1000)::numeric, 1) AS duration_ms,
       round(((r.timings ->> 'total')::float8 * 1000)::numeric, 1) AS response_ms,
       r.success, r.maintenance, r.error, r.error_kind, r.conditions, r.timings, r.owner
FROM mendline.check_results_raw r
LEFT JOIN mendline.checks c ON c.name = r.check_name;

-- Per check and UTC day: availability by count (successes among the results outside
-- maintenance) and by time (1 - seconds down / seconds observed), maintenance counted apart.
CREATE VIEW mendline.uptime_daily AS
SELECT r.check_name, c.kind, c.service, c.environment, (r.bucket AT TIME ZONE 'UTC')::date AS day,
       r.count AS results, r.failures, r.maintenance_count AS maintenance_results,
       r.count - r.maintenance_count AS counted_results,
       CASE WHEN r.count > r.maintenance_count
            THEN (r.count - r.maintenance_count - r.failures)::float8
                 / (r.count - r.maintenance_count) END AS availability,
       CASE WHEN r.observed_seconds > 0
            THEN greatest(0, 1 - r.downtime_seconds / r.observed_seconds) END
           AS availability_by_time,
       r.downtime_seconds, r.observed_seconds
FROM mendline.check_rollups r
LEFT JOIN mendline.checks c ON c.name = r.check_name
WHERE r.width = 'day';

-- Per check and hour: results, failures and response-time percentiles in ms (within 4.4 %).
CREATE VIEW mendline.response_time_hourly AS
SELECT r.check_name, c.kind, c.service, c.environment, r.bucket AS hour,
       r.count AS results, r.failures, r.response_count,
       CASE WHEN r.response_count > 0 THEN r.response_sum_ms / r.response_count END AS mean_ms,
       mendline.histogram_quantile(r.histogram, 0.5) AS p50_ms,
       mendline.histogram_quantile(r.histogram, 0.95) AS p95_ms,
       mendline.histogram_quantile(r.histogram, 0.99) AS p99_ms,
       r.histogram
FROM mendline.check_rollups r
LEFT JOIN mendline.checks c ON c.name = r.check_name
WHERE r.width = 'hour';
