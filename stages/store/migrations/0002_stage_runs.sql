-- Run history: one row per attempt of a stage, written by the stage runner (stages/history.py)
-- best-effort, so machines sharing this database see each other's runs. Each checkout keeps the
-- same records in logs/history.jsonl, which is written even when the database is unreachable.
CREATE TABLE stage_runs (
    run_id      uuid NOT NULL,          -- one process running one stage for one engine
    attempt     integer NOT NULL CHECK (attempt >= 1),
    stage       text NOT NULL,
    engine      text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'retried')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    seconds     double precision,
    counts      jsonb NOT NULL DEFAULT '{}',  -- the stage marker's counts (leads, rows, bytes)
    error       text,                          -- first line of the error, secrets removed
    host        text NOT NULL,
    git_commit  text,
    pid         integer,
    via         text NOT NULL DEFAULT 'manual',  -- 'dvc' when `dvc repro` ran the command
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX stage_runs_started_at ON stage_runs (started_at DESC);
CREATE INDEX stage_runs_engine_stage ON stage_runs (engine, stage, started_at DESC);
