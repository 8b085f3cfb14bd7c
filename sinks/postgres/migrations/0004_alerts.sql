-- Alerts: triggers routed to receivers as deliveries (an outbox), and what was sent per issue.

-- A resolved issue is a trigger too (PagerDuty resolves its incident).
ALTER TABLE mendline.triggers DROP CONSTRAINT triggers_kind_check;
ALTER TABLE mendline.triggers ADD CONSTRAINT triggers_kind_check
    CHECK (kind IN ('new_issue', 'regression', 'frequency', 'resolved'));

-- Triggers are routed once: the deliveries are written in the transaction that marks this.
-- alert_severity is what the routing saw; a finding that raises it routes the trigger again
-- for the receivers the higher severity reaches.
-- followed_at: the trigger's finding has been looked at (an update sent, or routed again).
ALTER TABLE mendline.triggers
    ADD COLUMN routed_at       timestamptz,
    ADD COLUMN routed_severity text,
    ADD COLUMN followed_at     timestamptz;
CREATE INDEX triggers_to_route ON mendline.triggers (id) WHERE routed_at IS NULL;
CREATE INDEX triggers_to_follow ON mendline.triggers (id)
    WHERE followed_at IS NULL AND kind IN ('new_issue', 'regression');

CREATE TABLE mendline.deliveries (
    id           bigserial   PRIMARY KEY,
    receiver     text        NOT NULL,
    -- The route, by what it matches and where it sends (its line moves when the file is
    -- edited): updates and group_interval follow it.
    route_key    text        NOT NULL,
    issue_id     bigint      NOT NULL REFERENCES mendline.issues (id),
    trigger_id   bigint      REFERENCES mendline.triggers (id),
    kind         text        NOT NULL,
    severity     text        NOT NULL,
    mode         text        NOT NULL DEFAULT 'new' CHECK (mode IN ('new', 'update', 'repeat')),
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'delivered', 'failed', 'dead', 'suppressed')),
    -- Not sent before this (group_wait, group_interval, a retry's backoff); sent earlier
    -- when the finding it waits for has arrived (wait_finding).
    due_at       timestamptz NOT NULL,
    wait_finding boolean     NOT NULL DEFAULT false,
    attempts     integer     NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    owner        text,
    last_error   text,
    finding_id   bigint      REFERENCES mendline.findings (id),
    -- Sent inside another delivery's digest.
    digest_of    bigint      REFERENCES mendline.deliveries (id),
    reference    jsonb,
    details      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (trigger_id, receiver, mode)
);
CREATE INDEX deliveries_due ON mendline.deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_issue ON mendline.deliveries (issue_id, receiver);
CREATE INDEX deliveries_pending_issue ON mendline.deliveries (issue_id, receiver, id)
    WHERE status = 'pending';

-- What was last sent about an issue to a receiver: repeat_interval, and the first message's
-- reference (Slack channel and ts) for thread replies and updates.
CREATE TABLE mendline.alert_state (
    issue_id     bigint      NOT NULL REFERENCES mendline.issues (id),
    receiver     text        NOT NULL,
    last_sent_at timestamptz NOT NULL,
    reference    jsonb,
    PRIMARY KEY (issue_id, receiver)
);

-- When a route's group (receiver and route) last sent: group_interval.
CREATE TABLE mendline.alert_groups (
    receiver     text        NOT NULL,
    route_key    text        NOT NULL,
    last_sent_at timestamptz NOT NULL,
    PRIMARY KEY (receiver, route_key)
);

-- Every delivery and its outcome.
CREATE VIEW mendline.alert_deliveries AS
SELECT d.id, d.issue_id, i.service, i.title, d.receiver, d.kind, d.severity, d.mode, d.status,
       d.attempts, d.last_error, d.created_at, d.due_at, d.delivered_at, d.digest_of,
       d.finding_id IS NOT NULL AS with_root_cause
FROM mendline.deliveries d
JOIN mendline.issues i ON i.id = d.issue_id;
