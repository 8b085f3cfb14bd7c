-- Live updates of the dashboard: what changed is told on channel mendline_web as a small JSON
-- object of ids only, {"t": kind, "ids": [...], "issues": [...]} (check names for checks),
-- delivered when the transaction commits; the web process reads the rows itself. One NOTIFY a
-- statement (statement triggers reading their transition table), not one a row: the
-- consumer's batch UPDATE of 300 issues costs one. More than 100 ids (50 check names): null,
-- "many, refresh them all", so a payload stays below NOTIFY's 8000 bytes. Ids in order: the INSERT and
-- UPDATE of the same new issues (the consumer's batch) tell the same, which PostgreSQL sends
-- once a transaction. Check results are not told (one a check and interval): only what a
-- check's state shows (up, down, since, flapping, the last result's success, its issue).
-- OR REPLACE and DROP ... IF EXISTS throughout: safe to run again.

-- ids as the payload lists them: null when there are more than ``most`` (100 bigints take at
-- most 2000 bytes; 50 check names, 100 characters at most each, 5200).
CREATE OR REPLACE FUNCTION mendline.web_ids(ids anyarray, most integer DEFAULT 100) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(ids) <= most THEN to_json(ids) END
$$;

-- Rows known by their id (issues, the audit trail). TG_ARGV[0]: the kind.
CREATE OR REPLACE FUNCTION mendline.web_notify_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    ids := ARRAY(SELECT id FROM changed ORDER BY id LIMIT 101);
    IF cardinality(ids) > 0 THEN
        PERFORM pg_notify('mendline_web',
            json_build_object('t', TG_ARGV[0], 'ids', mendline.web_ids(ids))::text);
    END IF;
    RETURN NULL;
END;
$$;

-- Rows of an issue (findings, fixes, deliveries, comments): their ids and their issues'.
CREATE OR REPLACE FUNCTION mendline.web_notify_issue_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    issues bigint[];
BEGIN
    ids := ARRAY(SELECT id FROM changed ORDER BY id LIMIT 101);
    IF cardinality(ids) = 0 THEN
        RETURN NULL;
    END IF;
    issues := ARRAY(SELECT DISTINCT issue_id FROM changed ORDER BY 1 LIMIT 101);
    PERFORM pg_notify('mendline_web',
        json_build_object('t', TG_ARGV[0], 'ids', mendline.web_ids(ids),
                          'issues', mendline.web_ids(issues))::text);
    RETURN NULL;
END;
$$;

-- An approval that is not yet the last one moves no fix row: told as its fix.
CREATE OR REPLACE FUNCTION mendline.web_notify_fix_approvals() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    issues bigint[];
BEGIN
    ids := ARRAY(SELECT DISTINCT fix_id FROM changed ORDER BY 1 LIMIT 101);
    IF cardinality(ids) = 0 THEN
        RETURN NULL;
    END IF;
    issues := ARRAY(SELECT DISTINCT f.issue_id FROM mendline.fix_jobs f
                    WHERE f.id = ANY (ids) ORDER BY 1 LIMIT 101);
    PERFORM pg_notify('mendline_web',
        json_build_object('t', 'fix', 'ids', mendline.web_ids(ids),
                          'issues', mendline.web_ids(issues))::text);
    RETURN NULL;
END;
$$;

-- The checks' registry (the checks file synced): added, changed, retired, restored.
CREATE OR REPLACE FUNCTION mendline.web_notify_checks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    names text[];
BEGIN
    names := ARRAY(SELECT name FROM changed ORDER BY name LIMIT 51);
    IF cardinality(names) > 0 THEN
        PERFORM pg_notify('mendline_web',
            json_build_object('t', 'check', 'ids', mendline.web_ids(names, 50))::text);
    END IF;
    RETURN NULL;
END;
$$;

-- A check's state, by row: the monitor writes one check's state a statement, and only a
-- change of what its state shows gets here (the trigger's WHEN), not every result.
CREATE OR REPLACE FUNCTION mendline.web_notify_check_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mendline_web',
        json_build_object('t', 'check', 'ids', json_build_array(NEW.check_name))::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.issues;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.issues
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_ids('issue');
DROP TRIGGER IF EXISTS web_notify_update ON mendline.issues;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.issues
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_ids('issue');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.audit_log;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.audit_log
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_ids('audit');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.findings;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.findings
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('finding');
DROP TRIGGER IF EXISTS web_notify_update ON mendline.findings;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.findings
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('finding');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.fix_jobs;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.fix_jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('fix');
DROP TRIGGER IF EXISTS web_notify_update ON mendline.fix_jobs;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.fix_jobs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('fix');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.fix_approvals;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.fix_approvals
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_fix_approvals();

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.deliveries;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.deliveries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('delivery');
DROP TRIGGER IF EXISTS web_notify_update ON mendline.deliveries;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.deliveries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('delivery');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.issue_comments;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.issue_comments
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_issue_rows('comment');

DROP TRIGGER IF EXISTS web_notify_insert ON mendline.checks;
CREATE TRIGGER web_notify_insert AFTER INSERT ON mendline.checks
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_checks();
DROP TRIGGER IF EXISTS web_notify_update ON mendline.checks;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.checks
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mendline.web_notify_checks();

DROP TRIGGER IF EXISTS web_notify_update ON mendline.check_state;
CREATE TRIGGER web_notify_update AFTER UPDATE ON mendline.check_state
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.since IS DISTINCT FROM NEW.since
          OR OLD.flapping IS DISTINCT FROM NEW.flapping
          OR OLD.last_success IS DISTINCT FROM NEW.last_success
          OR OLD.issue_id IS DISTINCT FROM NEW.issue_id)
    EXECUTE FUNCTION mendline.web_notify_check_state();
