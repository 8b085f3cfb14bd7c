-- The content hash of each stored event id (schemas.event.content_hash: SHA-256 of the
-- validated event as canonical JSON). An id that comes again with another hash is not a
-- replay but other content: the consumer dead-letters it as duplicate_conflict. Ids stored
-- before this migration have none, and any replay of them stays a duplicate.
ALTER TABLE mendline.event_ids ADD COLUMN content_hash text;
