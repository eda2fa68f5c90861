-- Evidence per lead, so a wrong lead can be taken back and a rule change reaches stored rows.
-- evidence: the first crawl line that produced the lead (made safe by stages.crawl.safe_text);
-- NULL for leads loaded before this migration, which are re-checked as their bare id.
-- retracted_at: when the engine's corrected rules stopped finding the lead in its evidence;
-- a retracted lead is kept, left out of the workbook, and un-retracted when seen again.
ALTER TABLE hotel_booking_engines
    ADD COLUMN evidence text,
    ADD COLUMN retracted_at timestamptz;
-- Counting retracted leads reads only them, never the whole table.
CREATE INDEX hotel_booking_engines_retracted ON hotel_booking_engines (engine_id)
    WHERE retracted_at IS NOT NULL;

-- The fingerprint of the rules (stages.crawl.rules_fingerprint) the engine's stored leads were
-- last checked against; NULL (every engine after this migration) means "check them now".
ALTER TABLE booking_engines ADD COLUMN rules_fingerprint text;

-- Whether a load came from the pipeline's own file (the collapse guard compares a load with
-- the engine's previous pipeline load, not with a one-off file loaded by hand).
ALTER TABLE ingest_loads ADD COLUMN by_hand boolean NOT NULL DEFAULT false;
