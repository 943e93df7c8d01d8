"""Plain DuckDB: does ``ducklake_rewrite_data_files`` fail once a table gained columns while rows were inlined?

Found by ``bench/repro_flush_crash.py --new-attrs 0.3`` (decision 0032): dynadex's fold failed at COMMIT, every
attempt, with "Failed to read inlined-data aggregates from DuckLake: Referenced column "a48" not found in FROM
clause! Candidate bindings: "a41", ..." (the writer alone; seeds 2 and 3, batch 48). This does the same
statements with no dynadex code: small inlined DELETE+INSERT batches, ALTER TABLE ADD COLUMN now and then,
a flush every ``--flush-every``, and every ``--fold-every`` a transaction that writes files
(``data_inlining_row_limit`` 0 for the table inside it, as ``Lake.not_inlined``) then the rewrite.

    PYTHONPATH=$PWD/include .venv/bin/python bench/repro_rewrite_new_columns.py
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import duckdb


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--flush-every", type=int, default=2)
    p.add_argument("--fold-every", type=int, default=7)
    p.add_argument("--new-column", type=float, default=0.3)
    a = p.parse_args()
    from dynadex.store.catalog.extensions import extension_directory  # only where the pip extensions are

    root = Path(tempfile.mkdtemp(prefix="repro-rewrite-"))
    (root / "data").mkdir()
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": True,
                                 "extension_directory": extension_directory(), "allow_unsigned_extensions": True})
    con.execute(f"ATTACH 'ducklake:sqlite:{root}/catalog.sqlite' AS lake (DATA_PATH '{root}/data', "
                "META_JOURNAL_MODE 'WAL')")
    con.execute("USE lake")
    con.execute("CALL lake.set_option('data_inlining_row_limit', 1000)")
    con.execute("CREATE TABLE t (k VARCHAR, v VARCHAR)")
    con.execute("CALL lake.set_option('data_inlining_row_limit', 0, table_name => 't')")
    con.execute("INSERT INTO t SELECT 'k' || i, 'v' FROM range(2000) r(i)")  # files, as a publish writes
    con.execute("CALL lake.set_option('data_inlining_row_limit', 1000, table_name => 't')")
    rnd = random.Random(a.seed)
    columns: list[str] = []
    for b in range(a.batches):
        stmt = "batch"
        try:
            con.execute("BEGIN")
            if rnd.random() < a.new_column:
                columns.append(f"a{b}")
                con.execute(f"ALTER TABLE t ADD COLUMN a{b} VARCHAR")
            keys = [f"k{rnd.randrange(2200)}" for _ in range(rnd.randint(1, 5))]
            con.execute("DELETE FROM t WHERE k IN (SELECT unnest(?))", [keys])
            extra = f", {', '.join(columns)}" if columns else ""
            values = ", 'x'" * len(columns)
            for k in keys:
                con.execute(f"INSERT INTO t (k, v{extra}) VALUES (?, 'b{b}'{values})", [k])
            con.execute("COMMIT")
            if a.flush_every and b % a.flush_every == a.flush_every - 1:
                stmt = "flush"
                con.execute("CALL ducklake_flush_inlined_data('lake')")
            if a.fold_every and b % a.fold_every == a.fold_every - 1:
                stmt = "fold"
                con.execute("BEGIN")
                con.execute("CALL lake.set_option('data_inlining_row_limit', 0, table_name => 't')")
                con.execute("INSERT INTO t SELECT * FROM t WHERE k < 'k1'")
                con.execute("DELETE FROM t WHERE rowid IN (SELECT min(rowid) FROM t WHERE k < 'k1' GROUP BY k)")
                con.execute("CALL lake.set_option('data_inlining_row_limit', 1000, table_name => 't')")
                con.execute("COMMIT")
                stmt = "rewrite"
                con.execute("CALL ducklake_rewrite_data_files('lake', 't', delete_threshold => 1.0)")
        except duckdb.Error as exc:
            print(f"batch {b} {stmt}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            return
    print(f"{a.batches} batches, {len(columns)} new columns: no error")


if __name__ == "__main__":
    main()
