"""A live dashboard in the browser:
`python -m stages.observe.dashboard [--port 4200] [--host 127.0.0.1]`.

One self-contained page (stages/observe/dashboard.html: no CDN, fonts or scripts from elsewhere)
that refreshes itself every few seconds from `/api/status`, the same snapshot `python -m
stages.observe.status --json` prints: the status grid, the pipeline graph from dvc.yaml, leads per
engine and their trends, running stages with progress, database drift and recent failures;
and the pipeline runs (stages.observe.runs) with each run's timeline and the log of every attempt.

JSON API (every answer is JSON; unknown names answer 404 with {"error": ...}):
  /api/status                        the status snapshot, plus `trends` per engine
  /api/runs?engine=&stage=&outcome=  pipeline runs, newest first
  /api/runs/<run id>                 one run and its attempts (the timeline)
  /api/logs/<stage>/<engine>         the latest attempt's log as text (?attempt=N or
                                     ?attempt=<stage run id>.<N> for another one)
  /logs/<stage>/<engine>.log         the whole log file, as a download

It runs only while you look at it and binds to loopback unless `--allow-remote` is given (it
has no login). The page renders every value as text, never as HTML, and a Content-Security-
Policy lets only its own inline script and style run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stages.errors import ConfigError, PipelineError, first_line
from stages.observe import dvcview, journal, logs_api, records, runs, runtable
from stages.observe.snapshot import collect, trends
from stages.store.secrets import redact
from stages.tools.pipeline import pipeline_graph

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
REFRESH_SECONDS = 3.0
# `dvc status` costs about a second; reuse it while the files it reads are unchanged, but not
# longer than this, so a changed S3 source (which no local file reveals) shows up too.
DVC_MAX_AGE = 30.0
ATTEMPTS_MAX_AGE = 2.0  # seconds the run history read for the run list is reused
ROUTE = re.compile(
    r"^/(?:api/runs/(?P<run>[^/]+)|api/logs/(?P<stage>[^/]+)/(?P<engine>[^/]+)"
    r"|logs/(?P<dstage>[^/]+)/(?P<dengine>[^/]+)\.log)$"
)
PAGE = Path(__file__).with_name("dashboard.html")


def page_and_policy(refresh: float) -> tuple[bytes, str]:
    """The page's bytes and a Content-Security-Policy allowing exactly its inline script/style."""
    html = PAGE.read_text(encoding="utf-8").replace(
        "<body>", f'<body data-refresh="{refresh:g}">', 1
    )
    hashes = {}
    for tag in ("script", "style"):
        match = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        assert match, f"dashboard.html has no <{tag}>"
        digest = hashlib.sha256(match.group(1).encode("utf-8")).digest()
        hashes[tag] = f"'sha256-{base64.b64encode(digest).decode()}'"
    policy = (
        f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode("utf-8"), policy


class Snapshots:
    """Builds status snapshots on demand, one at a time, re-running `dvc status` only when the
    local inputs changed or DVC_MAX_AGE passed; the rest (history, heartbeats) is always fresh."""

    def __init__(self, root: Path, *, dvc_max_age: float = DVC_MAX_AGE):
        self.root = root
        self.dvc_max_age = dvc_max_age
        self._lock = threading.Lock()
        self._dvc: dvcview.DvcView | None = None
        self._dvc_key: tuple[Any, ...] | None = None
        self._dvc_at = 0.0
        self._attempts_lock = threading.Lock()
        self._attempts: list[records.Attempt] | None = None
        self._attempts_at = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            key = dvcview.inputs_fingerprint(self.root)
            now = time.monotonic()
            if self._dvc is None or key != self._dvc_key or now - self._dvc_at > self.dvc_max_age:
                self._dvc = dvcview.dvc_view(self.root)
                # The fingerprint taken before the DVC call: a change during it is seen next time.
                self._dvc_key, self._dvc_at = key, now
            snapshot = collect(self.root, dvc=self._dvc).to_json()
        snapshot["trends"] = trends(self.attempts(), [e["name"] for e in snapshot["engines"]])
        return snapshot

    def attempts(self) -> list[records.Attempt]:
        """Every attempt this checkout and the database know of, merged (re-read every
        ATTEMPTS_MAX_AGE seconds at most)."""
        with self._attempts_lock:
            now = time.monotonic()
            if self._attempts is None or now - self._attempts_at > ATTEMPTS_MAX_AGE:
                self._attempts = _read_attempts(self.root)
                self._attempts_at = now
            return self._attempts

    def alive(self) -> set[str]:
        """Ids of the stage runs whose heartbeat says they are still at work."""
        beats = journal.read_heartbeats(self.root / journal.LOGS_FOLDER)
        return {str(b.get("run_id")) for b in beats if b.get("alive")}

    def names(self) -> tuple[set[str], set[str]]:
        """The stage kinds and engines the pipeline knows (params, dvc.yaml and the history)."""
        from stages.rules.config import load_params

        seen = self.attempts()
        stages = {*pipeline_graph(self.root)["stages"], *(a.stage for a in seen)}
        engines = {*load_params(self.root).engines, *(a.engine for a in seen)}
        return stages, engines


def _read_attempts(root: Path) -> list[records.Attempt]:
    attempts = journal.read_history(root / journal.LOGS_FOLDER)
    try:
        from stages.store.db import available_database_url

        url = available_database_url(root)
        if url is not None:
            with runtable.connect_briefly(url, migrate=False) as conn:
                attempts = records.merge([*runtable.read_table(conn), *attempts])
    except Exception as exc:
        log.debug("dashboard: stage_runs not read (%s)", redact(str(exc).split("\n")[0]))
    return attempts


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server; `url` is where the page is."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        snapshots: Snapshots,
        *,
        refresh: float,
        allow_remote: bool,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, DashboardHandler)
        self.snapshots = snapshots
        self.page, self.policy = page_and_policy(refresh)
        self.allow_remote = allow_remote

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET or AF_INET6 address, never a bytes path
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "crawl-pipeline-dashboard"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        if not self.server.allow_remote and not _loopback_host_header(self.headers.get("Host")):
            # A web page elsewhere may point a DNS name at 127.0.0.1 (DNS rebinding): only
            # requests addressed to a loopback name are answered.
            self._send(HTTPStatus.MISDIRECTED_REQUEST, b"Unknown host.\n", "text/plain", head)
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8", head)
        elif path == "/api/status":
            try:
                body, code = self.server.snapshots.get(), HTTPStatus.OK
            except Exception as exc:
                log.exception("dashboard: building the status snapshot failed")
                message = redact(f"{type(exc).__name__}: {first_line(exc)}")
                body, code = {"error": message}, HTTPStatus.INTERNAL_SERVER_ERROR
            data = json.dumps(body, sort_keys=True).encode("utf-8")
            self._send(code, data, "application/json", head)
        elif path == "/api/runs":
            self._runs(head)
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", head)
        elif match := ROUTE.match(path):
            try:
                if match["run"]:
                    self._run(match["run"], head)
                elif match["stage"]:
                    self._log(match["stage"], match["engine"], head)
                else:
                    self._download(match["dstage"], match["dengine"], head)
            except logs_api.LogNotFound as exc:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)}, head)
        elif path.startswith("/api/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path!r}"}, head)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"Not found.\n", "text/plain", head)

    def _query(self) -> dict[str, str]:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(self.path).query)
        return {key: values[-1] for key, values in query.items() if values and values[-1]}

    def _runs(self, head: bool) -> None:
        query = self._query()
        outcome = query.get("outcome")
        if outcome is not None and outcome not in runs.OUTCOMES:
            allowed = ", ".join(runs.OUTCOMES)
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"outcome must be one of {allowed}"}, head)
            return
        snapshots = self.server.snapshots
        found = runs.run_list(
            snapshots.attempts(),
            alive=snapshots.alive(),
            engine=query.get("engine"),
            stage=query.get("stage"),
            outcome=outcome,
        )
        self._json(HTTPStatus.OK, {"runs": found}, head)

    def _run(self, run_id: str, head: bool) -> None:
        snapshots = self.server.snapshots
        found = runs.detail(run_id, snapshots.attempts(), alive=snapshots.alive())
        if found is None:
            raise logs_api.LogNotFound(f"no run {run_id!r}")
        self._json(HTTPStatus.OK, found, head)

    def _log(self, stage: str, engine: str, head: bool) -> None:
        snapshots = self.server.snapshots
        path = self._log_file(stage, engine)
        found = logs_api.attempt_log(
            path, stage, engine, snapshots.attempts(), self._query().get("attempt")
        )
        body = found.text.encode("utf-8")
        self._send(HTTPStatus.OK, body, "text/plain; charset=utf-8", head)

    def _download(self, stage: str, engine: str, head: bool) -> None:
        path = self._log_file(stage, engine)
        body = redact(path.read_bytes().decode("utf-8", "replace")).encode("utf-8")
        extra = {"Content-Disposition": f'attachment; filename="{stage}-{engine}.log"'}
        self._send(HTTPStatus.OK, body, "text/plain; charset=utf-8", head, extra)

    def _log_file(self, stage: str, engine: str) -> Path:
        stages, engines = self.server.snapshots.names()
        logs = self.server.snapshots.root / journal.LOGS_FOLDER
        return logs_api.log_file(logs, stage, engine, stages, engines)

    def _json(self, code: int, body: Any, head: bool) -> None:
        data = json.dumps(body, sort_keys=True).encode("utf-8")
        self._send(code, data, "application/json", head)

    def _send(
        self,
        code: int,
        body: bytes,
        kind: str,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", self.server.policy)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: %s %s", self.address_string(), format % args)


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _loopback_host_header(value: str | None) -> bool:
    if not value:
        return False
    host = value.rsplit(":", 1)[0] if not value.endswith("]") else value
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    root: Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    refresh: float = REFRESH_SECONDS,
) -> DashboardServer:
    """A dashboard server for the project at `root`, bound but not yet serving.

    Raises ConfigError for a non-loopback `host` without `allow_remote`, or a port in use.
    """
    from stages.rules.config import project_root

    if not allow_remote and not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve the dashboard on {host}: it has no login, so it binds to "
            "127.0.0.1 by default; pass --allow-remote to expose it on other addresses."
        )
    root = (root or project_root()).resolve()
    try:
        return DashboardServer(
            (host, port), Snapshots(root), refresh=refresh, allow_remote=allow_remote
        )
    except OSError as exc:
        raise ConfigError(
            f"Cannot serve the dashboard on {host}:{port} ({exc.strerror or exc}); "
            "pass another --port."
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.observe.dashboard",
        description="Serve a live dashboard of the pipeline (stops with Ctrl-C).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (the dashboard has no login)",
    )
    parser.add_argument(
        "--refresh", type=float, default=REFRESH_SECONDS, help="seconds between page refreshes"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        server = make_server(
            host=args.host, port=args.port, allow_remote=args.allow_remote, refresh=args.refresh
        )
    except PipelineError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 1
    print(f"Dashboard: {server.url} (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
