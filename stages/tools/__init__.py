"""Tools users run beside `dvc repro`: engines side by side (`parallel`), sample crawl files
(`crawlgen`) and DVC's state files (`dvcstate`: check, repair, prune-lock)."""
