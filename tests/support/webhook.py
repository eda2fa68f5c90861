"""A chat webhook on 127.0.0.1 that records what it is sent (Slack-compatible JSON bodies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# The path holds the secret, as in Slack's https://hooks.slack.com/services/T.../B.../<token>.
SECRET_PATH = "/services/T0AAA1111/B0BBB2222/s3cr3tW3bh00kT0k3n"


@dataclass
class Webhook:
    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # what it answers; set 500 to play a broken chat service

    @property
    def texts(self) -> list[str]:
        return [str(m.get("text")) for m in self.messages]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook at http://127.0.0.1:<port>/services/...; `messages` holds the JSON received."""
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == SECRET_PATH:
                hook.messages.append(json.loads(body))
            self.send_response(hook.status if self.path == SECRET_PATH else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A webhook URL on 127.0.0.1 where nothing listens (the chat service is down)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"
