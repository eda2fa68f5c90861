"""Crawl files as raw lines: format detection, decoding and line splitting with flat memory.

`open_crawl` opens a crawl file whatever it arrived as (UTF-8, gzip, gzip inside gzip,
UTF-16/32 with or without a BOM) or raises UnreadableFile naming the format; `iter_lines`
streams it as raw lines.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from stages.rules.crawl_text import used_part

MAX_LINE_LENGTH = 2048
CHUNK_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"


class UnreadableFile(Exception):
    """A crawl file in a format `open_crawl` cannot read; `format` names what was seen."""

    def __init__(self, format: str) -> None:
        super().__init__(format)
        self.format = format


# Leading bytes of formats that are surely not a crawl file, checked before anything else.
_FOREIGN = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"\x28\xb5\x2f\xfd", "a zstd file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
    (b"\x7fELF", "an executable"),
)
# Longest BOM first: the UTF-32 LE BOM begins with the UTF-16 LE one.
_TEXT_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_SNIFF = 4096  # bytes looked at to tell text from binary
_GZIP_DEPTH = 3  # gzip layers unwrapped; more is no crawl export, rather a decompression bomb


@contextmanager
def open_crawl(path: Path) -> Iterator[BinaryIO]:
    """`path` as a stream of UTF-8-ish bytes for `iter_lines`, whatever it arrived as.

    By its leading bytes: gzip (Common Crawl ships .gz) is decompressed, UTF-16/UTF-32 with
    a BOM (Windows PowerShell 5.1 `>` writes UTF-16 LE) is re-encoded as UTF-8, both while
    streaming (memory stays flat); anything else is read as it is, unless it is an archive or
    document (zip, 7z, bzip2, xz, zstd, PDF, Office, ELF) or binary (over BINARY_SHARE of its
    first 4 KiB invalid UTF-8 or control bytes other than NUL and whitespace): then
    UnreadableFile names the format (a tar archive too, by its `ustar` magic at byte 257).
    UTF-16/32 without a BOM is told by its NUL bytes (every other byte in the first KiB, or
    three of four) and decoded the same way: no UTF-8 text holds NULs like that, and
    decoding loads the very leads of the UTF-8 original, where failing would only ask the
    user to re-save the file; so is BOM-less UTF-16 whose first KiB holds no ASCII at all (CJK
    text), told by its line ends. A gzip member holding UTF-16 is read the same way, and gzip
    inside gzip (a .gz gzipped again by an upload tool) is decompressed up to _GZIP_DEPTH deep.
    """
    import gzip

    with path.open("rb") as handle:
        stream: BinaryIO = handle
        head = handle.peek(_SNIFF)[:_SNIFF]
        depth = 0
        while head[:2] == b"\x1f\x8b":
            depth += 1
            if depth > _GZIP_DEPTH:
                raise UnreadableFile(f"gzip inside gzip more than {_GZIP_DEPTH} deep")
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
            try:
                head = stream.peek(_SNIFF)[:_SNIFF]  # type: ignore[attr-defined]
            except (OSError, EOFError) as exc:
                raise UnreadableFile(f"a damaged gzip file ({exc})") from None
        yield _decoded(stream, head)


def _decoded(stream: BinaryIO, head: bytes) -> BinaryIO:
    for magic, name in _FOREIGN:
        if head.startswith(magic):
            raise UnreadableFile(name)
    if head[257:262] == b"ustar":  # POSIX and GNU tar: the magic sits in the first header
        raise UnreadableFile("a tar archive")
    for bom, encoding in _TEXT_BOMS:
        # UTF-16/32 of URLs is mostly ASCII, so NUL bytes follow the BOM; a UTF-8 file whose
        # first line merely starts with the bytes FF FE is read as UTF-8 (and that line rejected).
        if head.startswith(bom) and (b"\x00" in head[len(bom) :] or len(head) == len(bom)):
            return _Recoded(stream, encoding, len(bom))  # type: ignore[return-value]
    # Fewer bytes than asked for: the sample is the whole (tiny) file.
    bomless = _bomless_encoding(head, whole=len(head) < _SNIFF)
    if bomless:
        return _Recoded(stream, bomless, 0)  # type: ignore[return-value]
    if _looks_binary(head):
        raise UnreadableFile("binary data (mostly bytes that are neither UTF-8 nor text)")
    return stream


def _bomless_encoding(head: bytes, whole: bool = False) -> str | None:
    """UTF-16/32 without a BOM (a file split or written by .NET without one), told by where
    the NUL bytes sit in the first KiB: text of URLs is ASCII, so each character's other
    bytes are NUL. UTF-8 and Latin-1 text holds no NUL at all, so the pattern is safe."""
    sample = head[:1024]
    size = len(sample) - len(sample) % 4
    if size < 4:
        return None
    share = [sample[i:size:4].count(0) / (size // 4) for i in range(4)]
    nul = [value >= 0.9 for value in share]
    text = [value <= 0.1 for value in share]
    if text[0] and nul[1] and nul[2] and nul[3]:
        return "utf-32-le"
    if nul[0] and nul[1] and nul[2] and text[3]:
        return "utf-32-be"
    if text[0] and text[2] and nul[1] and nul[3]:
        return "utf-16-le"
    if nul[0] and nul[2] and text[1] and text[3]:
        return "utf-16-be"
    return _utf16_by_line_ends(sample, whole and len(head) <= len(sample))


def _utf16_by_line_ends(sample: bytes, whole: bool) -> str | None:
    """UTF-16 without a BOM whose text is not ASCII (CJK lines before the URLs), told by its
    line ends: every LF sits in a code unit of its own (0A 00 little-endian, 00 0A big-endian),
    and the sample decodes to printable text. Binary data fails one of these. A tiny file
    (`whole`: the sample is all of it) may hold one line end, or none when every character
    is CJK, kana or Hangul: too few bytes to count on, and no binary format is that."""
    even = sample[: len(sample) - len(sample) % 2]
    units = [even[i : i + 2] for i in range(0, len(even), 2)]
    # Pairs of ASCII characters are what UTF-8 text (with a stray NUL line) would give.
    if sum(unit.isascii() and unit.isalnum() for unit in units) * 2 > len(units):
        return None
    for encoding, line_end in (("utf-16-le", b"\n\x00"), ("utf-16-be", b"\x00\n")):
        ends = units.count(line_end)
        if ends < (0 if whole else 2) or ends * 2 < even.count(b"\n"):
            continue
        try:
            text = even.decode(encoding)
        except UnicodeDecodeError:  # a surrogate cut at the sample's end, or not UTF-16
            text = even[:-2].decode(encoding, "replace")
        printable = sum(char.isprintable() or char in "\r\n\t" for char in text)
        if "\ufffd" in text or printable < 0.95 * len(text):
            continue
        if ends >= (1 if whole else 2) or all(_CJK.match(char) for char in text):
            return encoding
    return None


_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")

# Control bytes no text file holds; NUL is left out so a text file with a NUL-ridden line is
# still read line by line (those lines are rejected as control_chars).
_BINARY_CONTROLS = frozenset(
    "\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x11\x12\x13\x14\x15"
    "\x16\x17\x18\x19\x1a\x1c\x1d\x1e\x1f\x7f\ufffd"
)
BINARY_SHARE = 0.10  # of the first 4 KiB's characters: Latin-1 accents stay far below


def _looks_binary(head: bytes) -> bool:
    """Whether the start of a file is binary: invalid UTF-8 or odd controls above BINARY_SHARE."""
    text = head.decode("utf-8", "replace")
    odd = sum(1 for char in text if char in _BINARY_CONTROLS)
    return odd > BINARY_SHARE * len(text)


class _Recoded(io.RawIOBase):
    """A UTF-16/32 stream read as UTF-8, chunk by chunk; undecodable units become U+FFFD."""

    def __init__(self, stream: BinaryIO, encoding: str, skip: int) -> None:
        import codecs

        stream.read(skip)
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = CHUNK_SIZE if size is None or size < 0 else size
        while len(self._pending) < size:
            chunk = self._stream.read(size)
            text = self._decoder.decode(chunk, final=not chunk)
            self._pending += text.encode("utf-8", "surrogatepass")
            if not chunk:
                break
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def iter_lines(
    stream: BinaryIO, max_length: int = MAX_LINE_LENGTH, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes | None]:
    """Yield each physical line of a binary stream without its line end, or None if too long.

    Line ends are \\n, \\r\\n and a lone \\r; a UTF-8 BOM at the start is dropped. Memory stays
    flat in file size and line length: a line over `max_length` bytes is skipped, not held.
    """
    partial = b""  # start of a line whose end lies in a later chunk; never over max_length
    overlong = False  # the line being read is already over max_length: drop its bytes
    after_cr = False  # the previous chunk ended with \r, so a leading \n ends no new line
    for chunk in _chunks(stream, chunk_size):
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
            if not chunk:
                after_cr = False
                continue
        after_cr = chunk[-1] == 13
        lines = chunk.splitlines()  # bytes split on \n, \r\n and \r only
        # Unless the chunk ends a line, its last piece continues in the next chunk.
        tail = b"" if chunk[-1] in (10, 13) else lines.pop()
        start = 0
        if lines and (partial or overlong):
            joined = None if overlong else partial + lines[0]
            yield None if joined is None or len(joined) > max_length else joined
            partial, overlong, start = b"", False, 1
        if lines:
            if max(map(len, lines)) <= max_length:
                yield from islice(lines, start, None)
            else:
                for line in islice(lines, start, None):
                    yield None if len(line) > max_length else line
        if tail and not overlong:
            if len(partial) + len(tail) > max_length:
                partial, overlong = b"", True
            else:
                partial += tail
    if overlong:
        yield None
    elif partial:
        yield partial


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Non-empty chunks of the stream, the UTF-8 BOM at its start removed."""
    first = stream.read(size)
    while first and len(first) < len(_BOM) and _BOM.startswith(first):
        more = stream.read(size)  # the BOM itself may straddle tiny reads
        if not more:
            break
        first += more
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    if first:
        yield first
    while chunk := stream.read(size):
        yield chunk


def decoded_line(line: bytes) -> str | None:
    """A line that is not ASCII as text, or None when it is no text: UTF-8; else, when only
    its query or fragment is not UTF-8 (a Latin-1 query the parser discards), its head as
    UTF-8 and the rest with U+FFFD. A line that is neither is read as Windows-1252 by
    `LineParser` (decided per line: memory stays flat and a file joined from several files
    stays right; a line of real UTF-8 never gets there)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        pass
    head = used_part(line.decode("latin-1"))  # one character per byte
    try:
        return line[: len(head)].decode("utf-8") + line[len(head) :].decode("utf-8", "replace")
    except UnicodeDecodeError:
        return None


def windows_1252(line: bytes) -> str:
    """A line that is no UTF-8 read as Windows-1252; its 5 undefined bytes (0x81, 0x8D, 0x8F,
    0x90, 0x9D) as U+FFFD, which no URL or id holds."""
    return line.decode("cp1252", "replace")
