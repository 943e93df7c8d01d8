"""Reproduce the native crash (SIGSEGV / "double free") of a writer that flushes inlined rows (decision 0032).

A writer process applies small seeded stream batches to a SQLite-catalogued store, flushes the inlined rows
every ``--flush-every`` batches, folds every ``--fold-every`` and compacts every ``--compact-every``, while
``--readers`` reader processes read the same store (``plain``: ``Store.query``/``get``; ``tx``: ``dynadex
serve``'s ``Store.read_snapshot``, one read transaction, again when a flush landed). Each run is bounded by
``--run-seconds``; the writer runs under ``python -X faulthandler`` and its stderr (the Python stack at a
crash) is kept in ``--logs``. One JSON line per configuration: runs, crashes, how each run ended.

``--engine duckdb`` does the same with plain DuckDB statements (no dynadex code beyond the extension
directory): ATTACH 'ducklake:sqlite:…', small INSERT/DELETE transactions, CALL ducklake_flush_inlined_data,
readers running SELECTs on their own ATTACH ... READ_ONLY.

    PYTHONPATH=$PWD/include:$PWD/plugins .venv/bin/python bench/repro_flush_crash.py --runs 8 --readers 1
    ... --engine duckdb --runs 8 --readers 1
    DYNADEX_CATALOG_HOLD=0 ... --runs 8 --readers 1   # the environment reaches writer and readers
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path



# ---------------------------------------------------------------- dynadex engine
def dx_make_store(path: str, items: int) -> None:
    from dynadex.store import PublishSpec, Store
    from dynadex.types import canonical_item

    with Store(path, read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        for i in range(items):
            w.add(canonical_item({"pk": {"S": f"k{i:05d}"}, "city": {"S": f"c{i % 7}"}, "n": {"N": str(i)}}), 1,
                  "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=items))


def dx_writer(a) -> None:
    from dynadex.store import Change, Checkpoint, Store
    from dynadex.types import canonical_item

    rnd = random.Random(a.seed)
    with Store(a.store, read_only=False, threads=a.writer_threads or None) as st:
        for b in range(a.batches):
            changes = []
            for _ in range(rnd.randint(1, 6)):
                k = {"pk": {"S": f"k{rnd.randrange(a.items + 200):05d}"}}
                if rnd.random() < 0.2:
                    changes.append(Change(k, None, 10 + b, "s"))
                else:
                    extra = {f"a{b}": {"S": "new"}} if rnd.random() < a.new_attrs else {}  # a new column: schema
                    changes.append(Change(k, canonical_item({**k, "city": {"S": f"c{rnd.randrange(9)}"},
                                                             "n": {"N": str(b)}, **extra}), 10 + b, "s"))
            phase("apply", b)
            st.apply("T", changes, [Checkpoint("s1", str(1000 + b))])
            if a.flush_every and b % a.flush_every == a.flush_every - 1:
                phase("flush", b)
                st.flush_inlined()
            if a.fold_every and b % a.fold_every == a.fold_every - 1:
                phase("fold", b)
                st.fold_small_files("T", at_files=2)
            if a.compact_every and b % a.compact_every == a.compact_every - 1:
                phase("compact", b)
                st.compact()
    phase("done", a.batches)


def dx_reader(a) -> None:
    """``--reader-threads`` threads, each with its own read-only store (as ``dynadex serve`` keeps a pool)."""
    import threading

    threads = [threading.Thread(target=dx_read_loop, args=(a, a.seed * 10 + i)) for i in range(a.reader_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def dx_read_loop(a, seed: int) -> None:
    from dynadex.store import Store

    rnd = random.Random(seed)
    deadline = time.monotonic() + a.run_seconds
    with Store(a.store) as st:
        while time.monotonic() < deadline and not Path(a.store, "STOP").exists():
            try:
                if a.reader == "tx":
                    st.read_snapshot(lambda r: (r.query('SELECT count(*) FROM main."T"').rows,
                                                r.get("T", json.dumps({"pk": {"S": f"k{rnd.randrange(a.items):05d}"}})),
                                                r.query("SELECT count(*) FROM row_index.\"T\"").rows))
                else:
                    st.query('SELECT city, count(*) FROM main."T" GROUP BY ALL')
                    st.get("T", json.dumps({"pk": {"S": f"k{rnd.randrange(a.items):05d}"}}))
            except Exception as exc:  # noqa: BLE001 - a reader's error is counted, the writer is what we watch
                print("reader error:", type(exc).__name__, str(exc).splitlines()[0][:200], file=sys.stderr)
            time.sleep(0.005)


# ---------------------------------------------------------------- plain DuckDB engine
def pd_connect():
    import duckdb
    from dynadex.store.catalog.extensions import extension_directory  # only where the pip extensions are

    return duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": True,
                                  "extension_directory": extension_directory(), "allow_unsigned_extensions": True})


def pd_attach(con, store: str, read_only: bool) -> None:
    opts = f"DATA_PATH '{store}/data'" + (", READ_ONLY" if read_only else ", META_JOURNAL_MODE 'WAL'")
    con.execute(f"ATTACH 'ducklake:sqlite:{store}/catalog.sqlite' AS lake ({opts})")
    con.execute("USE lake")


def pd_make_store(path: str, items: int) -> None:
    Path(path, "data").mkdir(parents=True, exist_ok=True)
    con = pd_connect()
    pd_attach(con, path, False)
    con.execute("CALL lake.set_option('data_inlining_row_limit', 1000)")
    for t in ("a", "b", "c"):
        con.execute(f"CREATE TABLE {t} (k VARCHAR, v VARCHAR, n BIGINT, tags VARCHAR[])")
        con.execute(f"INSERT INTO {t} SELECT 'k' || lpad(i::VARCHAR, 5, '0'), 'c' || (i % 7), i, ['x', 'y'] "
                    f"FROM range({items}) t(i)")
    con.close()


def pd_writer(a) -> None:
    import duckdb

    rnd = random.Random(a.seed)
    con = pd_connect()
    if a.writer_threads:
        con.execute(f"SET threads = {a.writer_threads}")
    pd_attach(con, a.store, False)
    hold = None
    if a.pd_hold:  # what dynadex's catalog hold does: a 2nd connection with the catalog attached as SQLite
        con.execute(f"ATTACH '{a.store}/catalog.sqlite' AS hold (TYPE sqlite)")
    for b in range(a.batches):
        phase("apply", b)
        for attempt in range(20):
            try:
                con.execute("BEGIN")
                for t in ("a", "b", "c"):
                    keys = [f"k{rnd.randrange(a.items + 200):05d}" for _ in range(rnd.randint(1, 6))]
                    con.execute(f"DELETE FROM {t} WHERE k IN (SELECT unnest(?))", [keys])
                    con.execute(f"INSERT INTO {t} SELECT unnest(?), 'c' || {b % 9}, {b}, ['x', 'z']", [keys])
                con.execute("COMMIT")
                break
            except duckdb.Error as exc:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                print("writer retry:", str(exc).splitlines()[0][:200], file=sys.stderr)
                time.sleep(0.05)
        if a.pd_hold:  # renew, as CatalogHold.renew does
            fresh = con.cursor()
            fresh.execute("BEGIN")
            fresh.execute("SELECT * FROM sqlite_query('hold', 'PRAGMA wal_checkpoint(PASSIVE)')").fetchall()
            if hold is not None:
                hold.execute("ROLLBACK")
                hold.close()
            hold = fresh
            hold.execute("SELECT count(*) FROM hold.ducklake_metadata").fetchall()
        if a.flush_every and b % a.flush_every == a.flush_every - 1:
            phase("flush", b)
            for attempt in range(20):
                try:
                    con.execute("CALL ducklake_flush_inlined_data('lake')")
                    break
                except duckdb.Error as exc:
                    print("flush retry:", str(exc).splitlines()[0][:200], file=sys.stderr)
                    time.sleep(0.05)
    phase("done", a.batches)


def pd_reader(a) -> None:
    import duckdb

    deadline = time.monotonic() + a.run_seconds
    con = None
    while time.monotonic() < deadline and not Path(a.store, "STOP").exists():
        try:
            if con is None:
                con = pd_connect()
                pd_attach(con, a.store, True)
            if a.reader == "tx":
                con.execute("BEGIN")
                con.execute("SELECT count(*) FROM a").fetchall()
                con.execute("SELECT v, count(*) FROM b GROUP BY ALL").fetchall()
                con.execute("SELECT count(*) FROM c WHERE k = 'k00042'").fetchall()
                con.execute("ROLLBACK")
            else:
                con.execute("SELECT count(*) FROM a").fetchall()
                con.execute("SELECT v, count(*) FROM b GROUP BY ALL").fetchall()
        except duckdb.Error as exc:
            print("reader error:", str(exc).splitlines()[0][:200], file=sys.stderr)
            try:
                con.close()
            except Exception:  # noqa: BLE001
                pass
            con = None
        time.sleep(0.005)


# ---------------------------------------------------------------- orchestration
PHASE_FILE = None


def phase(name: str, b: int) -> None:
    if PHASE_FILE:
        with open(PHASE_FILE, "w") as f:
            f.write(f"{name} {b}\n")


def wait_quiet(pause_file: str | None) -> None:
    """Before each run, wait while ``pause_file`` exists (someone else is measuring on the same box)."""
    while pause_file and Path(pause_file).exists():
        time.sleep(20)


def child(role: str, a, store: str, seed: int, log: Path, phase_file: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-X", "faulthandler", __file__, "--role", role, "--store", store, "--seed", str(seed)]
    for name in ("engine", "batches", "items", "flush_every", "fold_every", "compact_every", "reader", "run_seconds",
                 "writer_threads", "reader_threads", "new_attrs"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(a, name))]
    if a.pd_hold:
        cmd.append("--pd-hold")
    env = dict(os.environ)
    if phase_file:
        env["REPRO_PHASE_FILE"] = str(phase_file)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)


def orchestrate(a) -> None:
    logs = Path(a.logs)
    logs.mkdir(parents=True, exist_ok=True)
    outcomes = []
    label = a.label or f"{a.engine} readers={a.readers}/{a.reader} flush={a.flush_every}"
    for run in range(a.runs):
        wait_quiet(a.pause_while)
        seed = a.seed + run
        root = tempfile.mkdtemp(prefix="repro-flush-")
        store = str(Path(root, "store"))
        (dx_make_store if a.engine == "dynadex" else pd_make_store)(store, a.items)
        tag = f"{label.replace(' ', '_').replace('/', '-')}-run{run}"
        wlog, pfile = logs / f"{tag}-writer.log", Path(root, "phase")
        readers = [child("reader", a, store, seed * 100 + i, logs / f"{tag}-reader{i}.log") for i in range(a.readers)]
        time.sleep(0.3 if a.readers else 0)
        t0 = time.monotonic()
        writer = child("writer", a, store, seed, wlog, pfile)
        try:
            rc = writer.wait(timeout=a.run_seconds)
        except subprocess.TimeoutExpired:
            writer.send_signal(signal.SIGTERM)
            rc = "timeout"
            writer.wait()
        took = time.monotonic() - t0
        Path(store, "STOP").touch()
        for r in readers:
            try:
                r.wait(timeout=30)
            except subprocess.TimeoutExpired:
                r.kill()
                r.wait()
        where = pfile.read_text().strip() if pfile.exists() else ""
        text = wlog.read_text(errors="replace")
        crashed = rc not in (0, "timeout") and (isinstance(rc, int) and rc < 0 or "Fatal Python error" in text
                                                   or "double free" in text or "corrupted" in text)
        kind = ("SIGSEGV" if "Segmentation fault" in text else "double free" if "double free" in text
                else "abort" if rc == -6 else str(rc)) if crashed else ("ok" if rc == 0 else str(rc))
        reader_errors = sum(Path(logs / f"{tag}-reader{i}.log").read_text(errors="replace").count("reader error")
                            for i in range(a.readers))
        outcomes.append({"run": run, "seed": seed, "rc": rc, "kind": kind, "phase": where, "seconds": round(took, 1),
                         "writer_retries": text.count("got in the way") + text.count("retry:"),
                         "reader_errors": reader_errors})
        print(json.dumps({"label": label, **outcomes[-1]}), file=sys.stderr, flush=True)
        if rc == 0:  # a crash, an error or a run cut at its bound keeps its logs
            wlog.unlink(missing_ok=True)
            for i in range(a.readers):
                (logs / f"{tag}-reader{i}.log").unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    crashes = [o for o in outcomes if o["kind"] not in ("ok", "timeout") and not o["kind"].isdigit()]
    print(json.dumps({"label": label, "env": {k: v for k, v in os.environ.items() if k.startswith("DYNADEX_")},
                      "runs": a.runs, "crashes": len(crashes), "completed": sum(o["kind"] == "ok" for o in outcomes),
                      "outcomes": outcomes}), flush=True)


def main() -> None:
    global PHASE_FILE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=("orchestrate", "writer", "reader"), default="orchestrate")
    p.add_argument("--engine", choices=("dynadex", "duckdb"), default="dynadex")
    p.add_argument("--store")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--readers", type=int, default=1)
    p.add_argument("--reader", choices=("plain", "tx"), default="plain")
    p.add_argument("--flush-every", type=int, default=3)
    p.add_argument("--fold-every", type=int, default=0)
    p.add_argument("--compact-every", type=int, default=0)
    p.add_argument("--run-seconds", type=float, default=120.0)
    p.add_argument("--new-attrs", type=float, default=0.0, help="dynadex writer: the share of changes that add an "
                   "attribute never seen (a new column, a new schema version: superseded inlined tables to drop)")
    p.add_argument("--reader-threads", type=int, default=1, help="dynadex readers: threads (stores) per reader")
    p.add_argument("--writer-threads", type=int, default=0, help="DuckDB threads of the writer (0: DuckDB's)")
    p.add_argument("--pd-hold", action="store_true", help="duckdb engine: also hold the catalog as dynadex does")
    p.add_argument("--label")
    p.add_argument("--pause-while", metavar="FILE", help="before each run, wait while FILE exists")
    p.add_argument("--logs", default="bench/results/repro-flush-crash")
    a = p.parse_args()
    PHASE_FILE = os.environ.get("REPRO_PHASE_FILE")
    if a.role == "orchestrate":
        orchestrate(a)
    elif a.role == "writer":
        (dx_writer if a.engine == "dynadex" else pd_writer)(a)
    else:
        (dx_reader if a.engine == "dynadex" else pd_reader)(a)


if __name__ == "__main__":
    main()
