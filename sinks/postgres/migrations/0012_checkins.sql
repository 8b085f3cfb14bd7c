-- Heartbeat check-ins (CheckIn v1 from the check-ins topic), one row each: checkin_id makes a
-- redelivery change nothing. ``timestamp`` is the sender's clock, unless it was more than
-- five minutes ahead of the Kafka record's timestamp: then it is the record's, the sender's
-- kept in ``sent_timestamp`` (``clamped``), so one bad clock cannot move the stream clock.
CREATE TABLE IF NOT EXISTS mendline.checkins (
    checkin_id      uuid PRIMARY KEY,
    check_name      text NOT NULL,
    status          text NOT NULL CHECK (status IN ('start', 'ok', 'fail')),
    run_id          text,
    environment     text NOT NULL,
    timestamp       timestamptz NOT NULL,
    sent_timestamp  timestamptz,
    clamped         boolean NOT NULL DEFAULT false,
    received_at     timestamptz NOT NULL DEFAULT now(),
    duration        double precision CHECK (duration >= 0),
    message         text,
    host            text,
    kafka_partition integer,
    kafka_offset    bigint
);

CREATE INDEX IF NOT EXISTS checkins_check_time
    ON mendline.checkins (check_name, timestamp);

-- The stream clock: the newest check-in timestamp consumed so far, per environment and for
-- all of them (environment '*'). It only moves forward (GREATEST); the monitor judges missed
-- runs against it, so a paused consumer never makes every heartbeat look missed.
CREATE TABLE IF NOT EXISTS mendline.checkin_clock (
    environment text PRIMARY KEY,
    newest      timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Public: the check-ins of the last seven days, newest first.
CREATE OR REPLACE VIEW mendline.checkins_recent AS
SELECT checkin_id, check_name, status, run_id, environment, timestamp, received_at,
       duration, message, host, clamped, sent_timestamp
FROM mendline.checkins
WHERE timestamp > now() - interval '7 days'
ORDER BY timestamp DESC;
