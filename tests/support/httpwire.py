"""HTTP/1.1 framing for the fault proxy (tests.support.faultproxy): reading a message head and
relaying a body in its own framing (length, chunks or up to the end), streamed, never held whole.
Only the standard library is used."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from io import BufferedReader

_COPY_SIZE = 64 * 1024
_MAX_LINE = 64 * 1024  # longest request/status/header line accepted
_MAX_HEADERS = 200


class BodyCut(Exception):
    """Raised by LimitedSink once a truncate fault has sent its bytes."""


class LimitedSink:
    """A sink that passes the first `budget` bytes on to `send`, then raises BodyCut."""

    def __init__(self, send: Callable[[bytes], object], budget: int) -> None:
        self._send = send
        self._budget = budget

    def __call__(self, data: bytes) -> None:
        if len(data) >= self._budget:
            if self._budget:
                self._send(data[: self._budget])
            raise BodyCut
        self._budget -= len(data)
        self._send(data)


def _read_line(reader: BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ValueError("HTTP line too long")
    return line


def read_head(reader: BufferedReader) -> tuple[bytes, list[bytes]] | None:
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


def read_response_head(reader: BufferedReader) -> tuple[bytes, list[bytes]]:
    """The final response head, skipping interim 1xx responses."""
    while True:
        head = read_head(reader)
        if head is None:
            raise ConnectionError("upstream closed before answering")
        status = int(head[0].split()[1])
        if not 100 <= status < 200:
            return head


def is_hop_by_hop(line: bytes) -> bool:
    """Whether a header line is one a proxy must not pass on (Connection, Keep-Alive)."""
    name = line.split(b":", 1)[0].strip().lower()
    return name in (b"connection", b"keep-alive", b"proxy-connection")


def names_one_of(line: bytes, names: tuple[str, ...]) -> bool:
    """Whether a header line's name is one of `names` (lower case)."""
    return line.split(b":", 1)[0].strip().lower().decode("latin-1") in names


def header_dict(lines: list[bytes]) -> dict[str, str]:
    """Header lines by lower-case name; a repeated header's values joined with ", "."""
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def copy_body(
    reader: BufferedReader,
    headers: Mapping[str, str],
    sink: Callable[[bytes], object] | None,
    *,
    is_request: bool,
) -> None:
    """Stream one message body from `reader` to `sink` (None: discard) in its own framing."""
    send = sink or (lambda data: None)
    if is_chunked(headers):
        _copy_chunked(reader, send)
    elif "content-length" in headers:
        _copy_exact(reader, int(headers["content-length"]), send)
    elif not is_request:  # a response without length or chunks runs to EOF
        for data in iter(lambda: reader.read1(_COPY_SIZE), b""):
            send(data)
    # (a request without length or chunks has no body)


def is_chunked(headers: Mapping[str, str]) -> bool:
    """Whether the body is sent in chunks (Transfer-Encoding: chunked)."""
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
