"""What a served query cannot do: leave the store, write, change a setting; and its limits: time and rows.
A parameter is bound, never spliced: SQL inside one stays a value."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    path = tmp_path_factory.mktemp("outside") / "outside.csv"
    path.write_text("who\nsecret-outside\n")
    return path


@pytest.mark.parametrize("sql, kind", [
    ("SELECT * FROM read_csv('{outside}')", "QUERY_ERROR"),
    ("SELECT * FROM '{outside}'", "QUERY_ERROR"),
    ("SELECT * FROM read_text('/etc/hostname')", "QUERY_ERROR"),
    ("SELECT * FROM read_json('http://127.0.0.1:9/x.json')", "QUERY_ERROR"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "QUERY_ERROR"),
    ("COPY (SELECT 1) TO '{outside}.out'", "INVALIDINPUT"),
    ("ATTACH ':memory:' AS m", "INVALIDINPUT"),
    ("SET threads = 1", "INVALIDINPUT"),
    ("INSTALL spatial", "INVALIDINPUT"),
    ("LOAD spatial", "INVALIDINPUT"),
    ("INSERT INTO Orders (pk) VALUES ('x')", "INVALIDINPUT"),
    ("DELETE FROM Orders", "INVALIDINPUT"),
    ("CREATE TABLE t AS SELECT 1", "INVALIDINPUT"),
    ("SELECT 1; DROP TABLE Orders", "INVALIDINPUT"),
    ("PRAGMA enable_profiling", "INVALIDINPUT"),
])
def test_the_sandbox_refuses(served, admin, outside, sql, kind):
    r = served.query(admin, sql.format(outside=outside))
    assert r.status_code == 400 and r.json()["type"] == kind, r.text
    assert "secret-outside" not in r.text
    assert served.query(admin, "SELECT count(*) AS c FROM Orders").json()["results"] == [{"c": 20}]


@pytest.fixture(scope="module")
def outside_sqlite(tmp_path_factory):
    import sqlite3

    path = tmp_path_factory.mktemp("outside") / "outside.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE secret (who TEXT)")
    con.execute("INSERT INTO secret VALUES ('secret-outside')")
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("sql", [
    # the SQLite scanner (loaded for DuckLake's SQLite catalog) opens files past DuckDB's own checks
    "SELECT * FROM sqlite_scan('{db}', 'secret')",
    "SELECT * FROM sqlite_query('{db}', 'SELECT * FROM secret')",
    "SELECT * FROM SQLite_Attach('{db}')",
    "SELECT count(*) AS c FROM sqlite_query('__ducklake_metadata_lake', 'SELECT * FROM ducklake_snapshot')",
    # hidden in a CTE, a subquery, a join
    "WITH s AS (SELECT * FROM sqlite_scan('{db}', 'secret')) SELECT * FROM s",
    "SELECT (SELECT max(who) FROM sqlite_scan('{db}', 'secret')) AS who",
    "SELECT o.pk, s.who FROM Orders o, sqlite_scan('{db}', 'secret') s",
    # SQL run from a string, which no parse sees into
    "SELECT * FROM query('SELECT * FROM sqlite_scan(''{db}'', ''secret'')')",
    "SELECT * FROM query_table('Orders')",
])
def test_the_sandbox_refuses_table_functions_that_read_past_it(served, admin, outside_sqlite, sql):
    r = served.query(admin, sql.format(db=outside_sqlite))
    assert r.status_code == 400 and r.json()["type"] == "QUERY_ERROR", r.text
    assert "the sandbox refuses the table function" in r.json()["message"]
    assert "secret-outside" not in r.text
    ok = served.query(admin, "SELECT count(*) AS c FROM range(3)")  # a harmless table function still runs
    assert ok.json()["results"] == [{"c": 3}], ok.text


def test_a_parameter_carrying_sql_stays_a_value(served, admin):
    for value in ["k1' OR '1'='1", "k1'; DROP TABLE Orders; --", "$$ OR true --", ":tag"]:
        r = served.query(admin, "SELECT count(*) AS c, :v AS v FROM Orders WHERE pk = :v",
                         [{"name": "v", "type": "string", "value": value}])
        assert r.json()["results"] == [{"c": 0, "v": value}], r.text
    # ':name' inside a string, a quoted name or a comment is not a parameter; '::' is a cast
    r = served.query(admin, "SELECT ':v' AS s, 7::VARCHAR AS \":v\" -- :v\n, :v AS v",
                     [{"name": "v", "type": "int", "value": "3"}])
    assert r.json()["results"] == [{"s": ":v", ":v": "7", "v": 3}]
    assert served.query(admin, "SELECT :nope").json()["message"] == "parameter :nope given no value"
    bad = served.query(admin, "SELECT :n", [{"name": "n", "type": "int", "value": "1; DROP"}])
    assert bad.status_code == 400 and "not a int" in bad.json()["message"]


def test_a_query_past_its_deadline_is_interrupted(served, admin):
    r = served.query(admin, "SELECT count(*) FROM range(10000000000) a", timeout_ms=300)
    assert r.status_code == 408 and r.json()["type"] == "QUERY_TIMEOUT"
    assert served.query(admin, "SELECT 1 AS one").json()["results"] == [{"one": 1}]  # the connection still answers


def test_rows_past_the_limit_are_cut_with_a_warning(served, admin):
    r = served.query(admin, "SELECT pk FROM Orders ORDER BY n", sql_extra={"default_row_limit": 3}).json()
    assert [row["pk"] for row in r["results"]] == ["k0", "k1", "k2"]
    assert r["warnings"] and "cut at 3 rows" in r["warnings"][0] and r["dynadex"]["rows_cut_at"] == 3
    whole = served.query(admin, "SELECT range FROM range(5)", sql_extra={"default_row_limit": 5}).json()
    assert len(whole["results"]) == 5 and not whole["warnings"]


def test_the_server_row_limit_and_memory_limit_hold(tmp_path):
    from tests.support.serve import Served, make_store

    server = Served(make_store(tmp_path / "store"), env={"DYNADEX_SERVE_MAX_ROWS": "7",
                                                        "DYNADEX_SERVE_MEMORY": "64MB"})
    try:
        key = server.key("k")
        r = server.query(key, "SELECT range FROM range(1000000000)", sql_extra={"default_row_limit": 100}).json()
        assert len(r["results"]) == 7 and r["dynadex"]["rows_cut_at"] == 7  # a request cannot raise the limit
        big = server.query(key, "SELECT list(range) FROM range(100000000)")
        assert big.status_code == 400 and "memory" in big.json()["message"].lower(), big.text
    finally:
        code, _ = server.stop()
        assert code == 0
