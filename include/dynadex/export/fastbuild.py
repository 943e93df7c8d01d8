"""Chunk build inside DuckDB: the same segment as the Python path, at DuckDB speed.

The Python path (``build.build_chunk``) shapes every item in Python: exact,
but about 13k items/s per core. Here DuckDB reads the gzip files, parses
each line into a struct whose type is the export's own attribute structure,
and writes the three index segments with SQL generated from that structure
(canonical item text, canonical key, typed columns, inverted entries).

Invariant: a segment written here is byte-for-byte what the Python path
would write for the same chunk (tests/unit/test_fastbuild.py compares the
two on a chunk with every type). The fast path only commits a segment when
every line passes a guard that proves it lies in the domain where that holds:

* the line is ``{"Item":{…}}`` and holds no ``\\u`` escape (the escapes are
  the only place where DuckDB's and Python's JSON text can differ);
* every number is already canonical (DynamoDB writes them so), every binary
  is canonical base64, every set is non-empty with distinct members, every
  NULL is ``true``, the key attributes have the table's key types;
* every value has its JSON type (strings for S, N, B and set members, true
  or false for BOOL and NULL, an object for M, an array for L), checked by
  one RE2 scan of the raw line (``WRONG_JSON_TYPE``);
* the canonical item text regenerated from the parsed struct is exactly as
  long as the item text in the line. With types checked and numbers and
  binaries canonical, regeneration can only shorten (sorted keys, sorted
  sets, fewer escapes), never lengthen, so equal length means nothing was
  dropped: no attribute outside the structure, no second type tag.

Anything else (ION, a line outside the domain, a file DuckDB cannot read, an
MD5 or item-count mismatch) makes ``build_chunk_fast`` return ``None`` before
any manifest is written, and the caller runs the exact Python path, which
owns every error message. So errors name the file and line as before.
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

import pyarrow.parquet as pq

from dynadex.export.manifest import Export
from dynadex.export.plan import ChunkSpec
from dynadex.export.source import LocalSource
from dynadex.export.records import parse_json_line
from dynadex.store.extensions import connect
from dynadex.store.lake import s3_secret
from dynadex.store.location import StoreLocation
from dynadex.store.names import KEY_COLUMN, staging_name
from dynadex.store.segments import MANIFEST, _atomic_write, columns_arrow, inverted_arrow, rows_arrow, segment_dir, uri
from dynadex.store.shape import NumberStats, Shaped

log = logging.getLogger("dynadex.build")

SAMPLE_HEAD, SAMPLE_ROWS = 1_000, 20_000  # the structure comes from the first lines plus a seeded sample
# DuckDB's own limit for a chunk build (it spills beyond it): keeps the whole task under 2 GB, measured
BUILD_MEMORY = "1100MB"
ROUNDS = 3  # structure refinements from lines the sample did not cover
# Lines still outside the domain after the refinements are shaped by the exact Python code, as long as they
# are few; otherwise the whole chunk goes to the Python path.
MIXED_MIN_LINES, MIXED_FRACTION, MIXED_MAX_LINES = 1_000, 0.10, 200_000
_SCALAR = {"S": "VARCHAR", "N": "VARCHAR", "B": "VARCHAR", "BOOL": "BOOLEAN", "NULL": "BOOLEAN"}
_SETS = ("SS", "NS", "BS")
# canonical numbers, as dynadex.types._PLAIN_INT / _PLAIN_DEC (digit count checked separately)
_NUMBER_RE = r"-?[1-9][0-9]{0,37}|0|-?[1-9][0-9]{0,36}\.[0-9]{0,36}[1-9]|-?0\.0{0,90}[1-9]([0-9]{0,35}[1-9])?"
# A value of the wrong JSON type anywhere in a line: from_json converts silently (5 -> '5' for a VARCHAR,
# "true" -> true for a BOOLEAN, 12 or [] -> a struct of NULLs for a map), so the raw text is checked, once,
# by RE2. Every type tag of a line appears literally in it ("\u" escapes are refused, and inside a string a
# quote is always escaped), so each tag's value is seen whatever its nesting; a match inside a string can
# only refuse a good line (it then goes to Python), never admit a bad one.
_WS = r"[ \t\r]*"
_STR = r'"(?:[^"\\]|\\.)*"'
_TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_STARTS = {"S": '"', "N": '"', "B": '"', "BOOL": "tf", "NULL": "tf", "M": "{", "L": "\\[", "SS": "\\[", "NS": "\\[",
           "BS": "\\["}


def wrong_json_type(names_like_tags: frozenset = frozenset()) -> str:
    """The RE2 pattern of a tag followed by a value of the wrong JSON type.

    An attribute or map field may be named like a tag ("S", "L", …): ``"S":{`` is then that name, before its
    attribute value. For such names ``{`` is left out here, and ``_name_counts_equal`` checks instead that
    the line holds as many ``"S":{`` as its regenerated text, which writes them only for names."""
    def bad(tag: str) -> str:
        return "[^" + _STARTS[tag] + ("{" if tag in names_like_tags and tag != "M" else "") + " \\t\\r]"

    parts = [rf'"{tag}"{_WS}:{_WS}{bad(tag)}' for tag in ("S", "N", "B", "BOOL", "NULL", "M", "L")]
    for tag in ("SS", "NS", "BS"):  # an array of strings
        parts.append(rf'"{tag}"{_WS}:{_WS}(?:{bad(tag)}|\[{_WS}(?:{_STR}{_WS},{_WS})*(?:[^" \t\r]|{_STR}{_WS}[^, \t\r\]]))')
    return "|".join(parts)


WRONG_JSON_TYPE = wrong_json_type()


def _names(structure: dict, out: set) -> set:
    """Every attribute and map field name of the structure (at any depth, inside lists too)."""
    for name, av in structure.items():
        out.add(name)
        _av_names(av, out)
    return out


def _av_names(av, out: set) -> None:
    if not isinstance(av, dict):
        return
    if isinstance(av.get("M"), dict):
        _names(av["M"], out)
    if isinstance(av.get("L"), list) and av["L"] and av["L"][0] != "NULL":
        _av_names(av["L"][0], out)


def _name_counts_equal(tags) -> list[str]:
    """Per tag named like an attribute: the raw line and the regenerated item hold as many ``"T":{``."""
    checks = []
    for tag in sorted(tags):
        raw_pattern = _lit('"' + tag + '"' + _WS + ":" + _WS + "\\{")
        raw = f"len(regexp_extract_all(line, {raw_pattern}))"
        name = _lit('"' + tag + '":{')
        regen = f"(strlen(item) - strlen(replace(item, {name}, ''))) // {len(tag) + 4}"
        checks.append(f"{raw} = {regen}")
    return checks


# An NS is sorted by DOUBLE: exact for members of at most 15 significant digits (distinct such decimals
# are distinct doubles, in the same order); VARCHAR -> DECIMAL casts cost 30x more.
NS_DIGITS = 15


class _Steps:
    """Wall time of each step, logged as it ends (progress in the task log) and summed up at the end."""

    def __init__(self, chunk_id: str) -> None:
        self.chunk_id = chunk_id
        self.t = time.monotonic()
        self.spent: list = []

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.spent.append(f"{name} {now - self.t:.1f}s")
        log.info("%s: %s done in %.1fs", self.chunk_id, name, now - self.t)
        self.t = now



class OutsideFastPath(Exception):
    """The chunk needs the exact Python path (never shown to users)."""


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------ the structure


def _merge(a, b):
    """Union of two json_group_structure results; raises OutsideFastPath on a JSON type conflict."""
    if a == b:
        return a
    if a == "NULL":
        return b
    if b == "NULL":
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])]
    raise OutsideFastPath(f"conflicting JSON types {a!r} and {b!r}")


def _clean_av(spec):
    """The attribute-value structure with everything DynamoDB JSON does not allow pruned (None if nothing
    is left). Lines holding a pruned part regenerate shorter than they are, so the guard sends them to
    Python, which names what is wrong."""
    if not isinstance(spec, dict):
        return None
    out = {}
    for tag, sub in spec.items():
        if tag in _SCALAR:
            keep = sub == _SCALAR[tag]
        elif tag in _SETS:
            keep = sub == ["VARCHAR"]
        elif tag == "M":
            children = ((name, _clean_av(child)) for name, child in sub.items()) if isinstance(sub, dict) else ()
            sub = {name: c for name, c in children if c}
            keep = bool(sub)
        elif tag == "L":
            keep = isinstance(sub, list) and len(sub) == 1
            if keep and sub[0] != "NULL":
                sub = [_clean_av(sub[0])]
                keep = sub[0] is not None
        else:
            keep = False
        if keep:
            out[tag] = sub
    return out or None


def _clean(structure) -> dict:
    if not isinstance(structure, dict):
        raise OutsideFastPath("no item structure")
    return {name: c for name, c in ((name, _clean_av(av)) for name, av in structure.items()) if c}


def _duck_type(spec):
    """The structure as a from_json type (VARCHAR leaves stay VARCHAR: no date or number guessing)."""
    if isinstance(spec, dict):
        return {k: _duck_type(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return ["VARCHAR" if spec[0] == "NULL" else _duck_type(spec[0])]  # a list only ever empty
    return spec


# ------------------------------------------------------------- generated SQL


class _Gen:
    """SQL expressions over an attribute-value struct ``e`` whose structure is ``spec``."""

    def __init__(self) -> None:
        self.n = 0

    def var(self) -> str:
        self.n += 1
        return f"x{self.n}"

    @staticmethod
    def field(e: str, tag: str) -> str:
        return f"{e}.{_ident(tag)}"

    def ns_sorted(self, e: str) -> str:
        v = self.var()
        return f"list_select({e}, list_grade_up(list_transform({e}, {v} -> {v}::DOUBLE)))"

    def bs_sorted_blobs(self, e: str) -> str:
        v = self.var()
        return f"list_sort(list_transform({e}, {v} -> from_base64({v})))"

    def text(self, e: str, spec: dict, label: str | None = None) -> str:
        """Canonical JSON text of the attribute value, after ``label`` (NULL when no tag is set: the length
        guard catches it). One concat() per value: chained || copies the growing text at every step."""
        whens = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            parts = ([label] if label else []) + self.tag_parts(f, tag, spec[tag])
            whens.append(f"WHEN {f} IS NOT NULL THEN {parts[0] if len(parts) == 1 else 'concat(' + ', '.join(parts) + ')'}")
        return "CASE " + " ".join(whens) + " END"

    def tag_parts(self, f: str, tag: str, sub) -> list[str]:
        """SQL pieces whose concatenation is the canonical text of the non-NULL value ``f`` tagged ``tag``.
        to_json writes a string or a list of strings exactly as the canonical JSON does (parity tests)."""
        if tag == "S":
            return ["'{\"S\":'", f"to_json({f})", "'}'"]
        if tag in ("N", "B"):
            return [f"'{{\"{tag}\":\"'", f, "'\"}'"]
        if tag == "BOOL":
            return [f"CASE WHEN {f} THEN '{{\"BOOL\":true}}' ELSE '{{\"BOOL\":false}}' END"]
        if tag == "NULL":
            return ["'{\"NULL\":true}'"]
        if tag == "SS":
            return ["'{\"SS\":'", f"to_json(list_sort({f}))", "'}'"]
        if tag == "NS":
            return ["'{\"NS\":'", f"to_json({self.ns_sorted(f)})", "'}'"]
        if tag == "BS":
            v = self.var()
            return ["'{\"BS\":'", f"to_json(list_transform({self.bs_sorted_blobs(f)}, {v} -> to_base64({v})))", "'}'"]
        if tag == "M":
            return ["'{\"M\":'", self.map_text(f, sub), "'}'"]
        elem = sub[0]  # L
        if elem == "NULL":
            return ["'{\"L\":[]}'"]
        v = self.var()
        return ["'{\"L\":['", f"array_to_string(list_transform({f}, {v} -> {self.text(v, elem)}), ',')", "']}'"]

    def map_text(self, e: str, fields: dict) -> str:
        parts = [self.text(f"{e}.{_ident(name)}", fields[name], _lit(json.dumps(name, ensure_ascii=False) + ":"))
                 for name in sorted(fields)]
        return "concat('{', concat_ws(',', " + ", ".join(parts) + "), '}')"

    def plain(self, e: str, spec: dict) -> str:
        """One list element as the column index holds it (dynadex.store.shape._plain)."""
        whens = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            if tag in ("S", "N", "B"):
                whens.append(f"WHEN {f} IS NOT NULL THEN {f}")
            elif tag == "BOOL":
                whens.append(f"WHEN {f} IS NOT NULL THEN CASE WHEN {f} THEN 'true' ELSE 'false' END")
            elif tag == "NULL":
                whens.append(f"WHEN {f} IS NOT NULL THEN NULL")
            else:
                whens.append(f"WHEN {f} IS NOT NULL THEN {self.text(e, {tag: spec[tag]})}")
        return "CASE " + " ".join(whens) + " END"

    def guard(self, e: str, spec: dict) -> str:
        """TRUE when every number and binary is canonical, sets are proper and NULL is true (NULL-safe)."""
        checks = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            if tag == "N":
                checks.append(f"({f} IS NULL OR ({_number_ok(f)}))")
            elif tag == "B":
                checks.append(f"({f} IS NULL OR to_base64(from_base64({f})) = {f})")
            elif tag == "NULL":
                checks.append(f"({f} IS NULL OR {f})")
            elif tag in _SETS:
                v = self.var()
                member = {"SS": "true", "NS": f"{_number_ok(v, NS_DIGITS)}",
                          "BS": f"to_base64(from_base64({v})) = {v}"}[tag]
                checks.append(f"({f} IS NULL OR (len({f}) > 0 AND len(list_distinct({f})) = len({f}) "
                              f"AND list_bool_and(list_transform({f}, {v} -> {member}))))")
            elif tag == "M":
                inner = [self.guard(f"{f}.{_ident(name)}", child) for name, child in spec["M"].items()]
                inner = [g for g in inner if g != "true"]
                if inner:
                    checks.append(f"({f} IS NULL OR ({' AND '.join(inner)}))")
            elif tag == "L" and spec["L"][0] != "NULL":
                v = self.var()
                inner = self.guard(v, spec["L"][0])
                if inner != "true":
                    checks.append(f"({f} IS NULL OR list_bool_and(list_transform({f}, {v} -> {inner})))")
        return " AND ".join(checks) if checks else "true"


def _digits(f: str) -> str:
    """Digits after leading zeros: at least the significant digits of a canonical number."""
    return f"strlen(ltrim(replace(ltrim({f}, '-'), '.', ''), '0'))"


def _number_ok(f: str, digits: int = 38) -> str:
    """A canonical number of at most ``digits`` significant digits (counted only when the text is longer)."""
    return f"regexp_full_match({f}, {_lit(_NUMBER_RE)}) AND CASE WHEN strlen({f}) <= {digits} THEN true ELSE {_digits(f)} <= {digits} END"


def _columns(gen: _Gen, e: str, spec: dict, path: tuple, out: list) -> None:
    """(path, kind, value expression, field) of every column the attribute feeds; the value is NULL exactly
    where the field is."""
    for tag in sorted(spec):
        f = gen.field(e, tag)
        if tag == "M":
            for name, child in sorted(spec["M"].items()):
                _columns(gen, f"{f}.{_ident(name)}", child, path + (name,), out)
        elif tag in ("S", "N", "BOOL"):
            out.append((path, tag, f, f))
        elif tag == "B":
            out.append((path, tag, f"from_base64({f})", f))
        elif tag == "SS":
            out.append((path, tag, f"list_sort({f})", f))
        elif tag == "NS":
            out.append((path, tag, gen.ns_sorted(f), f))
        elif tag == "BS":
            out.append((path, tag, gen.bs_sorted_blobs(f), f))
        elif tag == "L":
            elem = spec["L"][0]
            if elem == "NULL":
                out.append((path, tag, f"CASE WHEN {f} IS NOT NULL THEN []::VARCHAR[] END", f))
            else:
                v = gen.var()
                out.append((path, tag, f"list_transform({f}, {v} -> {gen.plain(v, elem)})", f))


def _entry(path_text: str, kind: str, value: str) -> str:
    return f"{{'p': {_lit(path_text)}, 'k': '{kind}', 'v': {value}}}"


def _inverted(gen: _Gen, e: str, spec: dict, path_text: str, out: list) -> None:
    """List expressions (one row's share) of inverted entries {p, k, v} for every scalar leaf, set member
    and list element of the attribute value ``e`` (an empty list where the value is absent). One list
    per row, unnested once: 2x faster than one SELECT per leaf, even over the narrow column table."""
    for tag in sorted(spec):
        f = gen.field(e, tag)
        if tag in ("S", "N", "B"):
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, f)}] ELSE [] END")
        elif tag == "BOOL":
            value = f"CASE WHEN {f} THEN 'true' ELSE 'false' END"
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, value)}] ELSE [] END")
        elif tag == "NULL":
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, 'NULL::VARCHAR')}] ELSE [] END")
        elif tag in _SETS:
            v = gen.var()
            out.append(f"coalesce(list_transform({f}, {v} -> {_entry(path_text, tag[0], v)}), [])")
        elif tag == "M":
            for name, child in sorted(spec["M"].items()):
                _inverted(gen, f"{f}.{_ident(name)}", child, f"{path_text}.{name}" if path_text else name, out)
        elif tag == "L":
            elem = spec["L"][0]
            if elem == "NULL":
                continue
            v = gen.var()
            inner: list = []
            _inverted(gen, v, elem, path_text, inner)
            out.append(f"coalesce(flatten(list_transform({f}, {v} -> {_concat(inner)})), [])")


def _concat(lists: list) -> str:
    if len(lists) == 1:
        return lists[0]
    return "list_concat(" + ", ".join(lists) + ")"


# ------------------------------------------------------------------ the build


def _local_files(export: Export, spec: ChunkSpec, tmp: str) -> tuple[list[str], list[int]]:
    """Local paths of the chunk's files, each MD5-checked against the manifest (S3 files are downloaded),
    and each file's gzip ISIZE (its last 4 bytes: the uncompressed size mod 2**32)."""
    paths, sizes = [], []
    for f in spec.files:
        md5 = hashlib.md5()
        if isinstance(export.source, LocalSource):
            path = str(export.source.path(f["key"]))
            with open(path, "rb") as fh:
                while block := fh.read(1 << 22):
                    md5.update(block)
        else:
            path = os.path.join(tmp, f"{len(paths):05d}.json.gz")
            with export.source.open(f["key"]) as body, open(path, "wb") as out:
                while block := body.read(1 << 22):
                    md5.update(block)
                    out.write(block)
        if base64.b64encode(md5.digest()).decode("ascii") != f["md5"]:
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


def read_lines(con, files: list[str]) -> None:
    """Temp table ``lines(line, filename)``: every line of the gzip files, raw (the delimiter chr(1) cannot
    appear unescaped in valid JSON, so each line is one value)."""
    con.execute(
        "CREATE TEMP TABLE lines AS SELECT line, filename FROM read_csv(?, columns = {'line': 'VARCHAR'}, "
        "delim = chr(1), quote = '', escape = '', header = false, auto_detect = false, compression = 'gzip', "
        "filename = true, new_line = '\\n')", [files])


def sampled_structure(con) -> dict:
    """The item structure of ``lines`` from its first lines plus a seeded reservoir (deterministic), pruned."""
    sample = con.execute(
        "SELECT json_group_structure(json_extract(line, '$.Item')) FROM "
        f"((SELECT line FROM lines LIMIT {SAMPLE_HEAD}) UNION ALL "
        f"(SELECT line FROM lines USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (7)))"
    ).fetchone()[0]
    return _clean(json.loads(sample) if sample else "NULL")


def build_chunk_fast(export: Export, spec: ChunkSpec, location: StoreLocation, table: str, build_id: str,
                     key_names: tuple[str, ...], key_types: tuple[str, ...], version: int, origin: str,
                     *, threads: int | None = None) -> dict | None:
    """Stage the chunk's segment and return its manifest, or ``None`` when the chunk needs the Python path."""
    if export.summary.output_format != "DYNAMODB_JSON" or export.summary.export_type != "FULL_EXPORT":
        return None
    fs, seg_dir = segment_dir(location, table, build_id, spec.chunk_id)
    if fs.get_file_info(f"{seg_dir}/{MANIFEST}").type.name != "NotFound":
        fs.delete_file(f"{seg_dir}/{MANIFEST}")
    fs.create_dir(seg_dir, recursive=True)
    tmp = tempfile.mkdtemp(prefix="dynadex-fast-")
    con = connect(threads=threads, memory_limit=BUILD_MEMORY)
    con.execute("SET preserve_insertion_order = false")  # segments are sets (publish sorts): 2x faster writes
    try:
        if location.staging.startswith("s3://"):
            s3_secret(con)  # the segment goes straight to S3, as the Python path's pyarrow writer does
        started = time.monotonic()
        steps = _Steps(spec.chunk_id)
        files, isizes = _local_files(export, spec, tmp)
        steps("md5")
        read_lines(con, files)
        steps("read")
        counts = {name: (n, size) for name, n, size in
                  con.execute("SELECT filename, count(*), sum(strlen(line) + 1) FROM lines GROUP BY ALL").fetchall()}
        for path, isize, f in zip(files, isizes, spec.files):
            n, size = counts.get(path, (0, 0))
            if n != f["item_count"]:
                raise OutsideFastPath(f"{f['key']}: {n} lines, manifest says {f['item_count']}")
            # DuckDB reads a gzip stream cut before its trailer without complaint: the trailer's size must
            # match what was read (a truncated file ends in deflate data, not in its size)
            if (size or 0) % 2**32 != isize:
                raise OutsideFastPath(f"{f['key']}: gzip trailer size {isize} differs from {size} bytes read")
        total = sum(n for n, _ in counts.values())
        json_bytes = con.execute("SELECT coalesce(sum(strlen(line) + 1), 0) FROM lines").fetchone()[0]
        structure = sampled_structure(con)
        steps("sample")
        bad = 0
        for _round in range(ROUNDS):
            for name, t in zip(key_names, key_types):
                if t not in structure.get(name, {}):
                    raise OutsideFastPath(f"key {name} never has type {t}")
            bad = _stage_typed(con, structure, key_names, key_types)
            steps("parse+check")
            if not bad:
                break
            more = con.execute(
                "SELECT json_group_structure(json_extract(bad_line, '$.Item')) FROM typed WHERE NOT ok").fetchone()[0]
            try:
                merged = _clean(_merge(structure, json.loads(more)))
            except OutsideFastPath:
                break  # what the sample missed is not DynamoDB JSON we can type: those lines go to Python
            if merged == structure:
                break  # the structure covers them; they are outside the domain for another reason
            structure = merged
        if bad > max(MIXED_MIN_LINES, total * MIXED_FRACTION) or bad > MIXED_MAX_LINES:
            raise OutsideFastPath(f"{bad} lines outside the fast path's domain")
        con.execute("DROP TABLE lines")
        parts, columns = _write(con, location, seg_dir, structure, key_names, key_types, version, origin, steps)
        if bad:
            shaped = _python_part(con, fs, location, seg_dir, key_names, key_types, version, origin, parts, columns)
            steps(f"python part ({shaped} lines)")
            columns = dict(sorted(columns.items()))
        manifest = {
            "table": table,
            "build_id": build_id,
            "chunk_id": spec.chunk_id,
            "items": total,
            "key_names": list(key_names),
            "key_types": list(key_types),
            "parts": parts,
            "columns": columns,
            "extra": {"files": [f["key"] for f in spec.files], "built_by": "duckdb", "python_lines": bad,
                      "json_bytes": int(json_bytes),
                      "gzip_bytes": sum(os.path.getsize(p) for p in files)},
        }
        data = json.dumps(manifest, indent=1).encode()
        _atomic_write(fs, f"{seg_dir}/{MANIFEST}", lambda out: out.write(data))
        log.info("%s: %d items, %.0f MB in %.1fs in DuckDB (%d files): %s", spec.chunk_id, total, json_bytes / 1e6,
                 time.monotonic() - started, len(files), ", ".join(steps.spent))
        return manifest
    except OutsideFastPath as exc:
        log.info("%s: exact Python path (%s)", spec.chunk_id, exc)
        return None
    except Exception as exc:  # DuckDB could not read something: the Python path says what and where
        log.info("%s: exact Python path (DuckDB: %s)", spec.chunk_id, str(exc).splitlines()[0][:200])
        return None
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _stage_typed(con, structure: dict, key_names, key_types) -> int:
    """Parse every line with the structure; return how many lines fail the guard."""
    gen = _Gen()
    i = "j.Item"
    item_text = gen.map_text(i, structure)
    guards = [gen.guard(f"{i}.{_ident(name)}", av) for name, av in sorted(structure.items())]
    guards = [g for g in guards if g != "true"]
    key_parts = []
    key_checks = []
    for name in sorted(key_names):
        t = key_types[key_names.index(name)]
        f = f"{i}.{_ident(name)}.{_ident(t)}"
        value = f"to_json({f})::VARCHAR" if t == "S" else f"'\"' || {f} || '\"'"
        key_parts.append(f"{_lit(json.dumps(name, ensure_ascii=False) + ':{' + json.dumps(t) + ':')} || {value} || '}}'")
        key_checks.append(f"{f} IS NOT NULL")
    key_text = "'{' || " + " || ',' || ".join(key_parts) + " || '}'"
    like_tags = frozenset(_names(structure, set()) & set(_TAGS) - {"M"})
    ok = " AND ".join(
        ["starts_with(line, '{\"Item\":{')", "ends_with(line, '}')", "NOT contains(line, '\\u')",
         f"NOT regexp_matches(line, {_lit(wrong_json_type(like_tags))})",
         "item IS NOT NULL", "strlen(item) = strlen(line) - 9", *_name_counts_equal(like_tags), *key_checks, *guards])
    con.execute("DROP TABLE IF EXISTS typed")
    con.execute(
        f"CREATE TEMP TABLE typed AS SELECT j, key, item, ok, CASE WHEN NOT ok THEN line END AS bad_line FROM "
        f"(SELECT *, coalesce({ok}, false) AS ok FROM "
        f"(SELECT j, line, {key_text} AS key, {item_text} AS item FROM "
        f"(SELECT line, from_json(line, {_lit(json.dumps({'Item': _duck_type(structure)}))}) AS j FROM lines)))")
    return con.execute("SELECT count(*) FROM typed WHERE NOT ok").fetchone()[0]


def _write(con, location, seg_dir, structure, key_names, key_types, version, origin, steps) -> tuple[dict, dict]:
    gen = _Gen()
    i = "j.Item"
    # rows
    key_cols = []
    for col, name, t in zip(("pk", "sk"), key_names, key_types):
        f = f"{i}.{_ident(name)}.{_ident(t)}"
        key_cols.append(f"{'from_base64(' + f + ')' if t == 'B' else f} AS {col}")
    rows_path = f"{seg_dir}/rows-00000.parquet"
    con.execute(f"COPY (SELECT key, {', '.join(key_cols)}, item, {int(version)}::BIGINT AS version, {_lit(origin)} AS origin "
                f"FROM typed WHERE ok) TO {_lit(uri(location, rows_path))} (FORMAT parquet, COMPRESSION zstd)")
    steps("rows")
    # columns (only those some item fills, as SegmentWriter has them)
    cols: list = []
    for name, av in sorted(structure.items()):
        _columns(gen, f"{i}.{_ident(name)}", av, (name,), cols)
    by_name = {staging_name(path, kind): (kind, expr, f) for path, kind, expr, f in cols}
    names = sorted(by_name)
    # counts and number figures from the parsed fields (cheap), then one pass that writes the filled columns
    aggs = []
    for n in names:
        kind, _expr, f = by_name[n]
        aggs.append(f"count({f})")
        if kind in ("N", "NS"):
            v = f"unnest({f})" if kind == "NS" else f
            body = "ltrim(v, '-')"
            aggs.append(
                f"(SELECT [coalesce(bool_and(NOT contains(v, '.')), true)::INT, coalesce(max(CASE WHEN contains(v, '.') THEN "
                f"CASE WHEN split_part({body}, '.', 1) = '0' THEN 0 ELSE strlen(split_part({body}, '.', 1)) END "
                f"ELSE strlen({body}) END), 0), coalesce(max(CASE WHEN contains(v, '.') THEN strlen(split_part(v, '.', 2)) END), 0)] "
                f"FROM (SELECT {v} AS v FROM typed WHERE ok))")
    figures = iter(con.execute("SELECT " + ", ".join(aggs) + " FROM typed WHERE ok").fetchone() if aggs else ())
    steps("column figures")
    columns = {}
    for n in names:
        count = next(figures)
        number = None
        if by_name[n][0] in ("N", "NS"):
            integral, digits, scale = next(figures)
            number = {"integral": bool(integral), "int_digits": int(digits), "scale": int(scale)}
        if count:
            columns[n] = {"kind": by_name[n][0], "count": count, "number": number}
    cols_path = f"{seg_dir}/cols-00000.parquet"
    con.execute("COPY (SELECT " + ", ".join([f"key AS {_ident(KEY_COLUMN)}"] + [f"{by_name[n][1]} AS {_ident(n)}" for n in columns])
                + f" FROM typed WHERE ok) TO {_lit(uri(location, cols_path))} (FORMAT parquet, COMPRESSION zstd)")
    steps("write columns")
    # inverted
    lists: list = []
    for name, av in sorted(structure.items()):
        _inverted(gen, f"{i}.{_ident(name)}", av, name, lists)
    inv_path = f"{seg_dir}/inv-00000.parquet"
    con.execute(f"COPY (SELECT p AS path, k AS kind, v AS value, key FROM (SELECT unnest(e, recursive := true), key FROM "
                f"(SELECT key, {_concat(lists)} AS e FROM typed WHERE ok))) "
                f"TO {_lit(uri(location, inv_path))} (FORMAT parquet, COMPRESSION zstd)")
    steps("inverted")
    parts = {"rows": [uri(location, rows_path)], "cols": [uri(location, cols_path)], "inv": [uri(location, inv_path)]}
    return parts, columns


def _python_part(con, fs, location, seg_dir, key_names, key_types, version, origin, parts, columns) -> int:
    """Shape the lines the guard refused with the exact Python code, as one more part of the segment.

    Any error declines the whole chunk (the caller's except): the Python path then reads the chunk and
    raises its own message, with file and line."""
    shaped = Shaped()
    for (text,) in con.execute("SELECT bad_line FROM typed WHERE NOT ok").fetchall():
        shaped.add(parse_json_line(text, "", 0).item, key_names, version, origin, key_types)
    if not len(shaped):
        return 0
    tables = (("rows", rows_arrow(shaped, key_types)), ("cols", columns_arrow(shaped)), ("inv", inverted_arrow(shaped)))
    for kind, table in tables:
        path = f"{seg_dir}/{kind}-00001.parquet"
        _atomic_write(fs, path, lambda out, t=table: pq.write_table(t, out, compression="zstd"))
        parts[kind].append(uri(location, path))
    for (path, kind), values in shaped.columns.items():
        name = staging_name(path, kind)
        count = sum(1 for v in values if v is not None)
        stats = shaped.number_stats.get((path, kind))
        info = columns.setdefault(name, {"kind": kind, "count": 0, "number": None})
        info["count"] += count
        if stats is not None:
            merged = NumberStats.from_dict(info["number"]) if info["number"] else NumberStats(True, 0, 0)
            merged.merge(stats)
            info["number"] = merged.to_dict()
    return len(shaped)
