-- The issue workflow as Sentry users know it (schemas/issue.py): why an unresolved issue is
-- back (substatus), how it was resolved (now, in the next release, by a fix), the conditions
-- that end an ignore (snooze), an assignee, a comment thread, every merge (issue_merges: so it
-- can be undone), and the releases of each service in the order they appeared.

-- (First, before the tables the consumers write are locked by the ALTERs below: the backfill
-- reads every stored event.)
-- Each service's releases in the order their first event arrived: "newer" for a release
-- that is not a version number (Sentry's date ordering).
CREATE TABLE IF NOT EXISTS mendline.releases (
    service    text        NOT NULL,
    release    text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, release)
);
INSERT INTO mendline.releases (service, release, first_seen)
SELECT service, release, min(received_at) FROM mendline.events
WHERE release IS NOT NULL GROUP BY service, release
ON CONFLICT DO NOTHING;

ALTER TABLE mendline.issues
    ADD COLUMN IF NOT EXISTS substatus text
        CHECK (substatus IN ('regressed', 'escalating')),
    ADD COLUMN IF NOT EXISTS resolution text
        CHECK (resolution IN ('now', 'next_release', 'fix')),
    -- "resolved in the next release": the release that was current when it was resolved;
    -- an event of this release or an older one does not reopen the issue.
    ADD COLUMN IF NOT EXISTS resolved_in_release text,
    ADD COLUMN IF NOT EXISTS resolved_by text,
    ADD COLUMN IF NOT EXISTS ignored_at timestamptz,
    ADD COLUMN IF NOT EXISTS ignored_by text,
    -- An ignore ends (the issue comes back as escalating) at the first event after
    -- ignore_until, once times_seen reaches ignore_until_seen, or once the last hour holds
    -- ignore_per_hour events; all NULL: ignored forever.
    ADD COLUMN IF NOT EXISTS ignore_until timestamptz,
    ADD COLUMN IF NOT EXISTS ignore_until_seen bigint,
    ADD COLUMN IF NOT EXISTS ignore_per_hour integer CHECK (ignore_per_hour > 0),
    -- "user:NAME" or "team:LABEL"
    ADD COLUMN IF NOT EXISTS assignee text
        CHECK (assignee ~ '^(user|team):.{1,200}$'),
    ADD COLUMN IF NOT EXISTS merged_at timestamptz;

CREATE INDEX IF NOT EXISTS issues_assignee ON mendline.issues (assignee)
    WHERE assignee IS NOT NULL;
CREATE INDEX IF NOT EXISTS issues_by_status ON mendline.issues (status, last_seen DESC);

-- Every merge, with the fingerprints it moved: unmerge gives them (and their events, later
-- ones included) back, from whichever issue holds them then.
CREATE TABLE IF NOT EXISTS mendline.issue_merges (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      bigint      NOT NULL REFERENCES mendline.issues (id),
    target      bigint      NOT NULL REFERENCES mendline.issues (id),
    hashes      text[]      NOT NULL,
    merged_at   timestamptz NOT NULL DEFAULT now(),
    merged_by   text        NOT NULL,
    -- The merged fingerprints' fingerprints.times_seen, summed, at the merge: what came since
    -- is the difference (no clock compared).
    seen_at_merge bigint    NOT NULL DEFAULT 0,
    unmerged_at timestamptz,
    unmerged_by text
);
CREATE INDEX IF NOT EXISTS issue_merges_source ON mendline.issue_merges (source)
    WHERE unmerged_at IS NULL;

-- Events counted per fingerprint since 0021 (unmerge gives back what came after a merge).
ALTER TABLE mendline.fingerprints
    ADD COLUMN IF NOT EXISTS times_seen bigint NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS mendline.issue_comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id   bigint      NOT NULL REFERENCES mendline.issues (id),
    author     text        NOT NULL,
    body       text        NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS issue_comments_issue ON mendline.issue_comments (issue_id, id);

-- escalating: an ignored issue whose ignore ended (more events, a rate, or its time).
ALTER TABLE mendline.triggers DROP CONSTRAINT triggers_kind_check;
ALTER TABLE mendline.triggers ADD CONSTRAINT triggers_kind_check
    CHECK (kind IN ('new_issue', 'regression', 'frequency', 'resolved', 'escalating',
                    'health_down', 'health_recovered', 'health_flapping',
                    'remediation_failed'));

-- Public: open issues, with the workflow's fields added.
CREATE OR REPLACE VIEW mendline.open_issues AS
SELECT i.id, i.service, i.title, i.culprit, i.level, i.times_seen, i.first_seen, i.last_seen,
       i.first_release, i.last_release, i.environments, i.regressed_at, i.substatus,
       i.assignee
FROM mendline.issues i
WHERE i.status = 'unresolved';

-- Public: every issue with its place in the workflow (merged ones say into which).
CREATE OR REPLACE VIEW mendline.issue_states AS
SELECT i.id, i.service, i.title, i.status, i.substatus, i.assignee, i.resolution,
       i.resolved_at, i.resolved_in_release, i.resolved_by, i.ignored_at, i.ignored_by,
       i.ignore_until, i.ignore_until_seen, i.ignore_per_hour, i.merged_into, i.merged_at,
       i.regressions, i.regressed_at, i.times_seen, i.last_seen
FROM mendline.issues i;

-- Public: the comment thread of every issue.
CREATE OR REPLACE VIEW mendline.issue_comment_thread AS
SELECT c.issue_id, c.id AS comment_id, c.author, c.body, c.created_at
FROM mendline.issue_comments c;
