"""Crawl files as raw lines: line ends, chunks, over-long lines, gzip, UTF-16/32 and formats that
are no crawl file."""

from __future__ import annotations

import codecs
import gzip
import io
import random
import tracemalloc
from typing import BinaryIO, cast

import pytest

from stages.rules.crawl import (
    UnreadableFile,
    iter_lines,
    open_crawl,
)
from tests.support.crawl import (
    SAMPLE,
    lines_of_file,
)

pytestmark = pytest.mark.unit  # pure logic: no services, no other programs


# --- iter_lines ----------------------------------------------------------------------------


def lines_of(data: bytes, **kwargs) -> list[bytes | None]:
    return list(iter_lines(io.BytesIO(data), **kwargs))


def test_lf_crlf_and_lone_cr_all_end_lines():
    assert lines_of(b"a\nb\r\nc\rd") == [b"a", b"b", b"c", b"d"]


def test_blank_lines_are_kept_so_numbers_are_positions():
    assert lines_of(b"a\n\n\r\n\rb\n") == [b"a", b"", b"", b"", b"b"]


def test_final_line_end_adds_no_empty_line():
    assert lines_of(b"a\nb\n") == [b"a", b"b"]
    assert lines_of(b"") == []


def test_only_cr_and_lf_end_lines():
    # bytes.splitlines-style: VT, FF, FS and NEL are content, not line ends.
    assert lines_of(b"a\x0bb\x0cc\x1cd\xc2\x85e\n") == [b"a\x0bb\x0cc\x1cd\xc2\x85e"]


def test_bom_at_start_is_dropped_and_kept_elsewhere():
    assert lines_of(b"\xef\xbb\xbfa\n\xef\xbb\xbfb\n") == [b"a", b"\xef\xbb\xbfb"]


def test_bom_split_across_reads_is_dropped():
    assert lines_of(b"\xef\xbb\xbfa\nb", chunk_size=1) == [b"a", b"b"]


def test_file_of_only_a_bom_has_no_lines():
    assert lines_of(b"\xef\xbb\xbf") == []


def test_nul_and_invalid_utf8_pass_through_as_one_line_each():
    assert lines_of(b"a\x00b\n\xff\xfe\n") == [b"a\x00b", b"\xff\xfe"]


def test_crlf_split_at_a_chunk_boundary_ends_one_line():
    assert lines_of(b"ab\r\ncd", chunk_size=3) == [b"ab", b"cd"]


def test_lone_cr_at_a_chunk_boundary_ends_a_line():
    assert lines_of(b"ab\rcd\r\r\n", chunk_size=3) == [b"ab", b"cd", b""]


TRICKY = (
    b"\xef\xbb\xbfhttps://a/1\r\nb\rc\n\r\n\r\rlong-line-" + b"x" * 40 + b"\r\nend\r",
    b"\r\n\r\n\n\r",
    b"x" * 50,
)


@pytest.mark.parametrize("data", TRICKY)
def test_every_chunk_size_gives_the_same_lines(data):
    expected = lines_of(data, max_length=20)
    for size in range(1, len(data) + 2):
        assert lines_of(data, max_length=20, chunk_size=size) == expected, size


def test_line_over_max_length_yields_none_and_reading_goes_on():
    assert lines_of(b"abc\n" + b"x" * 11 + b"\ndef", max_length=10) == [b"abc", None, b"def"]


def test_line_of_exactly_max_length_is_kept():
    assert lines_of(b"x" * 10 + b"\n", max_length=10) == [b"x" * 10]


def test_over_long_line_across_many_chunks_yields_one_none():
    data = b"a\n" + b"x" * 1000 + b"\r\nb"
    assert lines_of(data, max_length=10, chunk_size=7) == [b"a", None, b"b"]


def test_over_long_last_line_without_line_end_yields_none():
    assert lines_of(b"a\n" + b"x" * 100, max_length=10, chunk_size=8) == [b"a", None]


class _HugeLine(io.RawIOBase):
    """A stream of one `size`-byte line then "\\nok\\n", made on the fly."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.tail = b"\nok\n"

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left:
            count = min(n, self.left)
            self.left -= count
            return b"x" * count
        out, self.tail = self.tail[:n], self.tail[n:]
        return out


def test_huge_line_is_skipped_without_being_held_in_memory():
    tracemalloc.start()
    try:
        stream = cast(BinaryIO, _HugeLine(64 << 20))  # a raw stream: iter_lines only reads
        lines = list(iter_lines(stream, chunk_size=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == [None, b"ok"]
    assert peak < 8 << 20  # a few chunks, never the 64 MiB line


# --- whole files: gzip, UTF-16/32, and formats that are no crawl file -----------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be", "gzip"])
def test_gzip_and_utf16_or_utf32_files_read_like_their_utf8_original(tmp_path, encoding):
    original, other = tmp_path / "original.txt", tmp_path / "other.txt"
    original.write_bytes(SAMPLE.encode())
    if encoding == "gzip":
        other.write_bytes(gzip.compress(SAMPLE.encode()))
    else:
        bom = codecs.BOM_UTF32_BE if encoding == "utf-32-be" else b""
        bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else bom
        other.write_bytes(bom + SAMPLE.encode(encoding))
    assert lines_of_file(other) == lines_of_file(original)


def test_a_gzipped_utf16_file_is_read_too(tmp_path):
    path = tmp_path / "crawl.txt.gz"
    path.write_bytes(gzip.compress(SAMPLE.encode("utf-16")))
    assert lines_of_file(path)[0] == b"https://hotels.cloudbeds.com/reservation/Qw3rTy"


@pytest.mark.parametrize(
    ("data", "format"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "zip"),
        (random.Random(3).randbytes(8192), "binary"),
        (b"\x7fELF\x02\x01\x01", "executable"),
        (b"%PDF-1.7\n", "PDF"),
    ],
)
def test_a_file_of_another_format_is_unreadable_and_named(tmp_path, data, format):
    path = tmp_path / "crawl.txt"
    path.write_bytes(data)
    with pytest.raises(UnreadableFile) as caught:
        lines_of_file(path)
    assert format in caught.value.format


def test_a_large_gzip_file_is_read_with_flat_memory(tmp_path):
    path = tmp_path / "big.txt.gz"
    line = b"https://hotels.cloudbeds.com/reservation/Qw3rTy?utm_source=x\n"
    with gzip.open(path, "wb", compresslevel=1) as out:
        for _ in range(40):
            out.write(line * 10_000)  # 24 MiB of text
    tracemalloc.start()
    try:
        with open_crawl(path) as stream:
            count = sum(1 for _ in iter_lines(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 400_000
    assert peak < 8 << 20


def test_a_text_file_with_nul_ridden_lines_is_still_read_line_by_line(tmp_path):
    path = tmp_path / "crawl.txt"
    path.write_bytes(b"AbC123\n" + b"\x00" * 100 + b"\nZx9Wv8\n")
    assert lines_of_file(path) == [b"AbC123", b"\x00" * 100, b"Zx9Wv8"]


def test_a_utf8_file_whose_first_line_starts_with_ff_fe_is_not_taken_for_utf16(tmp_path):
    path = tmp_path / "crawl.txt"
    path.write_bytes(b"\xff\xfehttps://hotels.cloudbeds.com/reservation/AbC123\nZx9Wv8\n")
    assert lines_of_file(path)[1] == b"Zx9Wv8"


def test_a_tar_archive_is_unreadable_and_named(tmp_path):
    import tarfile

    inner = tmp_path / "cloudbeds.txt"
    inner.write_text("https://hotels.cloudbeds.com/reservation/AbC123\n")
    path = tmp_path / "crawl.txt"
    with tarfile.open(path, "w") as archive:
        archive.add(inner, arcname="cloudbeds.txt")
    with pytest.raises(UnreadableFile) as caught:
        lines_of_file(path)
    assert caught.value.format == "a tar archive"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_or_utf32_without_a_bom_reads_like_its_utf8_original(tmp_path, encoding):
    original, other = tmp_path / "original.txt", tmp_path / "other.txt"
    original.write_bytes(SAMPLE.encode())
    other.write_bytes(SAMPLE.encode(encoding))
    assert lines_of_file(other) == lines_of_file(original)
