"""Streaming a data file: gzip bytes -> checked lines -> records.

Invariant: ``iter_lines`` holds at most one read block plus one line in
memory, whatever the file size. It yields every line, and only after the
last one does it check what the manifest promised: MD5 of the gzip bytes
(base64, as ``md5Checksum``), a complete gzip stream, and the item count. So
a consumer that commits only after the generator is exhausted never commits
a file that fails a check.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from dynadex.errors import ChecksumMismatch, CorruptDataFile, ItemCountMismatch
from dynadex.export.manifest import DataFile, Export
from dynadex.export.records import Record, parser_for

BLOCK = 1 << 20


@dataclass
class FileStats:
    items: int = 0
    gzip_bytes: int = 0
    json_bytes: int = 0


def iter_lines(source, data_file: DataFile, stats: FileStats | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line_bytes)`` of one data file, then verify it."""
    where = source.url(data_file.key)
    stats = stats if stats is not None else FileStats()
    md5 = hashlib.md5()
    inflater = zlib.decompressobj(wbits=31)
    pending = b""
    number = 0
    body = source.open(data_file.key)
    try:
        while True:
            block = body.read(BLOCK)
            if not block:
                break
            md5.update(block)
            stats.gzip_bytes += len(block)
            try:
                text = inflater.decompress(block)
                # A gzip file may hold several members one after another.
                while inflater.eof and inflater.unused_data:
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    text += inflater.decompress(rest)
            except zlib.error as exc:
                raise CorruptDataFile(where, f"corrupt gzip data: {exc}") from exc
            if not text:
                continue
            stats.json_bytes += len(text)
            pending += text
            lines = pending.split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line.strip():
                    number += 1
                    stats.items = number
                    yield number, line
    finally:
        body.close()
    if stats.gzip_bytes and not inflater.eof:
        raise CorruptDataFile(where, "truncated gzip data (the stream ends before its end marker)")
    if pending.strip():
        number += 1
        stats.items = number
        yield number, pending
    digest = base64.b64encode(md5.digest()).decode("ascii")
    if digest != data_file.md5:
        raise ChecksumMismatch(where, f"MD5 {digest} does not match the manifest's md5Checksum {data_file.md5}")
    if number != data_file.item_count:
        raise ItemCountMismatch(where, f"holds {number} items but the manifest says {data_file.item_count}")


def iter_records(export: Export, data_file: DataFile, stats: FileStats | None = None) -> Iterator[Record]:
    """Yield the parsed records of one data file, verified as in ``iter_lines``."""
    parse = parser_for(export.summary.output_format)
    where = export.url(data_file.key)
    for number, line in iter_lines(export.source, data_file, stats):
        yield parse(line, where, number)


def verify_file(export: Export, data_file: DataFile, *, decode: bool = True) -> FileStats:
    """Read one data file to its end, checking everything; return its figures."""
    stats = FileStats()
    if decode:
        for _ in iter_records(export, data_file, stats):
            pass
    else:
        for _ in iter_lines(export.source, data_file, stats):
            pass
    return stats
