"""ION exports on the DuckDB path: an ION build gives exactly the JSON build's index, and every line the
conversion cannot vouch for reaches the exact Python parser in its Ion text.

Three builds of the same items are compared file by file: the DuckDB path over the ION export, the exact
Python path over it, and the DuckDB path over the same items as DYNAMODB_JSON. The ION lines are written
as AWS writes them (``gen_export.ion_line``: ``103.``, ``{{base64}}``, ``$dynamodb_SS::[…]``) and, where
noted, as the emulator's Ion writer does (``7d0``)."""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import json
import random
import re
import sys

import pytest

from dynadex.export import read_export
from dynadex.export.records import parse_ion_line
from dynadex.local_aws.exports import ion_line as emulator_ion_line
from dynadex.store import resolve
from dynadex.store.bulk.build import build_chunk
from dynadex.store.bulk.chunk_manifest import read_manifest
from dynadex.store.bulk import fast_ion, fast_sql
from dynadex.store.bulk.fast_ion import ion_lines_sql, ion_tables_sql
from dynadex.store.bulk.fastbuild import build_chunk_fast
from dynadex.store.bulk.fast_structure import TAGS, clean, wrong_json_type
from dynadex.store.bulk.plan import plan_chunks
from dynadex.store.catalog.extensions import connect
from dynadex.types import canonical_json
from tests.support.fast_builds import EXPORT_ID, KEY, compare, line, rich_item

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402  (the benchmarks' export writer: the real S3 layout)


def write_export(root, files, fmt: str) -> str:
    return str(gen_export.write_export(root, files, prefix="b", export_id=EXPORT_ID, table="T",
                                       export_time="2024-01-01T00:00:00.000Z", output_format=fmt))


def ion_item(i: int, rnd: random.Random) -> dict:
    """rich_item without its one name holding double quotes: a quoted symbol holding a quote is Python's."""
    item = rich_item(i, rnd)
    item.pop('naïve "quoted"')
    item["naïve quoted-name"] = {"N": "42"}
    return item


def build(tmp_path, name: str, files, fmt: str, monkeypatch, python: bool = False):
    summary = write_export(tmp_path / f"export-{name}", files, fmt)
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    loc = resolve(str(tmp_path / name))
    if python:
        monkeypatch.setenv("DYNADEX_BUILD", "python")
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)
        monkeypatch.delenv("DYNADEX_BUILD")
        return loc, read_manifest(loc, "T", "b1", spec.chunk_id)
    return loc, build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, f"export:{EXPORT_ID}")


def test_ion_build_equals_the_python_build_and_the_json_build_on_every_type(tmp_path, monkeypatch):
    rnd = random.Random(11)
    items = [[ion_item(i, rnd) for i in range(f * 150, f * 150 + 150)] for f in range(3)]
    ion = [[gen_export.ion_line(it) for it in f] for f in items]
    ion[2][:40] = [emulator_ion_line({"Item": it}) for it in items[2][:40]]  # the emulator's "7d0" too
    fast_loc, fast = build(tmp_path, "ion-fast", ion, "ION", monkeypatch)
    # only the emulator's exponents ("1d-36") are left to Python: AWS writes plain decimals
    exponents = sum(bool(re.search(r"[0-9][dD][+-]?0*[1-9]", text)) for text in ion[2][:40])
    assert fast is not None and fast.built_by == "duckdb" and fast.python_lines == exponents
    py_loc, py = build(tmp_path, "ion-py", ion, "ION", monkeypatch, python=True)
    compare(fast_loc, fast, py_loc, py)
    json_loc, from_json = build(tmp_path, "json-fast", [[line(it) for it in f] for f in items], "DYNAMODB_JSON",
                                monkeypatch)
    assert from_json is not None and from_json.python_lines == 0
    compare(fast_loc, fast, json_loc, from_json)


def plain(i: int) -> str:
    return f'$ion_1_0 {{Item:{{pk:"u{i}",sk:{i}.,v:"x"}}}}'


# Ion the conversion leaves to Python (NULL, or JSON the guard refuses); the Python parser takes each
VALID_BUT_OUTSIDE = [
    '$ion_1_0 {Item:{pk:"x",sk:1.50}}',  # a number DynamoDB would have normalised
    '$ion_1_0 {Item:{pk:"x",sk:1d2}}',  # an exponent
    '$ion_1_0 {Item:{pk:"x",sk:0x10}}',  # a hexadecimal int
    '$ion_1_0 {Item:{pk:"caf\\u00e9",sk:1.}}',  # a \u escape
    '$ion_1_0 {Item:{pk:"caf\\xe9",sk:1.}}',  # an escape JSON lacks
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:{{AB==}}}}',  # base64 with stray bits
    '$ion_1_0 {Item: {pk:"x",sk:1.}}',  # whitespace
    '$ion_1_0  {Item:{pk:"x",sk:1.}}',
    '{Item:{pk:"x",sk:1.}}',  # no version marker
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:{}}}',  # an empty map
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_NS::[1234567890123456.,2.]}}',  # NS member past 15 digits
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:sym}}',  # a symbol value
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:\'quoted sym\'}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:null.string}}',  # a typed null
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:ann::"x"}}',  # an annotation that is no set's
    '$ion_1_0 {Item:{pk:"x",sk:1.,"t":"x"}}',  # a string as a field name
    '$ion_1_0 {Item:{pk:"x",sk:1.,\'a"b\':1.}}',  # a quoted symbol holding a double quote
    '$ion_1_0 {Item:{pk:"x",sk:1.,\'a"b"c\':"d"}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,\'a:b\':1.}}',  # a quoted name holding Ion syntax
    '$ion_1_0 {Item:{pk:"x",sk:1.,\'a\\\'b\':1.}}',  # a quoted name holding an escape
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:\'\'\'long\'\'\'}}',  # a long string
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:"a" /* note */}}',  # a comment
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:{{"clob"}}}}',  # a clob
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:"tab\there"}}',  # a raw control character
]
INVALID = [
    '$ion_1_0 {Item:{pk:"x",sk:1.},Extra:1}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_SS::["a","a"]}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_SS::[]}}',
    '$ion_1_0 {Item:{pk:1.,sk:1.}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:1.5e0}}',  # a float
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:2007-01-01T}}',  # a timestamp
    '$ion_1_0 {Item:{pk:"x",sk:1.,true:1.}}',  # a keyword as a name
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:1.,t:2.}}',  # a name twice
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:"unterminated}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:[1.,2.}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:(a b)}}',  # an s-expression
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_NS::[12.5.,3.]}}',  # a number with two points in a set
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_NS::[1.,,3.]}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_SS::["a",1.]}}',  # a set member of another type
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_NS::["1"]}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:$dynamodb_BS::["x"]}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:1234.{}}}',  # a number before a brace: its place reads like a blob's
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:[1234.{{aGk=}}]}}',
    '$ion_1_0 {Item:{pk:"x",sk:1.,t:{{aGk=}}1.}}',
]


def test_the_conversion_gives_the_python_parsers_item_or_nothing():
    """Every line converted is the Python parser's item, whatever its strings hold; the rest is NULL."""
    rnd = random.Random(5)
    tricky = ['a:1,b:[2]', '{x:1}', '$dynamodb_SS::["a"]', "'q':", '\\"}},{', 'true,null', '103.', '{{aGk=}}',
              "x'y", '\\\\', '\\\\"', '\\/\\b\\f\\n\\r\\t', '🎉', '']
    lines = [gen_export.ion_line(ion_item(i, rnd)) for i in range(60)]
    lines += [f'$ion_1_0 {{Item:{{pk:"{s}",sk:1.,l:["{s}",$dynamodb_SS::["{s}","z{s}"],{{\'{n}\':"{s}"}}]}}}}'
              for s in tricky for n in ("a b", "x")]
    lines += VALID_BUT_OUTSIDE + INVALID + [plain(i) for i in range(3)]
    con = connect()
    con.execute("CREATE TEMP TABLE src AS SELECT unnest(?) AS raw", [lines])
    converted = dict(con.execute(ion_lines_sql("src")).fetchall())
    kept = 0
    for raw in lines:
        if raw in INVALID:
            continue
        out = converted[raw]
        if out is None:
            continue
        kept += 1
        assert json.loads(out).keys() == {"Item"}, raw
        assert canonical_json(json.loads(out)["Item"]) == canonical_json(parse_ion_line(raw, "", 0).item), raw
    assert kept >= 60 + 2 * len(tricky)  # every AWS-written line converts
    for raw in INVALID:  # converted or not, never vouched for with another item than the parser's
        out = converted[raw]
        try:
            item = parse_ion_line(raw, "", 0).item
        except Exception:
            continue  # the parser refuses it: the guard does too (the build tests below)
        assert out is None or canonical_json(json.loads(out)["Item"]) == canonical_json(item), raw


def _typed_rows(con, structure: dict, raw: bool) -> dict:
    con.execute("DROP TABLE IF EXISTS typed")
    con.execute(fast_sql.typed_table_sql(structure, *KEY, raw=raw, carry=("n",)))
    return {n: (ok, key if ok else None, item if ok else None)
            for n, ok, key, item in con.execute("SELECT n, ok, key, item FROM typed").fetchall()}


def test_each_line_is_typed_and_guarded_as_its_translation_would_be():
    """The build never writes a line's translation: it types the line from its skeleton, parsed once, and its
    values (``struct_sql``), and checks it with the translation's length. Over every kind of line (AWS's, odd
    strings and names, lines outside the domain, invalid ones, random ones), the guard admits exactly the
    lines it admits from their translations, with the same key and item text."""
    rnd = random.Random(7)
    tricky = ['a:1,b:[2]', '\\"}},{', '\\/\\b\\f\\n\\r\\t', '🎉', '', "x'y", '\\\\', 'tab\there', 'ctl\x01']
    lines = [gen_export.ion_line(ion_item(i, rnd)) for i in range(60)]
    lines += [f'$ion_1_0 {{Item:{{pk:"{s}",sk:1.,l:["{s}",$dynamodb_SS::["{s}","z{s}"],{{\'{n}\':"{s}"}}]}}}}'
              for s in tricky for n in ("a b", "x")]
    lines += VALID_BUT_OUTSIDE + INVALID + [plain(i) for i in range(3)]
    for i in range(1500):
        names = rnd.sample(_ODD_NAMES, rnd.randint(1, 4))
        lines.append(f'$ion_1_0 {{Item:{{pk:"u{i}",sk:{i}.,' + ",".join(f"{n}:{_odd_value(rnd)}" for n in names) + "}}")
    con = connect()
    con.execute("CREATE TEMP TABLE src AS SELECT unnest(?) AS raw, generate_subscripts(?, 1) AS n", [lines, lines])
    con.execute(f"CREATE TEMP TABLE translated AS SELECT n, json AS line FROM ({ion_lines_sql('src')})")
    structure = clean(json.loads(con.execute(
        "SELECT json_group_structure(json_extract(line, '$.Item')) FROM translated").fetchone()[0]))
    con.execute("ALTER TABLE translated RENAME TO lines")
    from_text = _typed_rows(con, structure, raw=False)
    con.execute("DROP TABLE lines")
    *tables, select = ion_tables_sql("src")
    for statement in tables:
        con.execute(statement)
    con.execute(f"CREATE TEMP TABLE lines AS {select}")
    direct = _typed_rows(con, structure, raw=True)
    assert direct == from_text
    admitted = sum(ok for ok, _k, _i in direct.values())
    assert admitted > 150 and len(direct) - admitted > 100


@pytest.mark.parametrize("fault", ["regexp_replace(o, chr(1), '')",  # a string's place lost: its text unplaced
                                   "regexp_replace(o, chr(5), chr(5) || chr(5))",  # a value's place doubled
                                   "regexp_replace(o, chr(5), chr(1))"])  # a value's place taken for a string's
def test_a_skeleton_whose_rewrite_loses_or_adds_a_place_gives_no_translation(monkeypatch, fault):
    """Each place of a skeleton is numbered by its rank (values first, then strings) and takes that text of the
    line: a skeleton rewrite that did not keep every place, one for one and of its kind, leaves its lines
    untranslated and untyped rather than shifting what follows into the wrong places."""
    lines = [gen_export.ion_line(ion_item(i, random.Random(i))) for i in range(5)] + [plain(1), plain(2)]
    con = connect()
    con.execute("CREATE TEMP TABLE src AS SELECT unnest(?) AS raw", [lines])
    assert all(out is not None for _raw, out in con.execute(ion_lines_sql("src")).fetchall())
    steps = fast_ion.rewrite_steps()
    monkeypatch.setattr(fast_ion, "rewrite_steps", lambda: [*steps, fault])
    assert [out for _raw, out in con.execute(fast_ion.ion_lines_sql("src")).fetchall()] == [None] * len(lines)
    *tables, _select = fast_ion.ion_tables_sql("src")
    for statement in tables:
        con.execute(statement)
    assert con.execute("SELECT count(*), count(line) FROM ion_skeletons").fetchone() == (6, 0)  # plain lines share one


@pytest.mark.parametrize("odd", VALID_BUT_OUTSIDE)
def test_ion_lines_outside_the_domain_are_shaped_by_python_inside_the_fast_build(tmp_path, monkeypatch, odd):
    lines = [[plain(i) for i in range(40)] + [odd]]
    fast_loc, fast = build(tmp_path, "fast", lines, "ION", monkeypatch)
    assert fast is not None and fast.python_lines == 1
    py_loc, py = build(tmp_path, "py", lines, "ION", monkeypatch, python=True)
    compare(fast_loc, fast, py_loc, py)


@pytest.mark.parametrize("odd", INVALID)
def test_invalid_ion_lines_get_the_python_paths_error_with_file_and_line(tmp_path, monkeypatch, odd):
    summary = write_export(tmp_path / "export", [[plain(i) for i in range(40)] + [odd]], "ION")
    export = read_export(summary)
    [spec] = plan_chunks(export.files, 10**15)
    loc = resolve(str(tmp_path / "store"))
    assert build_chunk_fast(export, spec, loc, "T", "b1", *KEY, 5, "o") is None
    with pytest.raises(Exception) as fast_err:
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)
    monkeypatch.setenv("DYNADEX_BUILD", "python")
    with pytest.raises(Exception) as py_err:
        build_chunk(export, spec, loc, "T", "b1", *KEY, 5)
    assert str(fast_err.value) == str(py_err.value)
    assert "line 41" in str(fast_err.value) and "00000000000000000000000000.ion.gz" in str(fast_err.value)
    assert read_manifest(loc, "T", "b1", spec.chunk_id) is None


# Tokens for random Ion lines: every shape the conversion handles, and its near misses
_ODD_VALUES = ['"s"', '"a,b:{}[]"', '"q\\"q"', '"b\\\\"', '""', '"tab\\t"', "1.", "12.5", "-3.", "0.", "7d0", "1.50",
               "true", "false", "null", "{{aGk=}}", "{{}}", "'sym'", "1234.{}", "{{aGk=}}1."]
_ODD_NAMES = ["a", "b_1", "S", "M", "'q n'", "'true'", "$x", "'a:b'", "x1"]
_SET_MEMBERS = {"SS": ['"a"', '"b"', '"a,b]"', '""', "1."], "NS": ["1.", "2.5", "-3.", "1.50", "7d0", '"1"', "12.5."],
                "BS": ["{{aGk=}}", "{{AB==}}", '"x"', "{{YQ==}}"]}


def _odd_value(rnd: random.Random, depth: int = 0) -> str:
    r = rnd.random()
    if depth > 2 or r < 0.5:
        return rnd.choice(_ODD_VALUES)
    if r < 0.65:
        return "{" + ",".join(f"{rnd.choice(_ODD_NAMES)}:{_odd_value(rnd, depth + 1)}"
                              for _ in range(rnd.randint(0, 3))) + "}"
    if r < 0.8:
        return "[" + ",".join(_odd_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))) + "]"
    tag = rnd.choice(sorted(_SET_MEMBERS))
    return f"$dynamodb_{tag}::[" + ",".join(rnd.choice(_SET_MEMBERS[tag]) for _ in range(rnd.randint(0, 3))) + "]"


def test_random_ion_lines_the_python_parser_takes_build_exactly_as_the_python_path(tmp_path, monkeypatch):
    """Lines drawn from the conversion's tokens and their near misses (two points in a number, sets of mixed
    members, a number before a brace, …): of those the Python parser takes, the fast build writes what the
    Python path writes; no translation has a value of another JSON type than its tag's (the guard's type
    scan is left out for ION lines; a name like a tag, "S":{, is still counted)."""
    rnd = random.Random(31)
    drawn, kept = [], []
    for i in range(3000):
        names = rnd.sample(_ODD_NAMES, rnd.randint(1, 4))
        drawn.append(f'$ion_1_0 {{Item:{{pk:"u{i}",sk:{i}.,' + ",".join(f"{n}:{_odd_value(rnd)}" for n in names) + "}}")
    for text in drawn:
        try:
            item = parse_ion_line(text, "", 0).item
        except Exception:
            continue
        if "S" in item.get("pk", {}) and "N" in item.get("sk", {}):
            kept.append(text)
    con = connect()
    con.execute("CREATE TEMP TABLE src AS SELECT unnest(?) AS raw", [drawn])
    translated = [out for _raw, out in con.execute(ion_lines_sql("src")).fetchall() if out is not None]
    assert len(kept) > 300 and len(translated) > 300
    # "S":{ is a name S's (the guard counts those against the regenerated text), an empty set is refused by
    # the guard's own set check; no tag has a value of another type
    wrong = wrong_json_type(frozenset(TAGS))
    assert not [out for out in translated if re.search(wrong, re.sub(r'"(SS|NS|BS)":\[\]', "", out))]
    fast_loc, fast = build(tmp_path, "fast", [kept[: len(kept) // 2], kept[len(kept) // 2:]], "ION", monkeypatch)
    assert fast is not None and fast.built_by == "duckdb" and 0 < fast.python_lines < len(kept) // 2
    py_loc, py = build(tmp_path, "py", [kept[: len(kept) // 2], kept[len(kept) // 2:]], "ION", monkeypatch,
                       python=True)
    compare(fast_loc, fast, py_loc, py)
