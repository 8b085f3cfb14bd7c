-- When a retired check was last taken up again (back in the checks file). A heartbeat is
-- judged from the later of its newest judged slot and this: the time it was retired is not
-- judged (no "missed" runs for the months it was out of the file).
ALTER TABLE mendline.checks ADD COLUMN IF NOT EXISTS restored_at timestamptz;
