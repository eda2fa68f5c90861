"""Make docs/dashboard.png from a realistic run: `uv run python docs/screenshot.py [WORKDIR]`.

The bundled sample crawls are served by an S3-protocol server (moto) on 127.0.0.1 behind the
test kit's fault proxy; the project uses its own embedded PostgreSQL. Three `dvc repro` runs:

1. every engine, week 1; the first read of cloudbeds's crawl answers 503 SlowDown (retried);
2. week 2's crawls arrive while the database is unreachable: ingest retries, then fails;
3. the database is back: the same command finishes every engine.

The page is then shown in headless Chromium with the failed run's timeline and the retried
attempt's log open. Prints the workbook sheets' row counts after the two loads.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.browser import Browser  # noqa: E402
from tests.support.faultproxy import Fault, FaultProxy  # noqa: E402
from tests.support.project import make_project  # noqa: E402
from tests.support.s3 import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, s3_client  # noqa: E402

BUCKET = "acme-crawls"
WEEK_2_NEW = {  # a few properties that appear in week 2's crawl (made-up ids)
    "cloudbeds": [
        "https://hotels.cloudbeds.com/reservation/Qw3rTy",
        "hotels.cloudbeds.com/reservation/Zx9Lp2",
    ],
    "mews": ["https://app.mews.com/distributor/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"],
    "rms": ["https://bookings.rmscloud.com/Search/Index/48213/90/"],
    "siteminder": ["https://direct-book.com/properties/harbourviewdirect"],
}


def week_2(text: str, engine: str) -> bytes:
    """Week 2's crawl: every 12th line of week 1 gone (hotels that left), a few new ones."""
    lines = [line for n, line in enumerate(text.splitlines()) if n % 12 != 5]
    return ("\n".join([*lines, *WEEK_2_NEW[engine]]) + "\n").encode()


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dashboard-"))
    root = work / "crawl-pipeline"
    shutil.rmtree(root, ignore_errors=True)
    for name in list(os.environ):
        if name.startswith(("AWS_", "PG")) or name in ("DATABASE_URL", "ALERT_WEBHOOK_URL"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    proxy = FaultProxy(f"http://{host}:{port}").start()
    try:
        client = s3_client(f"http://{host}:{port}")
        client.create_bucket(Bucket=BUCKET)
        project = make_project(root)
        files = {e: spec["file"] for e, spec in project.params["engines"].items()}
        samples = {e: (REPO / "data/sources" / f).read_text() for e, f in files.items()}
        for engine, name in files.items():
            client.put_object(Bucket=BUCKET, Key=f"crawls/{name}", Body=samples[engine].encode())
        project.add_s3_remote("crawls", f"s3://{BUCKET}/crawls", proxy.endpoint_url)
        project.edit_params(
            lambda p: (
                p["source"].update(root="remote://crawls", retry_delay=2),
                p["ingest"].update(retry_delay=1),
            )
        )
        proxy.plan(
            Fault.status(
                503, "SlowDown", method="GET", path=f"/{BUCKET}/crawls/{files['cloudbeds']}"
            )
        )
        print("run 1:", project.dvc("repro", check=False).returncode)
        for engine, name in files.items():
            client.put_object(
                Bucket=BUCKET, Key=f"crawls/{name}", Body=week_2(samples[engine], engine)
            )
        os.environ["DATABASE_URL"] = "postgresql://leads@127.0.0.1:9/leads"  # nothing listens
        print("run 2:", project.dvc("repro", check=False).returncode)
        del os.environ["DATABASE_URL"]
        print("run 3:", project.dvc("repro", check=False).returncode)
        show(root)
        counts(root)
    finally:
        proxy.stop()
        moto.stop()
        project.stage("db", "stop")
    return 0


def show(root: Path) -> None:
    from stages.observe import dashboard

    os.chdir(root)
    server = dashboard.make_server(root, "127.0.0.1", 0, refresh=3600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Browser.launch(root.parent / "chromium") as browser:
        page = browser.open(server.url, width=1400, height=1000)
        page.wait_for("document.body.dataset.runsReady === '1'")
        page.evaluate("document.querySelector('#runs-table tr[data-outcome=\"failed\"]').click()")
        page.wait_for("document.querySelector('#timeline-chart') !== null")
        page.evaluate(
            "document.querySelector('#timeline-chart rect[data-outcome=\"retried\"]')"
            ".dispatchEvent(new MouseEvent('click'))"
        )
        page.wait_for("document.querySelector('#log-text') !== null")
        page.screenshot(REPO / "docs" / "dashboard.png")
    server.shutdown()
    print("screenshot:", REPO / "docs" / "dashboard.png")


def counts(root: Path) -> None:
    from openpyxl import load_workbook

    for path in sorted((root / "data/exports").glob("*.xlsx")):
        book = load_workbook(path)
        rows = {title: book[title].max_row - 1 for title in book.sheetnames}
        print(path.name, rows)


if __name__ == "__main__":
    sys.exit(main())
