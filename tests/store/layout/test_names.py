"""Any legal DynamoDB attribute name keeps its own column and its own inverted path, in both build paths
and in stream batches; paths are unambiguous, and ``find`` addresses each one."""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from dynadex.ingest import ingest_export
from dynadex.store import Change, Store
from dynadex.store.errors import QueryError
from dynadex.store.layout.names import parse_path_text, path_text
from dynadex.store.layout.shape import shape_item
from dynadex.store.reads import split_find_expression
from dynadex.types import canonical_item, canonical_json

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402

from tests.support.store import publish_items  # noqa: E402

# (names of the attribute's path, the path text: column name and inverted path)
PATHS = [
    (("plain",), "plain"),
    (("a.b",), "a\\.b"),  # a top-level name holding a dot ...
    (("a", "b"), "a.b"),  # ... never meets map a's field b
    (("x[0]",), "x\\[0]"),
    (("back\\slash",), "back\\\\slash"),
    (("nul\x00byte",), "nul\\u0000byte"),
    (("tab\tnew\nline\x7f",), "tab\\u0009new\\u000aline\\u007f"),
    (('q"uote', "ap'os"), 'q"uote.ap\'os'),
    (("semi;colon", "sp ace"), "semi;colon.sp ace"),
    (("日本語", "émoji 🎉"), "日本語.émoji 🎉"),
    (("eq=al",), "eq=al"),
    (("m", ""), "m."),  # map keys may be empty (top-level names may not)
    (("m", "", ""), "m.."),
    (("m.",), "m\\."),
    (("n" * 65_534 + ".",), "n" * 65_534 + "\\."),  # DynamoDB's name limit: 65,535 bytes
]


@pytest.mark.parametrize("path,text", PATHS, ids=[repr(t)[:30] for _, t in PATHS])
def test_path_text_escapes_only_what_would_be_ambiguous_and_parses_back(path, text):
    assert path_text(path) == text
    assert parse_path_text(text) == path


@given(st_.lists(st_.text(max_size=12), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_path_text_is_injective(path):
    """Two different paths never share a text: parse_path_text inverts path_text."""
    assert parse_path_text(path_text(tuple(path))) == tuple(path)


@pytest.mark.parametrize("expression,path,value", [
    ("city=Paris", "city", "Paris"),
    ("a.b=1=2", "a.b", "1=2"),  # VALUE keeps every later '='
    ("a\\.b=v", "a\\.b", "v"),  # an escaped dot stays in the path text
    ("eq\\=al=v", "eq=al", "v"),  # '=' in a name is written \=
    ("back\\\\slash=v", "back\\\\slash", "v"),  # an escaped backslash does not escape the '='
    ("p=", "p", ""),
])
def test_find_expressions_split_at_the_first_unescaped_equals(expression, path, value):
    assert split_find_expression(expression) == (path, value)


@pytest.mark.parametrize("expression", ["novalue", "=v", "a\\=b"])
def test_find_expressions_without_a_path_or_equals_are_refused(expression):
    with pytest.raises(QueryError, match="PATH"):
        split_find_expression(expression)


def hostile_items() -> list[dict]:
    """One item per hostile path, plus names differing only by case and a map inside a list."""
    items = []
    for i, (path, _text) in enumerate(PATHS):
        value: dict = {"S": f"v{i}"}
        for name in reversed(path[1:]):
            value = {"M": {name: value}}
        items.append({"pk": {"S": f"k{i:02d}"}, path[0]: value})
    items.append({"pk": {"S": "case"}, "Upper": {"S": "U"}, "upper": {"S": "u"}})
    items.append({"pk": {"S": "list"}, "l": {"L": [{"M": {"x.y": {"S": "in list"}}}, {"M": {"x": {"M": {"y": {"S": "nested"}}}}}]}})
    return items


def check_store(st: Store, items: list[dict]) -> None:
    cols = dict(st.query("SELECT column_name, path FROM dynadex.columns WHERE table_name = 'T'")[1])
    for i, (path, text) in enumerate(PATHS):
        expected = canonical_json(canonical_item(items[i]))
        assert json.loads(cols[text]) == list(path), text[:40]
        quoted = '"' + text.replace('"', '""') + '"'
        assert st.query(f"SELECT pk FROM T WHERE {quoted} = 'v{i}'")[1] == [(f"k{i:02d}",)], text[:40]
        assert st.find("T", f"{text.replace('=', chr(92) + '=')}=v{i}") == [expected], text[:40]
        assert st.get("T", json.dumps({"pk": {"S": f"k{i:02d}"}})) == expected
    # a.b holds only map a's b; the attribute named a.b answers only to a\.b
    assert st.find("T", "a.b=v1") == [] and st.find("T", "a\\.b=v2") == []
    # names that differ by case are two columns; SQL identifiers ignore case, so the second gets #2
    assert {json.loads(cols["Upper"])[0], json.loads(cols["upper#2"])[0]} == {"Upper", "upper"}
    assert st.find("T", "Upper=U") == st.find("T", "upper=u") == [canonical_json(canonical_item(items[-2]))]
    assert st.find("T", "Upper=u") == []
    # inside a list, a map field named x.y and a map x holding y stay apart too
    assert len(st.find("T", "l.x\\.y=in list")) == 1 and st.find("T", "l.x.y=in list") == []
    assert len(st.find("T", "l.x.y=nested")) == 1
    assert sorted(st.dump("T")) == sorted(canonical_json(canonical_item(it)) for it in items)


@pytest.mark.parametrize("build", ["auto", "python"])
def test_hostile_names_through_the_bulk_load(tmp_path, monkeypatch, build):
    """The export path: the DuckDB build (names it cannot hold in SQL, like NUL, go to Python) and the
    Python build give the same columns and paths."""
    monkeypatch.setenv("DYNADEX_BUILD", build)
    items = hostile_items()
    lines = [json.dumps({"Item": it}, ensure_ascii=False, separators=(",", ":")) for it in items]
    summary = gen_export.write_export(tmp_path / "export", [lines[::2], lines[1::2]], prefix="b",
                                      export_id="01700000000002-0fa57b1d", table="T",
                                      export_time="2024-01-01T00:00:00.000Z")
    result = ingest_export(str(summary), "T", "pk", store=str(tmp_path / "store"), chunk_target_mb=0.000001)
    assert {b["engine"] for b in result["builds"]} == {"duckdb" if build == "auto" else "python"}
    with Store(str(tmp_path / "store")) as st:
        check_store(st, items)


def test_hostile_names_through_stream_batches(tmp_path):
    """The stream path: the table starts with one plain item; every hostile name arrives in a batch."""
    items = hostile_items()
    publish_items(tmp_path / "store", "T", [items[0]])
    with Store(str(tmp_path / "store"), read_only=False) as st:
        st.apply("T", [Change({"pk": it["pk"]}, canonical_item(it), 1_000_000 + n, "s") for n, it in enumerate(items)])
    with Store(str(tmp_path / "store")) as st:
        check_store(st, items)


@pytest.mark.parametrize("build", ["auto", "python"])
def test_an_empty_attribute_name_is_refused_naming_the_line(tmp_path, monkeypatch, build):
    monkeypatch.setenv("DYNADEX_BUILD", build)
    lines = ['{"Item":{"pk":{"S":"a"}}}', '{"Item":{"pk":{"S":"b"},"":{"S":"x"}}}']
    summary = gen_export.write_export(tmp_path / "export", [lines], prefix="b", export_id="01700000000002-0fa57b1d",
                                      table="T", export_time="2024-01-01T00:00:00.000Z")
    with pytest.raises(Exception, match=r"line 2.*attribute name may not be empty|attribute name may not be empty.*line 2"):
        ingest_export(str(summary), "T", "pk", store=str(tmp_path / "store"))
    assert not (tmp_path / "store").exists() or Store(str(tmp_path / "store")).tables() == []


def test_inverted_paths_of_one_item_are_distinct_per_path():
    columns, inverted = shape_item(canonical_item({"a.b": {"S": "1"}, "a": {"M": {"b": {"S": "1"}}}}))
    assert sorted(p for p, _k, _v in inverted) == ["a.b", "a\\.b"]
    assert set(columns) == {(("a.b",), "S"), (("a", "b"), "S")}
