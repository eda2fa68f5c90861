"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put in front of the S3-protocol test server.

Clients use the proxy's `endpoint_url` as their S3 endpoint. Requests are forwarded byte for
byte (the Host header too, so SigV4 signatures made for the proxy's address reach the server
unchanged) unless a planned `Fault` matches: then the proxy answers with an S3 error, resets
the connection, stalls, cuts the response body short, or forwards the request without some
headers (a store that ignores Range or If-Match). `on_request` lets a test act at the moment a
request arrives, e.g. replace the object on the server mid-download. Bodies are streamed in both
directions, never held whole, so uploads and downloads of tens of MB pass through cheaply.

Only the standard library is used, and only loopback addresses are ever bound or dialled.
"""

from __future__ import annotations

import contextlib
import http
import itertools
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from types import MappingProxyType, TracebackType
from urllib.parse import unquote, urlsplit

__all__ = ["Fault", "FaultProxy", "ProxiedRequest"]

_COPY_SIZE = 64 * 1024
_MAX_LINE = 64 * 1024  # longest request/status/header line accepted
_MAX_HEADERS = 200
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_FAULT_KINDS = ("status", "reset", "stall", "truncate", "strip")


@dataclass(frozen=True)
class Fault:
    """One injected failure; `method` and `path` (percent-decoded, no query) narrow its target.

    Build faults with the constructors: `Fault.status(503, "SlowDown")`, `Fault.reset()`,
    `Fault.stall(1.5)`, `Fault.truncate(1024)`, `Fault.strip("range", "if-match")`; each takes
    `method=` and `path=` filters.
    """

    kind: str
    http_status: int = 0
    error_code: str = ""
    message: str = ""
    seconds: float = 0.0
    keep_bytes: int = 0
    method: str | None = None
    path: str | None = None
    headers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use {', '.join(_FAULT_KINDS)}")

    @classmethod
    def status(
        cls,
        http_status: int,
        error_code: str,
        message: str = "",
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Answer with `http_status` and an S3 XML error body whose <Code> is `error_code`."""
        text = message or http.HTTPStatus(http_status).phrase
        return cls("status", http_status, error_code, text, method=_upper(method), path=path)

    @classmethod
    def reset(cls, *, method: str | None = None, path: str | None = None) -> Fault:
        """Read the request, then close with SO_LINGER 0 so the client sees ECONNRESET."""
        return cls("reset", method=_upper(method), path=path)

    @classmethod
    def stall(cls, seconds: float, *, method: str | None = None, path: str | None = None) -> Fault:
        """Read the request, send nothing for `seconds` (or until the proxy stops), then close."""
        return cls("stall", seconds=seconds, method=_upper(method), path=path)

    @classmethod
    def truncate(
        cls,
        keep_bytes: int,
        *,
        stall: float = 0.0,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Forward the real status and headers but only `keep_bytes` of the body, then close.

        With `stall`, wait that long after those bytes before closing: a read timeout mid-body.
        Bytes are counted as sent on the wire (chunk framing included, if the server chunks).
        """
        return cls(
            "truncate", keep_bytes=keep_bytes, seconds=stall, method=_upper(method), path=path
        )

    @classmethod
    def strip(cls, *headers: str, method: str | None = None, path: str | None = None) -> Fault:
        """Forward the request without these headers (case-insensitive), as a store or proxy
        that ignores them would: `strip("range")` gets the whole object with 200."""
        names = tuple(name.lower() for name in headers)
        return cls("strip", method=_upper(method), path=path, headers=names)

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault targets a request with this method and decoded path."""
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path
        )


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy saw it, and the fault it got (None: forwarded untouched)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    fault: Fault | None

    @property
    def range(self) -> str | None:
        return self.headers.get("range")

    @property
    def if_match(self) -> str | None:
        return self.headers.get("if-match")


class FaultProxy:
    """A threaded HTTP/1.1 proxy to `upstream_url` (loopback only) with programmable faults.

    Use as a context manager or call `start()` / `stop()`. Handler threads are daemons; `stop()`
    closes every open connection and ends stalls at once.
    """

    def __init__(self, upstream_url: str, *, idle_timeout: float = 30.0) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or upstream.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"FaultProxy forwards only to http://127.0.0.1, not {upstream_url}")
        self._upstream = (upstream.hostname, upstream.port or 80)
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._planned: list[Fault] = []
        self._standing: list[Fault] = []
        self._log: list[ProxiedRequest] = []
        self._listeners: list[Callable[[ProxiedRequest], object]] = []
        self._open_sockets: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._connections_accepted = 0
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self.endpoint_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Bind a free port on 127.0.0.1 and start serving in a daemon thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler, proxy=self)
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET address
        self.endpoint_url = f"http://{host}:{port}"
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="faultproxy-accept",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self, join_timeout: float = 5.0) -> None:
        """Stop accepting, end stalls, close every connection and wait for handlers to finish."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets, handlers = list(self._open_sockets), list(self._handlers)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)
        for thread in handlers:
            thread.join(join_timeout)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the plan --------------------------------------------------------------------------

    def plan(self, *faults: Fault) -> None:
        """Queue faults; each is used once, by the next request it matches, in queue order."""
        with self._lock:
            self._planned.extend(faults)

    def fail_always(self, fault: Fault) -> None:
        """Apply `fault` to every matching request (after any queued ones) until `clear()`."""
        with self._lock:
            self._standing.append(fault)

    def clear(self) -> None:
        """Drop queued and standing faults; later requests are forwarded untouched."""
        with self._lock:
            self._planned.clear()
            self._standing.clear()

    def on_request(self, listener: Callable[[ProxiedRequest], object]) -> None:
        """Call `listener(request)` as each request arrives, before it is forwarded or faulted
        (in the handler's thread): the moment to change the server's state under a client,
        e.g. replace an object between a download's GET and its check of the object."""
        with self._lock:
            self._listeners.append(listener)

    @property
    def pending(self) -> tuple[Fault, ...]:
        """Queued faults no request has used yet."""
        with self._lock:
            return tuple(self._planned)

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request seen so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def connections_accepted(self) -> int:
        """Client connections accepted so far (keep-alive clients reuse one)."""
        with self._lock:
            return self._connections_accepted

    def _take_fault(
        self, method: str, path: str, query: str, headers: dict[str, str]
    ) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._planned if f.matches(method, path)), None)
            if fault is not None:
                self._planned.remove(fault)
            else:
                fault = next((f for f in self._standing if f.matches(method, path)), None)
            request = ProxiedRequest(method, path, query, MappingProxyType(headers), fault)
            self._log.append(request)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(request)
        return fault

    # -- one client connection -------------------------------------------------------------

    def _serve_connection(self, client: socket.socket) -> None:
        with self._lock:
            self._connections_accepted += 1
            self._open_sockets.add(client)
            self._handlers.add(threading.current_thread())
        client.settimeout(self._idle_timeout)
        reader = client.makefile("rb")
        try:
            while not self._stopping.is_set():
                head = _read_head(reader)
                if head is None or not self._serve_request(client, reader, *head):
                    break
        except (OSError, ValueError, IndexError):
            pass  # a peer went away or spoke garbage: drop the connection
        finally:
            reader.close()
            client.close()
            with self._lock:
                self._open_sockets.discard(client)
                self._handlers.discard(threading.current_thread())

    def _serve_request(
        self, client: socket.socket, reader: BufferedReader, start: bytes, lines: list[bytes]
    ) -> bool:
        """Answer one request; returns whether the connection may carry another."""
        method, target, version = start.decode("latin-1").split(" ", 2)
        headers = _header_dict(lines)
        raw_path, _, query = target.partition("?")
        fault = self._take_fault(method, unquote(raw_path), query, headers)

        if headers.get("expect", "").lower() == "100-continue":
            # Answer the expectation here so the body flows; the server never sees it.
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            lines = [line for line in lines if not line.lower().startswith(b"expect:")]
        keep_alive = "close" not in headers.get("connection", "").lower() and (
            version.strip() != "HTTP/1.0"
        )

        if fault is not None and fault.kind == "strip":
            lines = [line for line in lines if not _names_one_of(line, fault.headers)]
            headers = _header_dict(lines)
            fault = None
        if fault is None or fault.kind == "truncate":
            return self._forward(client, reader, method, start, lines, headers, fault, keep_alive)
        _copy_body(reader, headers, sink=None, is_request=True)
        if fault.kind == "status":
            client.sendall(_error_response(fault, method, raw_path, keep_alive))
            return keep_alive
        if fault.kind == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        self._stopping.wait(fault.seconds)  # a stall
        return False

    def _forward(
        self,
        client: socket.socket,
        reader: BufferedReader,
        method: str,
        start: bytes,
        lines: list[bytes],
        headers: dict[str, str],
        fault: Fault | None,
        keep_alive: bool,
    ) -> bool:
        """Relay one request upstream and its response back; returns whether to keep alive."""
        # A fresh upstream connection per request: no stale keep-alive state to get wrong.
        upstream = socket.create_connection(self._upstream, timeout=self._idle_timeout)
        with self._lock:
            self._open_sockets.add(upstream)
        up_reader = upstream.makefile("rb")
        try:
            upstream.sendall(start + b"".join(lines) + b"\r\n")
            _copy_body(reader, headers, sink=upstream.sendall, is_request=True)

            status_line, response_lines = _read_response_head(up_reader)
            response_headers = _header_dict(response_lines)
            status = int(status_line.split()[1])
            has_body = method != "HEAD" and status not in (204, 304)
            runs_to_eof = has_body and not (
                _is_chunked(response_headers) or "content-length" in response_headers
            )
            keep_alive = keep_alive and not runs_to_eof
            # Connection is hop-by-hop: moto closes after every response, but the client's
            # connection to the proxy stays open, as it would with S3.
            response_lines = [line for line in response_lines if not _is_hop_by_hop(line)]
            if not keep_alive:
                response_lines.append(b"Connection: close\r\n")
            client.sendall(status_line + b"".join(response_lines) + b"\r\n")

            sink: Callable[[bytes], object] = client.sendall
            if fault is not None:
                sink = _LimitedSink(client.sendall, fault.keep_bytes)
            if has_body:
                try:
                    _copy_body(up_reader, response_headers, sink=sink, is_request=False)
                except _BodyCut:
                    self._stopping.wait(fault.seconds if fault else 0)
                    return False
            # A truncate fault whose body was shorter than keep_bytes still closes, as planned.
            return keep_alive and fault is None
        finally:
            up_reader.close()
            upstream.close()
            with self._lock:
                self._open_sockets.discard(upstream)


# -- HTTP/1.1 framing -----------------------------------------------------------------------


class _BodyCut(Exception):
    """Raised by _LimitedSink once a truncate fault has sent its bytes."""


class _LimitedSink:
    def __init__(self, send: Callable[[bytes], object], budget: int) -> None:
        self._send = send
        self._budget = budget

    def __call__(self, data: bytes) -> None:
        if len(data) >= self._budget:
            if self._budget:
                self._send(data[: self._budget])
            raise _BodyCut
        self._budget -= len(data)
        self._send(data)


def _read_line(reader: BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ValueError("HTTP line too long")
    return line


def _read_head(reader: BufferedReader) -> tuple[bytes, list[bytes]] | None:
    """Start line and raw header lines (CRLF kept), or None at a clean end of the connection."""
    start = _read_line(reader)
    while start in (b"\r\n", b"\n"):  # tolerate stray CRLFs between requests (RFC 9112 2.2)
        start = _read_line(reader)
    if not start:
        return None
    lines: list[bytes] = []
    for _ in range(_MAX_HEADERS):
        line = _read_line(reader)
        if not line:
            raise ValueError("connection closed inside a header block")
        if line in (b"\r\n", b"\n"):
            return start, lines
        lines.append(line)
    raise ValueError("too many header lines")


def _read_response_head(reader: BufferedReader) -> tuple[bytes, list[bytes]]:
    """The final response head, skipping interim 1xx responses."""
    while True:
        head = _read_head(reader)
        if head is None:
            raise ConnectionError("upstream closed before answering")
        status = int(head[0].split()[1])
        if not 100 <= status < 200:
            return head


def _is_hop_by_hop(line: bytes) -> bool:
    name = line.split(b":", 1)[0].strip().lower()
    return name in (b"connection", b"keep-alive", b"proxy-connection")


def _names_one_of(line: bytes, names: tuple[str, ...]) -> bool:
    return line.split(b":", 1)[0].strip().lower().decode("latin-1") in names


def _header_dict(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _copy_body(
    reader: BufferedReader,
    headers: Mapping[str, str],
    sink: Callable[[bytes], object] | None,
    *,
    is_request: bool,
) -> None:
    """Stream one message body from `reader` to `sink` (None: discard) in its own framing."""
    send = sink or (lambda data: None)
    if _is_chunked(headers):
        _copy_chunked(reader, send)
    elif "content-length" in headers:
        _copy_exact(reader, int(headers["content-length"]), send)
    elif not is_request:  # a response without length or chunks runs to EOF
        for data in iter(lambda: reader.read1(_COPY_SIZE), b""):
            send(data)
    # (a request without length or chunks has no body)


def _is_chunked(headers: Mapping[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _copy_exact(reader: BufferedReader, length: int, send: Callable[[bytes], object]) -> None:
    remaining = length
    while remaining:
        data = reader.read(min(_COPY_SIZE, remaining))
        if not data:
            raise ConnectionError("peer closed inside a body")
        send(data)
        remaining -= len(data)


def _copy_chunked(reader: BufferedReader, send: Callable[[bytes], object]) -> None:
    """Relay a chunked body verbatim (sizes, extensions, trailers), chunk by chunk."""
    while True:
        size_line = _read_line(reader)
        if not size_line:
            raise ConnectionError("peer closed inside a chunked body")
        send(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        _copy_exact(reader, size + 2, send)  # the chunk and its CRLF
    for _ in range(_MAX_HEADERS):  # trailer fields, then the closing blank line
        line = _read_line(reader)
        if not line:
            raise ConnectionError("peer closed inside chunked trailers")
        send(line)
        if line in (b"\r\n", b"\n"):
            return
    raise ValueError("too many trailer lines")


_request_ids: Iterator[int] = itertools.count(1)


def _error_response(fault: Fault, method: str, resource: str, keep_alive: bool) -> bytes:
    """An S3-style error: status line, XML body naming the error code, exact Content-Length."""
    request_id = f"FAULTPROXY{next(_request_ids):08d}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_xml(fault.error_code)}</Code><Message>{_xml(fault.message)}</Message>"
        f"<Resource>{_xml(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    reason = http.HTTPStatus(fault.http_status).phrase
    head = (
        f"HTTP/1.1 {fault.http_status} {reason}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode("latin-1")
    return head if method == "HEAD" else head + body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _upper(method: str | None) -> str | None:
    return method.upper() if method else None


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # FaultProxy.stop() joins its handlers itself, with a bound
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, *, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.proxy._serve_connection(self.request)
