"""crawl-pipeline: booking-engine crawl files -> hotel leads in PostgreSQL -> Excel workbooks.

The modules at the top are what dvc.yaml runs (`download`, `ingest`, `export`, `publish`), the
runner they share and the errors it reports. The rest lives in subpackages by role: `rules`,
`store`, `report`, `observe` and `tools` (README, "How it is built")."""
