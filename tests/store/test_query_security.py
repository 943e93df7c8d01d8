"""What a query can and cannot do, and how credentials travel: nothing writes, the sandbox reads only the store,
and no secret leaves the object that holds it."""

from __future__ import annotations

import os
import pickle

import duckdb
import pytest

from dynadex.credentials import AwsCredentials
from dynadex.errors import CredentialsError
from dynadex.store import Store
from dynadex.store.catalog.location import mask, resolve
from dynadex.store.errors import QueryError, StoreError
from tests.support.store import cli, publish_items

SECRET = "PLANTED-wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "PLANTED-TOKEN-FwoGZXIvYXdzEJr"


@pytest.fixture
def store(tmp_path):
    publish_items(tmp_path / "store", "T", [{"pk": {"S": "a"}, "n": {"N": "1"}}])
    (tmp_path / "outside.csv").write_text("who\nsecret-outside\n")
    return tmp_path


@pytest.mark.parametrize("sql", [
    "PRAGMA threads=1", "PRAGMA enable_profiling", "PRAGMA memory_limit='1GB'", "SET threads = 1",
    "RESET threads", "INSTALL spatial", "LOAD spatial", "ATTACH ':memory:' AS m", "DETACH lake",
    "CALL ducklake_expire_snapshots('lake', older_than => now())", "CHECKPOINT", "EXPORT DATABASE '/tmp/x'",
    "CREATE SECRET s (TYPE s3)", "USE memory", "SET VARIABLE v = 1",
])
def test_query_refuses_writes_attaches_and_setting_changes(store, sql):
    with Store(str(store / "store")) as st:
        with pytest.raises(QueryError, match="read-only"):
            st.query(sql)
        assert st.query("SELECT current_setting('threads') > 0, count(*) FROM T")[1] == [(True, 1)]


def test_read_pragmas_still_work(store):
    with Store(str(store / "store")) as st:
        assert [r[1] for r in st.query("PRAGMA table_info('T')")[1]][:3] == ["_key", "_key_order", "n"]


def test_plain_queries_read_local_files_and_the_sandbox_does_not(store):
    """Default: DuckDB's readers read what the user can (documented). Sandbox: the store and nothing else."""
    outside = str(store / "outside.csv")
    with Store(str(store / "store")) as st:
        assert st.query(f"SELECT who FROM read_csv('{outside}')")[1] == [("secret-outside",)]
    with Store(str(store / "store"), sandbox=True) as st:
        assert st.query("SELECT pk, n FROM T")[1] == [("a", 1)]
        assert st.get("T", '{"pk":{"S":"a"}}') == '{"n":{"N":"1"},"pk":{"S":"a"}}'
        assert len(st.find("T", "n=1")) == 1
        for sql in [f"SELECT * FROM read_csv('{outside}')", "SELECT * FROM read_text('/etc/hostname')",
                    f"SELECT * FROM read_text('{st.location.data_path}../../outside.csv')",
                    "SELECT * FROM read_json('http://127.0.0.1:9/x.json')"]:
            with pytest.raises(QueryError, match="query failed"):
                st.query(sql)
        # the settings that make the sandbox cannot be undone from a query, even through the connection
        with pytest.raises(duckdb.Error, match="locked"):
            st.lake.con.execute("SET enable_external_access = true")
        # extensions load without DuckDB's signature check (decision 0029), yet no file can be loaded here
        planted = store / "planted.duckdb_extension"
        planted.write_bytes(b"\x7fELF" + bytes(1000))
        assert st.lake.con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0]
        with pytest.raises(duckdb.Error, match="disabled through configuration"):
            st.lake.con.execute(f"LOAD '{planted}'")
    done = cli(store / "store", "query", f"SELECT * FROM read_csv('{outside}')", "--sandbox")
    assert done.returncode == 1 and "secret-outside" not in done.stdout + done.stderr
    with pytest.raises(StoreError, match="read-only"):
        Store(str(store / "store"), read_only=False, sandbox=True)


def _connected():
    from dynadex.store.catalog.extensions import connect

    return connect()


def test_credentials_never_show_their_secret():
    creds = AwsCredentials("AKIAEXAMPLE", SECRET, TOKEN, "eu-west-1", "http://127.0.0.1:1")
    for text in (repr(creds), str(creds), repr(creds.to_dict()), repr(resolve("/tmp/x", credentials=creds))):
        assert SECRET not in text and TOKEN not in text
    assert creds.to_dict() == {"access_key": "AKIAEXAMPLE", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:1",
                               "has_secret": True, "has_session_token": True}
    # workers get them by pickling, not through the environment
    assert pickle.loads(pickle.dumps(resolve("/tmp/x", credentials=creds))).credentials == creds


def test_duckdb_gets_the_secret_without_the_environment_and_errors_do_not_echo_it():
    before = dict(os.environ)
    AwsCredentials("AKIAEXAMPLE", SECRET, TOKEN, "eu-west-1", "http://127.0.0.1:1").duckdb_secret(_connected())
    assert dict(os.environ) == before
    # values cannot alter the statement: a region that tries to break out of its literal is kept as text
    con = _connected()
    AwsCredentials("AKIAEXAMPLE", SECRET, None, "x', BOGUS 'y", None).duckdb_secret(con)
    assert "region=x', BOGUS 'y" in con.execute("SELECT secret_string FROM duckdb_secrets()").fetchone()[0]
    # a CREATE SECRET that fails (DuckDB's parser error would quote the statement) never shows the key
    bad = AwsCredentials("AKIAEXAMPLE", SECRET + "\x00", None, "eu-west-1", None)
    with pytest.raises(CredentialsError) as err:
        bad.duckdb_secret(_connected())
    assert SECRET not in str(err.value) and "AKIAEXAMPLE" in str(err.value)


def test_the_secret_is_temporary_and_redacted_in_duckdb():
    con = _connected()
    AwsCredentials("AKIAEXAMPLE", SECRET, TOKEN, "eu-west-1", None).duckdb_secret(con)
    rows = con.execute("SELECT name, persistent, secret_string FROM duckdb_secrets()").fetchall()
    assert [(n, p) for n, p, _s in rows] == [("dynadex_s3", False)]
    assert SECRET not in rows[0][2] and TOKEN not in rows[0][2]


def test_store_errors_mask_passwords():
    assert mask("postgresql://dynadex:hunter2@db:5432/x") == "postgresql://dynadex:***@db:5432/x"
    assert mask("connection to host=db password=hunter2 failed") == "connection to host=db password=*** failed"


def test_the_sandbox_refuses_the_sqlite_scanner_and_sql_in_strings(store):
    """The SQLite scanner DuckLake's catalog loads opens any file through SQLite's own calls, past DuckDB's
    ``allowed_directories``: a sandboxed query may not call it (nor ``query()``, whose SQL no parse sees)."""
    import sqlite3

    db = store / "outside.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE secret (who TEXT)")
    con.execute("INSERT INTO secret VALUES ('secret-outside')")
    con.commit()
    con.close()
    scan = f"SELECT * FROM sqlite_scan('{db}', 'secret')"
    with Store(str(store / "store")) as st:  # not sandboxed: the user's own files, as documented
        assert st.query(scan)[1] == [("secret-outside",)]
    with Store(str(store / "store"), sandbox=True) as st:
        for sql in [scan, f"EXPLAIN ANALYZE {scan}", f"WITH s AS ({scan}) SELECT * FROM s",
                    f"SELECT * FROM T, LATERAL (SELECT * FROM sqlite_query('{db}', 'SELECT * FROM secret'))",
                    "SELECT * FROM sqlite_query('__ducklake_metadata_lake', 'SELECT * FROM ducklake_snapshot')",
                    f"SELECT * FROM sqlite_attach('{db}')", "SELECT * FROM query('SELECT 1')"]:
            with pytest.raises(QueryError, match="the sandbox refuses the table function"):
                st.query(sql)
        assert st.query("SELECT count(*) FROM T, range(2)")[1] == [(2,)]
    done = cli(store / "store", "query", scan, "--sandbox")
    assert done.returncode == 1 and "secret-outside" not in done.stdout + done.stderr
