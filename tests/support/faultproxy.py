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
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from io import BufferedReader
from types import MappingProxyType, TracebackType
from urllib.parse import unquote, urlsplit

from tests.support.faults import Fault, ProxiedRequest, error_response
from tests.support.httpwire import (
    BodyCut,
    LimitedSink,
    copy_body,
    header_dict,
    is_chunked,
    is_hop_by_hop,
    names_one_of,
    read_head,
    read_response_head,
)

__all__ = ["Fault", "FaultProxy", "ProxiedRequest"]

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


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
                head = read_head(reader)
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
        headers = header_dict(lines)
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
            lines = [line for line in lines if not names_one_of(line, fault.headers)]
            headers = header_dict(lines)
            fault = None
        if fault is None or fault.kind == "truncate":
            return self._forward(client, reader, method, start, lines, headers, fault, keep_alive)
        copy_body(reader, headers, sink=None, is_request=True)
        if fault.kind == "status":
            client.sendall(error_response(fault, method, raw_path, keep_alive))
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
            copy_body(reader, headers, sink=upstream.sendall, is_request=True)

            status_line, response_lines = read_response_head(up_reader)
            response_headers = header_dict(response_lines)
            status = int(status_line.split()[1])
            has_body = method != "HEAD" and status not in (204, 304)
            runs_to_eof = has_body and not (
                is_chunked(response_headers) or "content-length" in response_headers
            )
            keep_alive = keep_alive and not runs_to_eof
            # Connection is hop-by-hop: moto closes after every response, but the client's
            # connection to the proxy stays open, as it would with S3.
            response_lines = [line for line in response_lines if not is_hop_by_hop(line)]
            if not keep_alive:
                response_lines.append(b"Connection: close\r\n")
            client.sendall(status_line + b"".join(response_lines) + b"\r\n")

            sink: Callable[[bytes], object] = client.sendall
            if fault is not None:
                sink = LimitedSink(client.sendall, fault.keep_bytes)
            if has_body:
                try:
                    copy_body(up_reader, response_headers, sink=sink, is_request=False)
                except BodyCut:
                    self._stopping.wait(fault.seconds if fault else 0)
                    return False
            # A truncate fault whose body was shorter than keep_bytes still closes, as planned.
            return keep_alive and fault is None
        finally:
            up_reader.close()
            upstream.close()
            with self._lock:
                self._open_sockets.discard(upstream)


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
