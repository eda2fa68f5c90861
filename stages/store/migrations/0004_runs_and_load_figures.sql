-- Pipeline runs and per-load figures for the dashboard (runs, timeline, logs, trends) and the
-- workbook's Summary sheet.

-- The pipeline run an attempt belongs to: one `dvc repro`, one CI job or one by-hand stage run
-- (stages/runs.py derives it). ci_url links the CI run; log_offset is where the attempt's lines
-- begin in logs/<stage>/<engine>.log on its host.
ALTER TABLE stage_runs
    ADD COLUMN IF NOT EXISTS pipeline_run text,
    ADD COLUMN IF NOT EXISTS ci_url       text,
    ADD COLUMN IF NOT EXISTS trigger      text,
    ADD COLUMN IF NOT EXISTS log_offset   bigint;
CREATE INDEX IF NOT EXISTS stage_runs_pipeline_run ON stage_runs (pipeline_run);

-- What each load read and did, beside what 0001 records: crawl lines, rejected lines, leads
-- retracted by the load (NULL: not recorded, e.g. loads made before this migration). IF NOT
-- EXISTS: the lead-evidence migration (0003) may add some of these first.
-- New leads of a load are its `inserted`; leads not seen by it are `leads - unique_ids`.
ALTER TABLE ingest_loads
    ADD COLUMN IF NOT EXISTS lines     bigint,
    ADD COLUMN IF NOT EXISTS rejected  bigint,
    ADD COLUMN IF NOT EXISTS retracted bigint;
