"""Open access: a plain DuckDB in a process of its own (the ``duckdb`` module, no dynadex: run isolated, so dynadex
cannot even be imported) reads the store with the ATTACH, the current-entries view and the ``read_whole`` guard
that docs/serving.md gives users (taken from the page itself, so the page cannot drift from what is tested),
while a writer process applies stream batches, re-tags items (leaving superseded inverted entries), flushes
inlined rows and folds small files.

Each reader pass makes one plain query and one through ``read_whole``, each one query (so one snapshot in
principle). A torn read: the three indexes disagree, more items than the writer had committed (it announces a
batch before committing it, the reader looks after its query), or a key's current entry twice in the view.
Found here: plain queries are torn about 1 in 25 beside this writer, reads through ``read_whole`` about 1 in 200
(the xfail below; the docs say so). Once the writer is done, the view's keys for each tag are exactly what
dynadex's ``find`` answers, and the raw inverted index holds superseded entries the view leaves out.
Every read goes to test-artifacts/own-duckdb/reads.jsonl. About 35 s on the 2-core box."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.paths import REPO
from tests.support.serve import make_store

BATCHES = 60
ARTIFACTS = REPO / "test-artifacts" / "own-duckdb"
TAGS = ("even", "odd", "blue", "new")

WRITER = """
import os, sys
from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item
store, progress = sys.argv[1], sys.argv[2]

def announce(text):
    with open(progress + ".tmp", "w") as f:
        f.write(text)
    os.replace(progress + ".tmp", progress)

with Store(store, read_only=False) as st:
    for b in range({batches}):
        announce(str(20 + b + 1))  # the items there will be once this batch commits: an upper bound for readers
        new = {{"pk": {{"S": f"new{{b:04d}}"}}}}
        old = {{"pk": {{"S": f"k{{b % 20}}"}}}}
        retag = ("even", "odd", "blue")[b % 3]
        st.apply("Orders", [Change(new, canonical_item({{**new, "n": {{"N": str(100 + b)}}, "tag": {{"S": "new"}}}}),
                                   10 + b, "s"),
                            Change(old, canonical_item({{**old, "n": {{"N": str(b % 20)}}, "tag": {{"S": retag}}}}),
                                   10 + b, "s")],
                 [Checkpoint("s1", str(b))])
        if b % 5 == 4:
            st.flush_inlined()
        if b % 7 == 6:
            st.fold_small_files("Orders", at_files=2)
announce("done")
"""

READER = r"""
import importlib.util, json, os, pathlib, sys, time
import duckdb
assert "dynadex" not in sys.modules
ext_dir, progress, setup, recipe = pathlib.Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
exec(recipe)  # the docs' read_whole
ext_dir.mkdir(parents=True, exist_ok=True)
con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
# the extensions from their pip packages (no download), under the names DuckDB loads them by
for package, name in (("duckdb_extension_ducklake", "ducklake"), ("duckdb_extension_sqlite", "sqlite_scanner")):
    found = next(pathlib.Path(importlib.util.find_spec(package).origin).parent.glob("extensions/v*/*.duckdb_extension"))
    link = ext_dir / f"{name}.duckdb_extension"
    if not link.exists():
        link.symlink_to(found)
    con.execute(f"LOAD '{link}'")
for statement in setup:  # the docs' ATTACH ... (READ_ONLY) and CREATE TEMP VIEW orders_entries
    con.execute(statement)
READ = '''SELECT (SELECT count(*) FROM idx.main.Orders), (SELECT count(*) FROM idx.row_index.Orders),
                 (SELECT count(*) FROM orders_entries WHERE path = 'tag'),
                 (SELECT count(*) FROM idx.inverted_index.Orders WHERE path = 'tag'),
                 (SELECT count(*) FROM (SELECT key FROM orders_entries WHERE path = 'tag' GROUP BY key HAVING count(*) > 1))'''

def announced():
    with open(progress) as f:
        return f.read()

tail = 0
while True:
    done = announced() == "done"
    for how, read in (("plain", lambda: con.execute(READ).fetchall()), ("whole", lambda: read_whole(con, READ))):
        try:
            ((columns, rows, current, raw, twice),) = read()
            after = announced()
            bound = 10**9 if after == "done" else int(after)
            print(json.dumps({"how": how, "snapshot": last_read if how == "whole" else None, "columns": columns, "rows": rows, "current": current, "raw": raw,
                              "twice": twice, "bound": bound}), flush=True)
        except duckdb.Error as exc:
            print(json.dumps({"how": how, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    if done:
        tail += 1
        if tail >= 3:
            break
final = {tag: sorted(k for (k,) in con.execute(
    "SELECT key FROM orders_entries WHERE path = 'tag' AND value = ?", [tag]).fetchall()) for tag in %s}
snapshots = [[sid, sorted((changes or {}).keys())] for sid, changes in
             con.execute("SELECT snapshot_id, changes FROM idx.snapshots() ORDER BY 1").fetchall()]
print(json.dumps({"snapshots": snapshots}), flush=True)
print(json.dumps({"final": final}), flush=True)
""" % (TAGS,)


def docs_section() -> str:
    return (REPO / "docs" / "serving.md").read_text().split("## Your own DuckDB", 1)[1]


def docs_recipe(store) -> str:
    """The docs' ``read_whole`` (Python), which reads again when a flush or merge landed during a read."""
    code = re.search(r"```python\n(.*?)```", docs_section(), re.S).group(1)
    assert "def read_whole(" in code
    return code.replace("/path/to/.dynadex", str(store))


def docs_setup(store) -> list[str]:
    """The ATTACH and the view of docs/serving.md's "Your own DuckDB" block, for the store at ``store``."""
    section = docs_section()
    block = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    code = "\n".join(line.split("--", 1)[0] for line in block.splitlines())
    statements = [s.strip() for s in code.split(";") if s.strip()]
    setup = [s.replace("/path/to/.dynadex", str(store)) for s in statements
             if s.upper().startswith(("ATTACH", "CREATE"))]
    assert [s.split()[0].upper() for s in setup] == ["ATTACH", "CREATE"], statements
    assert "READ_ONLY" in setup[0] and "orders_entries" in setup[1], setup
    return setup


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """The writer and the plain reader run side by side once: (every read, the final view per tag, the store)."""
    tmp_path = tmp_path_factory.mktemp("own-duckdb")
    store = make_store(tmp_path / "store")
    progress = tmp_path / "progress"
    progress.write_text("20")
    writer = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", WRITER.format(batches=BATCHES),
                               str(store), str(progress)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": f"{REPO / 'include'}:{REPO}", "PATH": "/usr/bin:/bin"})
    reader = subprocess.Popen([sys.executable, "-I", "-c", READER, str(tmp_path / "extensions"), str(progress),
                               json.dumps(docs_setup(store)), docs_recipe(store)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
        out, err = reader.communicate(timeout=300)
    finally:
        for proc in (writer, reader):
            if proc.poll() is None:
                proc.kill()
    assert reader.returncode == 0, err
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "reads.jsonl").write_text(out)  # every read, to look at when a test fails
    lines = [json.loads(line) for line in out.splitlines()]
    final = lines.pop()["final"]
    lines.pop()  # the snapshots and their changes, for a reader of reads.jsonl
    return lines, final, store


def torn(r: dict) -> bool:
    """A read whose three indexes disagree, that counts more items than were committed, or a key's entry twice."""
    return not r["columns"] == r["rows"] == r["current"] or max(r["columns"], r["rows"]) > r["bound"] or r["twice"]


def test_a_plain_duckdb_process_reads_the_docs_view_beside_a_writer_and_ends_agreeing_with_find(scenario):
    lines, final, store = scenario
    assert not [line["error"] for line in lines if "error" in line][:3]  # no read failed
    reads = [line for line in lines if line["how"] == "whole"]
    plain = [line for line in lines if line["how"] == "plain"]
    assert len(reads) >= 5
    assert len({r["rows"] for r in reads}) > 1, "the reader never saw a batch land"
    last = reads[-1]  # read once the writer was done
    assert last["columns"] == last["rows"] == last["current"] == 20 + BATCHES and not last["twice"]
    assert last["raw"] > last["current"]  # the raw index does hold superseded entries: the view is needed

    from dynadex.store import Store

    with Store(str(store)) as st:
        for tag in TAGS:
            found = sorted(json.loads(item)["pk"]["S"] for item in st.find("Orders", f"tag={tag}"))
            assert sorted(json.loads(k)["pk"]["S"] for k in final[tag]) == found, tag
    print(f"beside {BATCHES} batches: {sum(map(torn, plain))} of {len(plain)} plain queries torn, "
          f"{sum(map(torn, reads))} of {len(reads)} through the docs' read_whole")


@pytest.mark.xfail(strict=False, reason="a read through read_whole, at a stream batch's snapshot, can still show "
                   "rows twice (about 1 in 200; docs/serving.md); not yet understood")
def test_every_read_through_the_docs_read_whole_is_whole(scenario):
    lines, _, _ = scenario
    bad = [r for r in lines if r["how"] == "whole" and torn(r)]
    assert not bad, bad
