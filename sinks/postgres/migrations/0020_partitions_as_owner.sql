-- Daily partitions are made and dropped by the workers (consume, monitor), but only the
-- owner of a partitioned table may add or remove its partitions. These functions do it as
-- the owner (SECURITY DEFINER, with a fixed search_path), so that mendline can run as a
-- role that owns nothing (`mendline grants ROLE`). Only the roles given EXECUTE may call
-- them: no more than what DELETE on these tables already allows.
ALTER FUNCTION mendline.ensure_event_partitions(date, integer)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION mendline.ensure_check_results_partitions(date, integer)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Drop one daily partition of mendline.events or mendline.check_results_raw, by name;
-- anything else is refused. Returns whether there was one to drop.
CREATE OR REPLACE FUNCTION mendline.drop_daily_partition(partition text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent regclass;
BEGIN
    IF partition !~ '^(events|check_results_raw)_[0-9]{8}$' THEN
        RAISE EXCEPTION 'not a daily partition of mendline: %', partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.inhparent::regclass INTO parent
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE c.relname = partition AND c.relnamespace = 'mendline'::regnamespace
      AND i.inhparent IN ('mendline.events'::regclass, 'mendline.check_results_raw'::regclass);
    IF parent IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE mendline.%I', partition);
    RETURN true;
END $$;

REVOKE EXECUTE ON FUNCTION mendline.ensure_event_partitions(date, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mendline.ensure_check_results_partitions(date, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mendline.drop_daily_partition(text) FROM PUBLIC;
