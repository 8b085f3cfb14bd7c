-- The public SQL interface: people write queries and dashboards against these views.
-- They change only additively (new columns at the end, new views).

-- Open issues, most recently seen first within each service.
CREATE VIEW mendline.open_issues AS
SELECT i.id, i.service, i.title, i.culprit, i.level, i.times_seen, i.first_seen, i.last_seen,
       i.first_release, i.last_release, i.environments, i.regressed_at
FROM mendline.issues i
WHERE i.status = 'unresolved';

-- Every stored event with its issue; filter on issue_id and order by received_at DESC for an
-- issue's recent events.
CREATE VIEW mendline.issue_events AS
SELECT e.issue_id, e.event_id, e."timestamp", e.received_at, e.service, e.environment,
       e.release, e.host, e.level, e.message, e.payload -> 'exceptions' AS exceptions,
       e.payload -> 'context' AS context, e.payload -> 'tags' AS tags
FROM mendline.events e;

-- Events per service per hour (of receipt).
CREATE VIEW mendline.error_rate_hourly AS
SELECT i.service, date_trunc('hour', c.minute) AS hour, sum(c.count)::bigint AS events,
       count(DISTINCT c.issue_id) AS issues
FROM mendline.issue_counts c
JOIN mendline.issues i ON i.id = c.issue_id
GROUP BY i.service, date_trunc('hour', c.minute);

-- New and regressed issues per service per day.
CREATE VIEW mendline.issue_activity_daily AS
SELECT i.service, date_trunc('day', t.created_at) AS day,
       count(*) FILTER (WHERE t.kind = 'new_issue') AS new_issues,
       count(*) FILTER (WHERE t.kind = 'regression') AS regressed_issues,
       count(*) FILTER (WHERE t.kind = 'frequency') AS spikes
FROM mendline.triggers t
JOIN mendline.issues i ON i.id = t.issue_id
GROUP BY i.service, date_trunc('day', t.created_at);
