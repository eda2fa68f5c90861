"""crawl-pipeline: booking-engine crawl files -> hotel leads in PostgreSQL -> Excel workbooks."""
