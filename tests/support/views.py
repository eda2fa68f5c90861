"""The three views of the pipeline's state (`stages.observe.status --json`, its text grid and the
dashboard's /api/status), read side by side with `dvc status`, so tests can hold them to one
truth."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.observe import dashboard
from stages.observe.render import WIDTH, render_text
from stages.observe.snapshot import collect
from tests.support.project import Project


@dataclass
class Views:
    """Cell states per view ({"ingest@rms": "up to date", ...}) and what `dvc status` lists."""

    json: dict[str, str]
    text: dict[str, str]
    api: dict[str, str]
    dvc_stale: set[str]
    snapshot: dict[str, Any]
    text_output: str

    def agree(self) -> bool:
        """The three views show the same states, and none calls up to date what DVC lists
        as changed nor anything else than up to date when DVC lists nothing."""
        if not self.json == self.text == self.api:
            return False
        not_up_to_date = {name for name, state in self.json.items() if state != "up to date"}
        if not self.dvc_stale:
            return not not_up_to_date
        return self.dvc_stale <= not_up_to_date


@contextmanager
def dashboard_server(root: Path) -> Iterator[dashboard.DashboardServer]:
    """The dashboard of the project at `root`, serving from a thread on a free loopback port
    (its address in `.url`); shut down and closed on exit."""
    server = dashboard.make_server(root, "127.0.0.1", 0, refresh=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def read_views(project: Project) -> Views:
    """Run the three views and `dvc status --json` in `project` (the working directory)."""
    typed = collect()
    snapshot = json.loads(json.dumps(typed.to_json()))  # what `--json` prints
    text = render_text(typed)  # what `python -m stages.observe.status` prints
    with (
        dashboard_server(project.root) as server,
        urllib.request.urlopen(server.url + "api/status", timeout=60) as response,
    ):
        api = json.loads(response.read())
    dvc = json.loads(project.dvc("status", "--json").stdout or "{}")
    return Views(
        json=_states(snapshot),
        text=text_states(text, snapshot["stages"]),
        api=_states(api),
        dvc_stale=set(dvc),
        snapshot=snapshot,
        text_output=text,
    )


def _states(snapshot: dict[str, Any]) -> dict[str, str]:
    return {cell["name"]: cell["state"] for cell in snapshot["cells"]}


def text_states(text: str, stages: list[str]) -> dict[str, str]:
    """The state in each cell of the text grid: the column under each stage's header."""
    lines = text.splitlines()
    header = next(number for number, line in enumerate(lines) if line.startswith("engine "))
    starts = [lines[header].index(stage) for stage in stages]
    states: dict[str, str] = {}
    for line in lines[header + 2 :]:
        if not line.strip():
            continue
        if line.startswith(("Failed", "DVC's state", "Database")):
            break
        if line[0] == " ":
            continue  # a cell's detail lines
        engine = line.split()[0]
        for stage, start in zip(stages, starts, strict=True):
            state = line[start : start + WIDTH].strip()
            states[f"{stage}@{engine}"] = (
                state.split(" ")[0] if state.startswith("running") else state
            )
    return states
