"""What DVC compares between revisions: per-engine metrics and the per-engine load history.

Both live in git (params `paths.metrics` and `paths.loads`), so every commit holds the figures
of the run it records, and `dvc metrics diff`, `dvc plots diff` and `dvc exp show` compare
them. They hold only small numbers that follow from the inputs: no load ids, timestamps,
seconds or hashes, which stay in the stages' own markers (data/ingest/<engine>.json,
data/exports/<engine>.json). Two machines that run the same inputs on an empty database write
the same bytes, which keeps `dvc.lock` the same too.

- data/metrics/<engine>.json (written by export): seven figures a team compares between
  revisions, so that `dvc metrics show` fits 100 columns (DVC gives each key a column of its
  own, a nested key a dotted one, and sorts them): of the last ingest `lines` read,
  `rejected` lines, `leads` after the load, `new` leads it added (the marker's `inserted`)
  and `retracted` leads; of the workbook `rows` and `sheets`. The full ingest counts
  (`valid`, `unique`, `updated`, `unchanged`, duplicates, reject reasons) stay in
  data/ingest/<engine>.json.
- data/loads/<engine>.csv (written by ingest): one row per load of a new crawl or new rules
  (`load`, `leads`, `new_leads`, `rejected`, and `crawl`, the key that tells loads apart).
  Loading the same crawl with the same rules again (a re-run, a fresh clone, a CI runner)
  adds no row: the trend shows crawls, not re-runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from stages.rules.config import Engine, Params
from stages.store.files import atomic_output, write_json

# Metric name -> the ingest marker's count it is; then the workbook's. Seven keys of realistic
# size (up to 25,000 ids, five digits) keep `dvc metrics show` at 94 columns with the longest
# engine name of the samples; every key added costs at least its length plus four.
INGEST_METRICS = {
    "lines": "lines",
    "rejected": "rejected",
    "leads": "leads",
    "new": "inserted",
    "retracted": "retracted",
}
EXPORT_METRICS = ("rows", "sheets")
METRICS = (*INGEST_METRICS, *EXPORT_METRICS)
LOAD_COLUMNS = ("load", "leads", "new_leads", "rejected", "crawl")
READ_CHUNK = 1 << 20  # bytes per read when hashing the crawl file


def write_engine_metrics(
    params: Params, engine: str, ingest_marker: dict[str, Any], rows: int, sheets: int
) -> Path:
    """Write data/metrics/<engine>.json (METRICS) from the ingest marker and the export's
    counts.

    Every value is an int; a count the marker lacks (`retracted` before retraction existed)
    is 0. Returns the path written."""
    figures = {name: int(ingest_marker.get(key) or 0) for name, key in INGEST_METRICS.items()}
    figures.update(rows=int(rows), sheets=int(sheets))
    path = params.files(engine).metrics
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, figures)
    return path


def record_load(
    params: Params, engine: Engine, crawl_file: Path, ingest_marker: dict[str, Any]
) -> bool:
    """Add this load to data/loads/<engine>.csv unless its crawl key equals the last row's.

    The crawl key is a short hash of the crawl file's bytes, the engine's rules in params.yaml
    and the source tag: what decides which leads the load makes. Returns whether a row was
    added."""
    key = crawl_key(engine, crawl_file, str(ingest_marker.get("source_tag") or ""))
    path = params.files(engine.name).loads
    rows = read_loads(path)
    if rows and rows[-1]["crawl"] == key:
        return False
    rows.append(
        {
            "load": len(rows) + 1,
            "leads": int(ingest_marker.get("leads") or 0),
            "new_leads": int(ingest_marker.get("inserted") or 0),
            "rejected": int(ingest_marker.get("rejected") or 0),
            "crawl": key,
        }
    )
    text = io.StringIO()
    writer = csv.DictWriter(text, LOAD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, "w") as handle:
        handle.write(text.getvalue())
    return True


def read_loads(path: Path) -> list[dict[str, Any]]:
    """The rows of a load history file (ints but `crawl`); [] when there is none yet."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            {name: value if name == "crawl" else int(value) for name, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def crawl_key(engine: Engine, crawl_file: Path, source_tag: str) -> str:
    """12 hex digits naming (crawl bytes, the engine's rules, source tag)."""
    digest = hashlib.md5(usedforsecurity=False)
    with crawl_file.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    rules = [
        engine.display_name,
        list(engine.hosts),
        [pattern.pattern for pattern in engine.url_patterns],
        engine.id_pattern.pattern,
        engine.id_case,
        engine.booking_url,
    ]
    identity = [digest.hexdigest(), rules, source_tag]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
