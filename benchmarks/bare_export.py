"""The export baseline: a bare openpyxl write-only script writing rows it holds in memory.

    python -m benchmarks.bare_export ROWS.pickle OUT.xlsx

The rows (already in the cell types openpyxl takes) are unpickled first; the script prints
`load_seconds=...` so the benchmark can leave that out of the baseline's time.
"""

from __future__ import annotations

import pickle
import sys
import time

from stages.report.workbook import COLUMNS as HEADER  # only the names: no code of ours runs


def main(argv: list[str]) -> int:
    rows_path, out_path = argv
    started = time.perf_counter()
    with open(rows_path, "rb") as handle:
        rows = pickle.load(handle)
    load_seconds = time.perf_counter() - started
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Leads")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    workbook.save(out_path)
    print(f"load_seconds={load_seconds:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
