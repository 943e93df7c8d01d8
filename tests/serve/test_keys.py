"""Keys and roles: stored hashed, shown once; none or wrong 401; a table outside a key's list 403; only admins
manage lambdas; a key revoked from the command line is refused at its next request."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.serve import ROOT


def test_no_key_a_wrong_key_and_a_revoked_key_are_401(served):
    for key in (None, "dk_not-a-key"):
        r = served.query(key, "SELECT 1")
        assert r.status_code == 401 and r.json()["type"] == "AUTHEXCEPTION"
    r = served.call("POST", "/v1/orgs/self/queries", headers={"Authorization": "Bearer x"}, json={})
    assert r.status_code == 401
    key = served.key("short-lived")
    assert served.query(key, "SELECT 1 AS one").json()["results"] == [{"one": 1}]
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "keys", "revoke", "short-lived", "--store",
                           str(served.store)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert served.query(key, "SELECT 1").status_code == 401


def test_keys_are_shown_once_and_stored_hashed(served):
    done = subprocess.run([sys.executable, "-m", "dynadex.cli", "keys", "create", "cli-made", "--tables", "Orders",
                           "--store", str(served.store)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("dk_") and len(key) > 40
    state = (served.store / "serve.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in served.store.glob("serve.sqlite-*"))
    assert key.encode() not in state and key[10:].encode() not in state
    listed = subprocess.run([sys.executable, "-m", "dynadex.cli", "keys", "list", "--json", "--store",
                             str(served.store)], capture_output=True, text=True, cwd=ROOT)
    assert key not in listed.stdout
    mine = next(k for k in json.loads(listed.stdout) if k["name"] == "cli-made")
    assert mine["tables"] == ["Orders"] and mine["admin"] is False and mine["hint"] == key[:8] + "…"
    assert served.query(key, "SELECT count(*) AS c FROM Orders").json()["results"] == [{"c": 20}]


def test_a_key_reads_only_its_tables(served):
    key = served.key("orders-only", tables=["Orders"])
    ok = served.query(key, "SELECT count(*) AS c FROM commons.Orders o JOIN row_index.Orders r ON o._key = r.key")
    assert ok.status_code == 200 and ok.json()["results"] == [{"c": 20}]
    for sql in ["SELECT * FROM Secrets", "SELECT * FROM commons.Secrets", "SELECT * FROM inverted_index.Secrets",
                "SELECT * FROM Orders WHERE pk IN (SELECT pk FROM Secrets)",
                "WITH x AS (SELECT * FROM lake.main.Secrets) SELECT * FROM x"]:
        r = served.query(key, sql)
        assert r.status_code == 403 and r.json()["type"] == "FORBIDDEN" and "Secrets" in r.json()["message"], sql
    for sql in ["SELECT * FROM dynadex.tables", "SELECT * FROM information_schema.tables",
                "SELECT * FROM read_parquet('data/**/*.parquet')", "SELECT * FROM ducklake_snapshots('lake')"]:
        r = served.query(key, sql)
        assert r.status_code == 403, (sql, r.text)
    # a CTE named like a forbidden table is the query's own
    assert served.query(key, "WITH Secrets AS (SELECT 1 AS a) SELECT a FROM Secrets").json()["results"] == [{"a": 1}]
    assert [c["name"] for c in served.call("GET", "/v1/orgs/self/collections", key).json()["data"]] == ["Orders"]
    assert served.call("GET", "/v1/orgs/self/ws/commons/collections/Secrets", key).status_code == 404


def test_only_admin_keys_manage_lambdas_and_a_lambda_runs_within_the_callers_tables(served, admin):
    body = {"name": "secret_codes", "sql": {"query": "SELECT code FROM Secrets"}}
    plain = served.key("plain")
    r = served.call("POST", "/v1/orgs/self/ws/commons/lambdas", plain, json=body)
    assert r.status_code == 403 and "admin" in r.json()["message"]
    assert served.call("POST", "/v1/orgs/self/ws/commons/lambdas", admin, json=body).status_code == 200
    again = served.call("POST", "/v1/orgs/self/ws/commons/lambdas", admin, json=body)
    assert again.status_code == 409 and again.json()["type"] == "ALREADYEXISTS"
    limited = served.key("orders-reader", tables=["Orders"])
    run = served.call("POST", "/v1/orgs/self/ws/commons/lambdas/secret_codes/versions/1", limited, json={})
    assert run.status_code == 403
    assert served.call("POST", "/v1/orgs/self/ws/commons/lambdas/secret_codes/versions/1", plain,
                       json={}).json()["results"] == [{"code": "launch"}]
