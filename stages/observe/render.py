"""The status snapshot as the terminal shows it: the grid of engines by stages, the failures,
the database findings and the totals."""

from __future__ import annotations

from collections.abc import Callable

from stages.observe.cells import FAILED, RUNNING, STALE, UNKNOWN, UP_TO_DATE, Cell, when
from stages.observe.dbview import CHANGED, DRIFT, OK
from stages.observe.snapshot import Snapshot

WIDTH = 26  # characters per stage column
COLORS = {UP_TO_DATE: "32", STALE: "33", RUNNING: "36", FAILED: "31", UNKNOWN: "35"}


def render_text(snapshot: Snapshot, *, color: bool = False) -> str:
    """The snapshot as lines of text; `color` paints each cell's state with ANSI colours."""

    def paint(text: str, state: str) -> str:
        return f"\033[{COLORS.get(state, '0')}m{text}\033[0m" if color else text

    stages, engines = snapshot.stages, [e.name for e in snapshot.engines]
    cells = {(c.stage, c.engine): c for c in snapshot.cells}
    name_width = max([len("engine"), *(len(e) for e in engines)]) + 2
    out = [f"{snapshot.project}: {snapshot.headline}", ""]
    out.append("engine".ljust(name_width) + "".join(s.ljust(WIDTH) for s in stages).rstrip())
    rule = "".join(("-" * (WIDTH - 2)).ljust(WIDTH) for _ in stages)
    out.append(("-" * (name_width - 2) + "  " + rule).rstrip())
    for engine in engines:
        rows = list(zip(*(_cell_lines(cells[(s, engine)]) for s in stages), strict=True))
        # A line no cell of the row fills (no stage has a reason, none has run) is left out.
        rows = [row for number, row in enumerate(rows) if number == 0 or any(row)]
        for number, row in enumerate(rows):
            line = (engine if number == 0 else "").ljust(name_width)
            for stage, text in zip(stages, row, strict=True):
                padded = _clip(text).ljust(WIDTH)
                line += paint(padded, cells[(stage, engine)].state) if number == 0 else padded
            out.append(line.rstrip())
        out.append("")
    out.extend(_failures(snapshot))
    out.extend(_database(snapshot, name_width, paint))
    return "\n".join(out)


def _failures(snapshot: Snapshot) -> list[str]:
    out: list[str] = []
    failures = [c for c in snapshot.cells if c.state == FAILED]
    if failures:
        out.append("Failed:")
        out.extend(f"  {c.name}: {c.error}" for c in failures)
        out.append("")
    for state, heading in ((UP_TO_DATE, "up to date now"), (STALE, "stale for another reason")):
        past = [c for c in snapshot.cells if c.state == state and c.note]
        if past:
            out.append(f"Failed before, {heading}:")
            out.extend(f"  {c.name}: {c.note}" for c in past)
            out.append("")
    if snapshot.damaged:
        from stages.tools.dvcstate import REPAIR_COMMAND

        out.append(f"DVC's state is damaged: {'; '.join(snapshot.damaged)}.")
        out.append(f"  Repair it: {REPAIR_COMMAND}")
        out.append("")
    return out


def _database(snapshot: Snapshot, name_width: int, paint: Callable[[str, str], str]) -> list[str]:
    database = snapshot.database
    label = f" {database.label}" if database.label else ""
    out = [
        f"Database{label}: {database.state}"
        + (f" ({database.message})" if database.message else "")
    ]
    for finding in snapshot.drift:
        shade = {DRIFT: FAILED, CHANGED: STALE, OK: UP_TO_DATE}.get(finding.state, UNKNOWN)
        line = f"  {finding.engine.ljust(name_width)}{paint(finding.state, shade)}"
        out.append(f"{line}  {finding.message}".rstrip())
    totals = snapshot.totals
    states = ", ".join(f"{n} {s}" for s, n in totals.states.items() if n)
    out.append("")
    out.append(
        f"Totals: {totals.leads:,} leads, {totals.rows_exported:,} rows exported, "
        f"{totals.rejected:,} lines rejected, {totals.published} published; "
        f"stages: {states}."
    )
    return out


def _cell_lines(cell: Cell) -> list[str]:
    """A cell's four lines: state, why (or progress), when and how long, what it made; any
    may be empty."""
    first, detail = cell.state, ""
    if cell.state == STALE:
        detail = ", ".join(cell.reasons)
    elif cell.state in (FAILED, UNKNOWN):
        detail = cell.error or ", ".join(cell.reasons)
    elif cell.note:
        detail = "last try by hand failed" if "(by hand," in cell.note else "last try failed"
    elif cell.state == RUNNING:
        progress = cell.progress or {}
        if progress.get("fraction") is not None:
            first = f"running {progress['fraction']:.0%}"
        detail = progress.get("label") or ""
        if progress.get("attempt") and progress["attempt"] > 1:
            detail = f"attempt {progress['attempt']} {detail}".strip()
    run = cell.last_run
    moment = ""
    if run:
        moment = when(run.started_at)
        if run.seconds is not None:
            moment += f" {run.seconds:.1f}s"
        moment += f" x{run.attempts}"
    return [first, detail, moment, cell.summary]


def _clip(text: str) -> str:
    return text if len(text) <= WIDTH - 2 else text[: WIDTH - 3] + "~"
