"""Alerts: one short message to a team chat when something needs a person, without a page open.

The message goes to the webhook in `ALERT_WEBHOOK_URL` as Slack-compatible JSON
(`{"text": ...}`; Slack, Mattermost, Rocket.Chat and Teams' Slack-style connectors take it).
Nothing is sent when the variable is unset. The URL is a secret (it carries the token): it is
never printed, logged or stored, and errors are reported without it.

When (stages.runner and stages.observe.status call in):
- a stage fails in CI (a scheduled or on-demand run; GitHub Actions or `CI=true`),
- an ingest fails anywhere (a load that trips a guard, a database that is down, ...),
- `python -m stages.observe.status` finds database drift (once per distinct finding a day).

Sending never changes what the pipeline does: every failure here is logged and swallowed, and
the request gives up after ALERT_TIMEOUT seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stages.errors import first_line
from stages.observe.dbview import DRIFT, Finding
from stages.store.secrets import redact

log = logging.getLogger(__name__)

WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
ALERT_TIMEOUT = 5.0  # seconds: an alert may delay a failing stage's exit this long at most
MAX_ERROR = 600  # characters of the error in a message: chats cut long ones anyway
DRIFT_STATE = "alerts-sent.json"  # under logs/: drift findings already sent, and when
DRIFT_REPEAT = 24 * 3600.0  # seconds before the same drift finding is sent again


def webhook_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The webhook URL from the environment, or None when alerts are off."""
    env = os.environ if environ is None else environ
    return env.get(WEBHOOK_VARIABLE, "").strip() or None


def send(text: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Post `text` to the webhook; True when it answered 2xx. Never raises.

    Off (False, nothing sent) without ALERT_WEBHOOK_URL. The text is redacted first (URL
    passwords, key=value secrets); failures are logged at warning level without the URL.
    """
    url = webhook_url(environ)
    if url is None:
        return False
    import urllib.error
    import urllib.request

    body = json.dumps({"text": redact(text)}).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "crawl-pipeline-alerts"},
    )
    try:
        if not url.lower().startswith(("https://", "http://")):
            raise ValueError(f"{WEBHOOK_VARIABLE} is not an http(s) URL")
        with urllib.request.urlopen(request, timeout=ALERT_TIMEOUT) as response:
            ok = 200 <= response.status < 300
            if not ok:
                log.warning("alert not delivered: the webhook answered HTTP %s", response.status)
            return ok
    except urllib.error.HTTPError as exc:
        log.warning("alert not delivered: the webhook answered HTTP %s", exc.code)
    except Exception as exc:
        reason = getattr(exc, "reason", exc)
        log.warning("alert not delivered: %s", _without(url, first_line(reason)))
    return False


def _without(url: str, message: str) -> str:
    """`message` with the webhook URL (and its path, which holds the token) replaced."""
    from urllib.parse import urlsplit

    message = message.replace(url, "***")
    path = urlsplit(url).path
    return message.replace(path, "/***") if len(path) > 1 else message


def ci_context(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{"ci": bool, "url": link to the CI run or None} from the CI's variables."""
    from stages.observe import runs

    context = runs.run_context("-", environ)
    trigger = context["trigger"] or ""
    return {"ci": trigger.startswith("ci"), "url": context["ci_url"], "trigger": trigger}


def stage_failed(
    stage: str,
    engine: str,
    error: str | None,
    *,
    attempt: int = 1,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Alert that `stage`@`engine` failed, when it matters: in CI, or any failed ingest.

    Returns True when a message was delivered. The message names the engine, the stage, what
    happened (the error's first line), the command that re-runs it and the CI run's link.
    """
    if webhook_url(environ) is None:
        return False
    ci = ci_context(environ)
    if not ci["ci"] and stage != "ingest":
        return False
    import socket

    what = redact(error or "failed without a message")[:MAX_ERROR]
    where = f" on {socket.gethostname()}"
    where += f" in CI ({ci['trigger']})" if ci["ci"] else ""
    lines = [
        f":rotating_light: crawl-pipeline: {stage}@{engine} failed{where}, attempt {attempt}.",
        what,
        f"Fix the cause, then run `uv run dvc repro {stage}@{engine}`"
        + (" (or re-run the failed CI job)." if ci["ci"] else "."),
    ]
    if ci["url"]:
        lines.append(f"Run: {ci['url']}")
    return send("\n".join(lines), environ=environ)


def drift_found(
    drift: list[Finding],
    logs: Path,
    *,
    environ: Mapping[str, str] | None = None,
    now: float | None = None,
) -> int:
    """Alert each engine whose database drifted (the snapshot's findings with state "drift").

    A finding already sent in the last DRIFT_REPEAT seconds is not sent again (remembered in
    logs/alerts-sent.json), so a status check every few minutes does not flood the channel.
    Returns how many messages were delivered.
    """
    if webhook_url(environ) is None:
        return 0
    now = time.time() if now is None else now
    state_path = logs / DRIFT_STATE
    try:
        sent = json.loads(state_path.read_text(encoding="utf-8"))
        sent = sent if isinstance(sent, dict) else {}
    except (OSError, ValueError):
        sent = {}
    ci = ci_context(environ)
    delivered = 0
    for finding in drift:
        if finding.state != DRIFT:
            continue
        engine, message = finding.engine, finding.message
        key = hashlib.sha256(f"{engine}\n{message}".encode()).hexdigest()[:16]
        if now - float(sent.get(key, 0)) < DRIFT_REPEAT:
            continue
        lines = [
            f":warning: crawl-pipeline: database drift for {engine} (found by status).",
            redact(message)[:MAX_ERROR],
        ]
        if ci["url"]:
            lines.append(f"Run: {ci['url']}")
        if send("\n".join(lines), environ=environ):
            sent[key] = now
            delivered += 1
    if delivered:
        try:
            logs.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(sent, sort_keys=True), encoding="utf-8")
        except OSError:
            log.debug("could not remember the alerts sent", exc_info=True)
    return delivered
