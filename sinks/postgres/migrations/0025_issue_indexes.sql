-- The issue list's indexes (the dashboard's tabs, sorts, search and keyset pages, and
-- `mendline issues list`), each for a query of sinks/postgres/_issue_reads.py. Keyset pages
-- read `(key, id) < (cursor)` in `key DESC, id DESC` order: an index in that order holds
-- the page's rows next to each other, so a page reads its rows and stops.

-- Every tab (unresolved, ignored, resolved) sorted by last seen, the default; replaces
-- 0021's issues_by_status, which lacked the id that breaks ties.
CREATE INDEX IF NOT EXISTS issues_status_last_seen
    ON mendline.issues (status, last_seen DESC, id DESC);
DROP INDEX IF EXISTS mendline.issues_by_status;
-- Every tab sorted by first seen, and by events ever counted.
CREATE INDEX IF NOT EXISTS issues_status_first_seen
    ON mendline.issues (status, first_seen DESC, id DESC);
CREATE INDEX IF NOT EXISTS issues_status_times_seen
    ON mendline.issues (status, times_seen DESC, id DESC);
-- The regressed and escalating tabs (unresolved issues' substatuses; a few among many):
-- found without reading the other unresolved ones.
CREATE INDEX IF NOT EXISTS issues_substatus_last_seen
    ON mendline.issues (substatus, last_seen DESC, id DESC) WHERE substatus IS NOT NULL;

-- Tag filters (`region:eu`) read the candidate issues' stored events: no index of every
-- event's tags, which would cost each stored event 15-30 us more (about as much as the rest
-- of its row) for a filter people use now and then. A per-issue tag table kept by the
-- consumer's batch is the way to make them fast.

-- Text search (ILIKE '%words%' on the title and the culprit): trigram indexes, when the
-- pg_trgm extension can be had. It is a trusted extension (PostgreSQL 13+), so a database
-- owner may create it; where it cannot be created (the files are missing, or this role may
-- not), the search still works, reading every issue of the tab, and a notice says why.
DO $$
DECLARE
    trgm_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA mendline;
    EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
        RAISE NOTICE 'mendline: no pg_trgm (%): the issue search reads every issue', SQLERRM;
    END;
    -- Wherever it is installed (a DBA may have put it in public before us).
    SELECT n.nspname INTO trgm_schema
    FROM pg_opclass o
    JOIN pg_namespace n ON n.oid = o.opcnamespace
    JOIN pg_am a ON a.oid = o.opcmethod
    WHERE o.opcname = 'gin_trgm_ops' AND a.amname = 'gin'
    LIMIT 1;
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS issues_text_trgm ON mendline.issues
             USING gin (title %1$I.gin_trgm_ops, culprit %1$I.gin_trgm_ops)',
            trgm_schema);
    END IF;
END $$;
