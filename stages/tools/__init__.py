"""Tools users run beside `dvc repro`: engines side by side (`parallel`), sample crawl files
(`crawlgen`), the one reader of dvc.yaml (`pipeline`) and DVC's state files (`dvcstate`: check
and repair; `dvcrun`: run dvc the safe way; `dvcprune`: prune-lock)."""
