"""dynadex's own endpoints: get by key, find by value (current entries only), tables with their lag, and SQL
answers as JSON, CSV and Arrow, each naming its snapshot."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa

from dynadex.store import Change, Checkpoint, Store
from dynadex.types import canonical_item


def test_get_by_key_answers_the_item_exactly(served, reader):
    r = served.call("GET", "/v1/dynadex/tables/Orders/item", reader, params={"key": '{"pk":{"S":"k3"}}'})
    assert r.status_code == 200 and r.json()["item"] == {"n": {"N": "3"}, "pk": {"S": "k3"}, "tag": {"S": "odd"}}
    assert r.json()["dynadex"]["snapshot"] == int(r.headers["X-Dynadex-Snapshot"])
    again = served.call("GET", "/v1/dynadex/tables/Orders/item", reader, params={"key": '{"pk":{"S":"k4"}}'})
    assert again.json()["item"]["n"] == {"N": "4"}
    assert again.json()["dynadex"]["snapshot"] == r.json()["dynadex"]["snapshot"]
    metrics = served.call("GET", "/metrics").text  # both read the row index's files (store/point_reads.py)
    fast = next(line for line in metrics.splitlines() if line.startswith('dynadex_serve_point_reads_total{how="fast"}'))
    assert int(fast.split()[-1]) >= 2
    assert served.call("GET", "/v1/dynadex/tables/Orders/item", reader,
                       params={"key": '{"pk":{"S":"nope"}}'}).status_code == 404
    bad = served.call("GET", "/v1/dynadex/tables/Orders/item", reader, params={"key": '{"id":{"S":"x"}}'})
    assert bad.status_code == 400 and "has key ['pk']" in bad.json()["message"]
    assert served.call("GET", "/v1/dynadex/tables/Nope/item", reader, params={"key": "{}"}).status_code == 404
    limited = served.key("get-orders", tables=["Orders"])
    assert served.call("GET", "/v1/dynadex/tables/Secrets/item", limited,
                       params={"key": '{"pk":{"S":"s1"}}'}).status_code == 403


def test_find_answers_current_entries_only(tmp_path):
    from tests.support.serve import Served, make_store

    server = Served(make_store(tmp_path / "store"))
    try:
        key = server.key("k")
        found = server.call("GET", "/v1/dynadex/tables/Orders/find", key, params={"path": "tag", "value": "odd"}).json()
        assert len(found["items"]) == 10
        with Store(str(server.store), read_only=False) as st:  # k1 becomes even: its odd entry is superseded
            st.apply("Orders", [Change({"pk": {"S": "k1"}}, canonical_item(
                {"pk": {"S": "k1"}, "n": {"N": "1"}, "tag": {"S": "even"}}), 10, "s")], [Checkpoint("s1", "1")])
        odd = server.call("GET", "/v1/dynadex/tables/Orders/find", key, params={"path": "tag", "value": "odd"}).json()
        assert sorted(i["pk"]["S"] for i in odd["items"]) == [f"k{i}" for i in (11, 13, 15, 17, 19, 3, 5, 7, 9)]
        assert odd["dynadex"]["snapshot"] > found["dynadex"]["snapshot"]
        few = server.call("GET", "/v1/dynadex/tables/Orders/find", key,
                          params={"path": "tag", "value": "even", "limit": "2"}).json()
        assert len(few["items"]) == 2 and few["dynadex"]["rows_cut_at"] == 2
        n = server.call("GET", "/v1/dynadex/tables/Orders/find", key, params={"path": "n", "value": '{"N":"4.0"}'})
        assert [i["pk"]["S"] for i in n.json()["items"]] == ["k4"]
    finally:
        assert server.stop()[0] == 0


def test_tables_with_their_lag(served, reader):
    tables = served.call("GET", "/v1/dynadex/tables", reader).json()["tables"]
    assert [(t["table"], t["items"]) for t in tables] == [("Orders", 20), ("Secrets", 1)]
    assert {"lag_seconds", "checked_at", "snapshot", "published_at"} <= set(tables[0])


def test_sql_answers_in_json_csv_and_arrow(served, reader):
    body = {"sql": "SELECT pk, n, n / 4 AS q, [n, n + 1] AS pair, 1.5::DECIMAL(10,2) AS d FROM Orders "
                   "WHERE tag = :tag ORDER BY n LIMIT 3", "parameters": {"tag": "even"}}
    as_json = served.call("POST", "/v1/dynadex/query", reader, json=body).json()
    assert as_json["rows"][1] == {"pk": "k2", "n": 2, "q": 0.5, "pair": [2, 3], "d": "1.50"}
    assert as_json["dynadex"]["tables"]["Orders"] is not None
    as_csv = served.call("POST", "/v1/dynadex/query", reader, json=body, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[1] == {"pk": "k2", "n": "2", "q": "0.5", "pair": "[2, 3]", "d": "1.50"}
    assert json.loads(as_csv.headers["X-Dynadex-Read"])["snapshot"] == as_json["dynadex"]["snapshot"]
    as_arrow = served.call("POST", "/v1/dynadex/query?format=arrow", reader, json=body)
    table = pa.ipc.open_stream(as_arrow.content).read_all()
    assert table.column("pk").to_pylist() == ["k0", "k2", "k4"] and table.schema.field("d").type == pa.decimal128(10, 2)
    assert json.loads(table.schema.metadata[b"dynadex"])["snapshot"] == as_json["dynadex"]["snapshot"]
    assert served.call("POST", "/v1/dynadex/query?format=xml", reader, json=body).status_code == 406
