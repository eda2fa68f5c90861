"""A real headless Chromium for tests, driven over the DevTools protocol with the standard
library only (a minimal WebSocket client): no Playwright, no browser download.

    with Browser.launch(tmp_path) as browser:
        page = browser.open("http://127.0.0.1:4200/")
        page.wait_for("document.body.dataset.ready === '1'")
        text = page.evaluate("document.body.innerText")
        page.screenshot(Path("test-artifacts/dashboard.png"))

`chromium_path()` is None when no Chromium is installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

LAUNCH_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """The Chromium binary to use, or None when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextmanager
def dashboard_page(url: str, workdir: Path, ready: str) -> Iterator[Page]:
    """The page at `url` in a headless Chromium (profile under `workdir`), once the JavaScript
    expression `ready` holds; skips the test when Chromium is not installed."""
    if chromium_path() is None:
        pytest.skip("no Chromium binary at /usr/bin/chromium; install it: apt-get install chromium")
    with Browser.launch(workdir) as browser:
        page = browser.open(url)
        page.wait_for(ready)
        yield page


class DevToolsError(RuntimeError):
    pass


class Browser:
    """One headless Chromium process with a fresh profile in `profile`."""

    def __init__(self, process: subprocess.Popen, port: int, profile: Path):
        self.process = process
        self.port = port
        self.profile = profile

    @classmethod
    def launch(cls, workdir: Path, *, timeout: float = 30) -> Browser:
        binary = chromium_path()
        if binary is None:
            raise DevToolsError("no Chromium binary; install it with `apt-get install chromium`")
        profile = workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [binary, *LAUNCH_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "chromium.log").open("wb"),
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = (workdir / "chromium.log").read_text(errors="replace")[-2000:]
                raise DevToolsError(f"Chromium did not start its DevTools endpoint:\n{log}")
            time.sleep(0.05)
        return cls(process, int(port_file.read_text().split()[0]), profile)

    def open(self, url: str, *, width: int = 1400, height: int = 1000) -> Page:
        """A page showing `url`, loaded (the load event fired)."""
        target = self._http("PUT", "/json/new?about:blank")
        page = Page(_WebSocket(self.port, target["webSocketDebuggerUrl"]))
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        navigated = page.call("Page.navigate", url=url)
        if navigated.get("errorText"):
            raise DevToolsError(f"cannot load {url}: {navigated['errorText']}")
        # The blank page is "complete" too: wait for the document of `url` itself.
        page.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")
        return page

    def _http(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Page:
    """One tab: evaluate JavaScript, wait for a condition, take a screenshot."""

    def __init__(self, socket_: _WebSocket):
        self.socket = socket_
        self._ids = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        self.socket.send(json.dumps({"id": self._ids, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.receive())
            if message.get("id") != self._ids:
                continue  # an event; not needed here
            if "error" in message:
                raise DevToolsError(f"{method}: {message['error']}")
            return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 30) -> Any:
        """Poll `expression` until it is truthy; its value. Errors while the page is still
        loading (document.body is null, say) count as not yet."""
        deadline = time.monotonic() + timeout
        last_error: DevToolsError | None = None
        while True:
            try:
                value = self.evaluate(expression)
            except DevToolsError as exc:
                value, last_error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"timed out waiting for {expression} ({last_error})")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        """Save the whole page (not only the viewport) as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        width = int(self.evaluate("document.documentElement.scrollWidth"))
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class _WebSocket:
    """Just enough of RFC 6455 for DevTools: masked text frames out, text frames in."""

    def __init__(self, port: int, url: str):
        path = "/" + url.split("/", 3)[3]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise DevToolsError("DevTools closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise DevToolsError(f"WebSocket handshake refused: {head[:200]!r}")

    def send(self, text: str, opcode: int = 0x1) -> None:
        payload = text.encode("utf-8")
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise DevToolsError("DevTools closed the WebSocket")
            if opcode == 0x9:  # ping
                self.send(payload.decode("utf-8", "replace"), opcode=0xA)
                continue
            message += payload
            if first & 0x80:
                return message.decode("utf-8")

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise DevToolsError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data
