"""The official ``rockset`` client (PyPI, 2.1.2) talks to ``dynadex serve`` with only its base URL changed."""

from __future__ import annotations

import pytest

rockset = pytest.importorskip("rockset")

from rockset import Regions, RocksetClient  # noqa: E402
from rockset.exceptions import ForbiddenException, NotFoundException, UnauthorizedException  # noqa: E402
from rockset.models import QueryLambdaSql, QueryParameter  # noqa: E402


def client(served, key: str) -> RocksetClient:
    rs = RocksetClient(host=Regions.usw2a1, api_key=key)
    rs.api_client.configuration.host = served.url  # the client accepts only *.rockset.com hosts when made
    return rs


def test_a_query_with_parameters(served, reader):
    rs = client(served, reader)
    answer = rs.sql("SELECT pk, n FROM commons.Orders WHERE n >= :low AND tag = :tag ORDER BY n",
                    params={"low": 15, "tag": "odd"})
    assert answer.results == [{"pk": "k15", "n": 15}, {"pk": "k17", "n": 17}, {"pk": "k19", "n": 19}]
    assert [(f.name, f.type) for f in answer.column_fields] == [("pk", "string"), ("n", "int")]
    assert answer.collections == ["commons.Orders"]
    about = answer.get("dynadex")  # the snapshot read, kept by the client as an extra property
    assert about["snapshot"] >= 1 and about["committed_at"] and "Orders" in about["tables"]
    typed = rs.Queries.query(sql={"query": "SELECT :d + 1 AS d, :f * 2 AS f, :b AS b, :s AS s", "parameters": [
        QueryParameter(name="d", type="date", value="2024-02-28"), QueryParameter(name="f", type="float", value="1.25"),
        QueryParameter(name="b", type="bool", value="true"), QueryParameter(name="s", type="string", value="x")]})
    assert typed.results == [{"d": "2024-02-29", "f": 2.5, "b": True, "s": "x"}]


def test_query_lambdas_created_updated_and_run_by_version_and_by_tag(served, admin, reader):
    rs = client(served, admin)
    made = rs.QueryLambdas.create_query_lambda(
        name="by_tag", workspace="commons", description="items of a tag",
        sql=QueryLambdaSql(query="SELECT count(*) AS c FROM commons.Orders WHERE tag = :tag",
                           default_parameters=[QueryParameter(name="tag", type="string", value="even")]))
    assert (made.data.name, made.data.version, made.data.state) == ("by_tag", "1", "ACTIVE")
    assert made.data.collections == ["commons.Orders"]
    updated = rs.QueryLambdas.update_query_lambda(
        query_lambda="by_tag", workspace="commons",
        sql=QueryLambdaSql(query="SELECT count(*) * 100 AS c FROM commons.Orders WHERE tag = :tag AND n < :most",
                           default_parameters=[QueryParameter(name="tag", type="string", value="odd"),
                                               QueryParameter(name="most", type="int", value="5")]))
    assert updated.data.version == "2"
    run = client(served, reader).QueryLambdas  # any key runs a lambda
    assert run.execute_query_lambda(query_lambda="by_tag", version="1", workspace="commons").results == [{"c": 10}]
    assert run.execute_query_lambda(query_lambda="by_tag", version="2", workspace="commons").results == [{"c": 200}]
    overridden = run.execute_query_lambda(query_lambda="by_tag", version="2", workspace="commons",
                                          parameters=[QueryParameter(name="most", type="int", value="100")])
    assert overridden.results == [{"c": 1000}] and overridden.query_lambda_path == "commons.by_tag:2"
    tag = rs.QueryLambdas.create_query_lambda_tag(query_lambda="by_tag", workspace="commons", tag_name="prod",
                                                  version="1")
    assert (tag.data.tag_name, tag.data.version.version) == ("prod", "1")
    assert run.execute_query_lambda_by_tag(query_lambda="by_tag", tag="prod", workspace="commons").results == [{"c": 10}]
    assert run.execute_query_lambda_by_tag(query_lambda="by_tag", tag="latest",
                                           workspace="commons").results == [{"c": 200}]
    got = run.get_query_lambda_version(query_lambda="by_tag", version="1", workspace="commons").data
    assert got.sql.query.endswith("tag = :tag") and got.sql.default_parameters[0].value == "even"
    assert [l.name for l in run.list_all_query_lambdas().data] == ["by_tag"]
    assert [l.version_count for l in run.list_query_lambdas_in_workspace(workspace="commons").data] == [2]
    assert [t.tag_name for t in run.list_query_lambda_tags(query_lambda="by_tag", workspace="commons").data] == ["prod"]
    assert [v.version for v in run.list_query_lambda_versions(query_lambda="by_tag", workspace="commons").data] == \
        ["2", "1"]
    with pytest.raises(ForbiddenException, match="only an admin key"):
        run.update_query_lambda(query_lambda="by_tag", workspace="commons", sql=QueryLambdaSql(query="SELECT 1"))
    with pytest.raises(NotFoundException, match="no version"):
        run.execute_query_lambda(query_lambda="by_tag", version="9", workspace="commons")


def test_collections_and_errors_in_rocksets_shape(served, reader):
    rs = client(served, reader)
    assert sorted(c.name for c in rs.Collections.list().data) == ["Orders", "Secrets"]
    orders = rs.Collections.get(collection="Orders", workspace="commons").data
    assert (orders.workspace, orders.status, orders.stats.doc_count) == ("commons", "READY", 20)
    with pytest.raises(NotFoundException) as missing:
        rs.Collections.get(collection="Nope", workspace="commons")
    assert '"type":"NOTFOUND"' in missing.value.body
    with pytest.raises(UnauthorizedException):
        client(served, "dk_wrong").sql("SELECT 1")
