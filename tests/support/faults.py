"""What the fault proxy (tests.support.faultproxy) does to a request: the `Fault` kinds, the
record of each request it saw (`ProxiedRequest`), and the S3 error answer of a status fault."""

from __future__ import annotations

import http
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

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


_request_ids: Iterator[int] = itertools.count(1)


def error_response(fault: Fault, method: str, resource: str, keep_alive: bool) -> bytes:
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
