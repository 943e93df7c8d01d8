"""Chunk build inside DuckDB: the same segment as the Python path, at DuckDB speed.

The Python path (``build.build_chunk``) shapes every item in Python: exact,
but about 13k items/s per core. Here DuckDB reads the gzip files, parses
each line into a struct whose type is the export's own attribute structure,
and stages the three indexes with SQL generated from that structure
(``fast_sql``: canonical item text, canonical key, typed columns, inverted
entries); ``chunk_writer.finish_chunk`` writes them as the chunk's final files.
This module only orchestrates: download and checks, parse rounds, the
Python share of odd lines, the manifest.

Invariant: a segment written here is byte-for-byte what the Python path
would write for the same chunk (tests/store/bulk/test_fastbuild.py compares the
two on a chunk with every type). The fast path only commits a segment when
every line passes a guard that proves it lies in the domain where that holds:

* the line is ``{"Item":{…}}`` and holds no ``\\u`` escape (the escapes are
  the only place where DuckDB's and Python's JSON text can differ);
* the line is at most 400 KB (its bytes bound its item's size, so its item
  is within DynamoDB's limit) and nests at most 16 levels (``fast_structure``;
  so an item deeper than DynamoDB's 32 reaches the Python check);
* every number is already canonical (DynamoDB writes them so), every binary
  is canonical base64, every set is non-empty with distinct members, every
  NULL is ``true``, the key attributes have the table's key types;
* every value has its JSON type (strings for S, N, B and set members, true
  or false for BOOL and NULL, an object for M, an array for L), checked by
  one RE2 scan of the raw line (``WRONG_JSON_TYPE``; an ION line's translation has
  them by construction, ``fast_ion``);
* the canonical item text regenerated from the parsed struct is exactly as
  long as the item text in the line. With types checked and numbers and
  binaries canonical, regeneration can only shorten (sorted keys, sorted
  sets, fewer escapes), never lengthen, so equal length means nothing was
  dropped: no attribute outside the structure, no second type tag.

The structure a chunk parses with comes from a sample of its lines, seeded by
what the build's earlier chunks found (``structure_seed``: a seeded chunk
samples a tenth as many lines). It only decides how lines are parsed, never
what a segment holds: the guard above refuses any line it does not cover.

An ION export's lines are typed inside DuckDB as their DynamoDB JSON
translations would parse (``fast_ion``: from each distinct skeleton, parsed
once, and each line's values; no JSON text per line, and no typing for a
line it cannot translate token for token); the guard then runs as on the
translation, and every line it refuses, or that has none, is shaped by the
exact Ion parser from its Ion text. So an ION segment is byte-for-byte what the Python path writes for the
same ION chunk, and the same as a JSON export of the same items gives
(tests/store/bulk/test_fast_ion.py).

Anything else (a line outside the domain, a file DuckDB cannot read, an
MD5 or item-count mismatch) makes ``build_chunk_fast`` return ``None`` before
any manifest is written, and the caller runs the exact Python path, which
owns every error message. So errors name the file and line as before.
Service faults are not the input's: S3 still failing after its retries
(``TransientError``) or a full disk end the build at once, since the Python
path would only meet them again (reading the chunk twice doubled the retry
budget; decision 0017).
"""


from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time

import pyarrow as pa

from dynadex.errors import TransientError
from dynadex.export.manifest import Export
from dynadex.export.records import parse_ion_line, parse_json_line
from dynadex.export.source import LocalSource
from dynadex.store.bulk import fast_ion, fast_sql, structure_seed
from dynadex.store.bulk.chunk_manifest import ChunkManifest, ColumnStats, remove_manifest
from dynadex.store.bulk.chunk_writer import add_stats, finish_chunk
from dynadex.store.bulk.fast_structure import clean, merge, sampled_structure
from dynadex.store.bulk.plan import ChunkSpec
from dynadex.store.catalog.disk_full import is_no_space
from dynadex.store.catalog.extensions import connect
from dynadex.store.catalog.lake import s3_secret
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.errors import OutsideFastPath
from dynadex.store.layout.arrow import columns_arrow, inverted_arrow, rows_arrow
from dynadex.store.layout.shape import NumberStats, Shaped

log = logging.getLogger("dynadex.build")

# DuckDB's own limit for a chunk build (it spills beyond it): keeps the whole task under 2 GB, measured
BUILD_MEMORY = "1100MB"
ROUNDS = 3  # structure refinements from lines the sample did not cover
# Lines still outside the domain after the refinements are shaped by the exact Python code, as long as they
# are few; otherwise the whole chunk goes to the Python path.
MIXED_MIN_LINES, MIXED_FRACTION, MIXED_MAX_LINES = 1_000, 0.10, 200_000


class Steps:
    """Wall time of each step, logged as it ends (progress in the task log) and summed up at the end."""

    def __init__(self, chunk_id: str) -> None:
        self.chunk_id = chunk_id
        self.t = time.monotonic()
        self.spent: list = []

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.spent.append(f"{name} {now - self.t:.2f}s")
        log.info("%s: %s done in %.2fs", self.chunk_id, name, now - self.t)
        self.t = now


def _local_files(export: Export, spec: ChunkSpec, tmp: str) -> tuple[list[str], list[int]]:
    """Local paths of the chunk's files, each MD5-checked against the manifest (S3 files are downloaded),
    and each file's gzip ISIZE (its last 4 bytes: the uncompressed size mod 2**32)."""
    paths, sizes = [], []
    for f in spec.files:
        md5 = hashlib.md5()
        if isinstance(export.source, LocalSource):
            path = str(export.source.path(f.key))
            with open(path, "rb") as fh:
                while block := fh.read(1 << 22):
                    md5.update(block)
        else:
            path = os.path.join(tmp, f"{len(paths):05d}.json.gz")
            with export.source.open(f.key) as body, open(path, "wb") as out:
                while block := body.read(1 << 22):
                    md5.update(block)
                    out.write(block)
        if base64.b64encode(md5.digest()).decode("ascii") != f.md5:
            raise OutsideFastPath(f"{f['key']}: MD5 differs")
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(max(0, os.path.getsize(path) - 4))
            tail = fh.read(4)
        if head != b"\x1f\x8b" or len(tail) != 4:
            raise OutsideFastPath(f"{f['key']}: not a gzip file")
        paths.append(path)
        sizes.append(int.from_bytes(tail, "little"))
    return paths, sizes


def read_lines(con, files: list[str], ion: bool = False) -> None:
    """Temp table ``lines(line, filename)``: every line of the gzip files, raw (the delimiter chr(1) cannot
    appear unescaped in valid JSON, so each line is one value). Of an ION export, ``lines(raw, filename, sid,
    vals, strings_ok, translen)`` and ``ion_skeletons``: each Ion line as ``raw`` and the parts ``fast_ion``
    builds its typed struct from (its skeleton, whose ``line`` is the translation's JSON shape, and its
    values)."""
    read = ("SELECT {} FROM read_csv(?, columns = {{'{}': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '', "
            "header = false, auto_detect = false, compression = 'gzip', filename = true, new_line = '\\n')")
    if not ion:
        con.execute("CREATE TEMP TABLE lines AS " + read.format("line, filename", "line"), [files])
        return
    first, *rest, select = fast_ion.ion_tables_sql("(" + read.format("raw, filename", "raw") + ")")
    con.execute(first, [files])
    for statement in rest:
        con.execute(statement)
    con.execute("CREATE TEMP TABLE lines AS " + select)
    con.execute("DROP TABLE ion_parts")


def _check_counts(con, files: list[str], isizes: list[int], spec: ChunkSpec, text: str) -> int:
    counts = {name: (n, size) for name, n, size in
              con.execute(f"SELECT filename, count(*), sum(strlen({text}) + 1) FROM lines GROUP BY ALL").fetchall()}
    for path, isize, f in zip(files, isizes, spec.files):
        n, size = counts.get(path, (0, 0))
        if n != f.item_count:
            raise OutsideFastPath(f"{f['key']}: {n} lines, manifest says {f['item_count']}")
        # DuckDB reads a gzip stream cut before its trailer without complaint: the trailer's size must
        # match what was read (a truncated file ends in deflate data, not in its size)
        if (size or 0) % 2**32 != isize:
            raise OutsideFastPath(f"{f['key']}: gzip trailer size {isize} differs from {size} bytes read")
    return sum(n for n, _ in counts.values())


def parse_lines(con, structure: dict, key_names, key_types, total: int, steps, ion: bool = False,
                carry: tuple[str, ...] = (), bounded: bool = True) -> tuple[dict, int]:
    """Parse every line (temp table ``typed``, keeping the ``carry`` columns of ``lines``), refining the
    structure from lines the sample missed; returns the structure and how many lines are still outside the
    domain (``OutsideFastPath`` when they are too many, unless not ``bounded``: a stream batch's Python
    share is never more than the Python path would shape). ``steps(name)`` is told when each round ends."""
    bad = 0
    for _round in range(ROUNDS):
        for name, t in zip(key_names, key_types):
            if t not in structure.get(name, {}):
                raise OutsideFastPath(f"key {name} never has type {t}")
        con.execute("DROP TABLE IF EXISTS typed")
        con.execute(fast_sql.typed_table_sql(structure, key_names, key_types, raw=ion, carry=carry))
        bad = con.execute("SELECT count(*) FROM typed WHERE NOT ok").fetchone()[0]
        steps("parse+check")
        if not bad:
            break
        more = con.execute(
            "SELECT json_group_structure(json_extract(bad_line, '$.Item')) FROM typed WHERE NOT ok").fetchone()[0]
        try:
            merged = clean(merge(structure, json.loads(more)))
        except OutsideFastPath:
            break  # what the sample missed is not DynamoDB JSON we can type: those lines go to Python
        if merged == structure:
            break  # the structure covers them; they are outside the domain for another reason
        structure = merged
    if bounded and (bad > max(MIXED_MIN_LINES, total * MIXED_FRACTION) or bad > MIXED_MAX_LINES):
        raise OutsideFastPath(f"{bad} lines outside the fast path's domain")
    return structure, bad


def column_stats(con, exprs: dict) -> list[ColumnStats]:
    """Counts and number figures of every column, from the parsed fields (cheap)."""
    sql = fast_sql.figures_sql(exprs)
    figures = iter(con.execute(sql).fetchone() if sql else ())
    out = []
    for n in sorted(exprs):
        path, kind, _expr, _f = exprs[n]
        count = next(figures)
        number = None
        if kind in ("N", "NS"):
            integral, digits, scale = next(figures)
            number = NumberStats(bool(integral), int(digits), int(scale))
        out.append(ColumnStats(path, kind, int(count), number))
    return out


def _python_share(con, key_names, key_types, version, origin, stats: dict, ion: bool) -> int:
    """Shape the lines the guard refused with the exact Python code (an ION export's from their Ion text),
    registered as ``py_rows``, ``py_cols`` and ``py_inv`` beside the DuckDB-staged rows.

    Any error declines the whole chunk (the caller's except): the Python path then reads the chunk and
    raises its own message, with file and line."""
    shaped = Shaped()
    parse = parse_ion_line if ion else parse_json_line
    for (text,) in con.execute(f"SELECT {'bad_raw' if ion else 'bad_line'} FROM typed WHERE NOT ok").fetchall():
        shaped.add(parse(text, "", 0).item, key_names, version, origin, key_types)
    con.register("py_rows", rows_arrow(shaped, key_types))
    con.register("py_cols", columns_arrow(shaped) if len(shaped) else pa.table({"_key": pa.array([], pa.string())}))
    con.register("py_inv", inverted_arrow(shaped))
    add_stats(stats, shaped)
    return len(shaped)


def build_chunk_fast(export: Export, spec: ChunkSpec, location: StoreLocation, table: str, build_id: str,
                     key_names: tuple[str, ...], key_types: tuple[str, ...], version: int, origin: str,
                     *, threads: int | None = None) -> ChunkManifest | None:
    """Write the chunk's final files and manifest, or return ``None`` when the chunk needs the Python path."""
    if export.summary.output_format not in ("DYNAMODB_JSON", "ION") or export.summary.export_type != "FULL_EXPORT":
        return None
    ion = export.summary.output_format == "ION"
    text = "raw" if ion else "line"  # the file's own text: its sizes, and what the Python share reads
    remove_manifest(location, table, build_id, spec.chunk_id)
    tmp = tempfile.mkdtemp(prefix="dynadex-fast-")
    con = connect(threads=threads, memory_limit=BUILD_MEMORY)
    con.execute("SET preserve_insertion_order = false")  # every file is written with an explicit ORDER BY
    try:
        if location.data_path.startswith("s3://"):
            s3_secret(con, location)  # the chunk's files go straight to S3
        started = time.monotonic()
        steps = Steps(spec.chunk_id)
        files, isizes = _local_files(export, spec, tmp)
        steps("md5")
        read_lines(con, files, ion)
        steps("read" + (" and convert" if ion else ""))
        total = _check_counts(con, files, isizes, spec, text)
        json_bytes = con.execute(f"SELECT coalesce(sum(strlen({text}) + 1), 0) FROM lines").fetchone()[0]
        seed = structure_seed.read_seed(location, table, build_id)
        # an ION line's JSON shape is its skeleton's (fast_ion): the sample is of the distinct skeletons (all of
        # them when they are few, as in most exports)
        shapes = "ion_skeletons" if ion else "lines"
        structure = sampled_structure(con, seed, shapes)
        steps("sample" + (" (seeded)" if seed else ""))
        structure, bad = parse_lines(con, structure, key_names, key_types, total, steps, ion)
        con.execute("DROP TABLE lines")
        con.execute("DROP TABLE IF EXISTS ion_skeletons")
        exprs = fast_sql.column_exprs(structure)
        stats_list = column_stats(con, exprs)
        filled = [n for n, s in zip(sorted(exprs), stats_list) if s.count]
        stats = {(s.path, s.kind): s for s in stats_list if s.count}
        steps("column figures")
        rows = fast_sql.rows_sql(structure, key_names, key_types, version, origin)
        cols = fast_sql.cols_sql(exprs, filled)
        inv = fast_sql.inv_sql(structure)
        if bad:
            shaped = _python_share(con, key_names, key_types, version, origin, stats, ion)
            steps(f"python share ({shaped} lines)")
            rows = f"({rows}) UNION ALL BY NAME (SELECT * FROM py_rows)"
            cols = f"({cols}) UNION ALL BY NAME (SELECT * FROM py_cols)"
            inv = f"({inv}) UNION ALL BY NAME (SELECT * FROM py_inv)"
        manifest = finish_chunk(
            con, location, ChunkManifest(table, build_id, spec.chunk_id, total, tuple(key_names), tuple(key_types),
                                         built_by="duckdb", python_lines=bad, source_files=[f.key for f in spec.files],
                                         json_bytes=int(json_bytes),
                                         gzip_bytes=sum(os.path.getsize(p) for p in files)),
            rows_sql=rows, cols_sql=cols, inv_sql=inv, stats=list(stats.values()), steps=steps)
        # only a chunk that was built seeds the next ones: a failed one leaves nothing in the store's folder
        structure_seed.add_to_seed(location, table, build_id, structure, seed)
        log.info("%s: %d items, %.0f MB in %.1fs in DuckDB (%d files): %s", spec.chunk_id, total, json_bytes / 1e6,
                 time.monotonic() - started, len(files), ", ".join(steps.spent))
        return manifest
    except OutsideFastPath as exc:
        log.info("%s: exact Python path (%s)", spec.chunk_id, exc)
        return None
    except TransientError:  # S3 kept failing (after its retries): the Python path would only meet it again
        raise
    except Exception as exc:  # DuckDB could not read something: the Python path says what and where
        if is_no_space(exc):  # nor is a full disk a reason to write everything again
            raise
        log.info("%s: exact Python path (DuckDB: %s)", spec.chunk_id, str(exc).splitlines()[0][:200])
        return None
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
