-- An ignore "N per hour" counts from the per-minute counts, not from event rows (which
-- sampling, 0029, no longer keeps whole). It reads mendline.events once, to note the
-- minute of the ignores already made, while the issues table is locked by the column.

-- The occurrences of the minute an ignore was made in that came before it: an ignore "N per
-- hour" counts that minute's later ones from its per-minute count. Noted by a trigger
-- whenever an ignore is made (ignored_at set), whoever makes it.
ALTER TABLE mendline.issues ADD COLUMN IF NOT EXISTS ignore_minute_seen integer;
UPDATE mendline.issues i SET ignore_minute_seen = (
    SELECT coalesce(sum(e.count), 0) FROM mendline.events e
    WHERE e.issue_id = i.id AND e.received_at >= date_trunc('minute', i.ignored_at)
      AND e.received_at <= i.ignored_at)
WHERE i.status = 'ignored' AND i.ignore_per_hour IS NOT NULL;

CREATE OR REPLACE FUNCTION mendline.note_ignore_minute() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ignored_at IS NOT NULL AND NEW.ignored_at IS DISTINCT FROM OLD.ignored_at THEN
        NEW.ignore_minute_seen := coalesce(
            (SELECT c.count FROM mendline.issue_counts c
             WHERE c.issue_id = NEW.id AND c.minute = date_trunc('minute', NEW.ignored_at)),
            0);
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS issues_ignore_minute ON mendline.issues;
CREATE TRIGGER issues_ignore_minute BEFORE UPDATE OF ignored_at ON mendline.issues
    FOR EACH ROW EXECUTE FUNCTION mendline.note_ignore_minute();
