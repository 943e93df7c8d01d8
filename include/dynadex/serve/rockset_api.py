"""Rockset's REST API, the query subset, answered from the store: the shapes of the ``rockset`` client 2.1.2.

Invariants:

* Requests and answers keep the field names and types of the client's models (``QueryRequest``,
  ``QueryResponse``, ``CreateQueryLambdaRequest``, ``UpdateQueryLambdaRequest``, ``QueryLambdaVersion``,
  ``QueryLambdaTag``, ``ExecuteQueryLambdaRequest``, ``Collection``); an answer adds only the ``dynadex``
  field of a query (its snapshot and freshness), which the client keeps as an extra property.
* The one workspace is ``DYNADEX_SERVE_WORKSPACE`` (``commons``); its collections are the store's tables.
* Every handler checks the key first (``Service.key``); lambdas are managed by admin keys only.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dynadex.serve import access, queries
from dynadex.serve.errors import BadRequest, NotFound, NotImplementedYet
from dynadex.serve.lambdas import Version
from dynadex.serve.service import Service
from dynadex.serve.sql import bind_names, parameter_values, prepare


def arrow_type(t) -> str:
    """A column's type in Rockset's words (``QueryFieldType.type``); decimals are exact text: ``decimal``."""
    import pyarrow.types as pt

    for test, name in ((pt.is_boolean, "bool"), (pt.is_integer, "int"), (pt.is_floating, "float"),
                       (pt.is_decimal, "decimal"), (pt.is_string, "string"), (pt.is_large_string, "string"),
                       (pt.is_binary, "bytes"), (pt.is_large_binary, "bytes"), (pt.is_date, "date"),
                       (pt.is_timestamp, "timestamp"), (pt.is_time, "time"), (pt.is_list, "array"),
                       (pt.is_large_list, "array"), (pt.is_struct, "object"), (pt.is_map, "object"),
                       (pt.is_null, "null")):
        if test(t):
            return name
    return str(t)


def query_response(answer: queries.Answer, workspace: str, lambda_path: str | None = None) -> dict:
    rows = answer.result.rows()
    doc = {
        "query_id": answer.query_id,
        "collections": [f"{workspace}.{t}" for t in answer.prepared.tables],
        "results": rows,
        "results_total_doc_count": len(rows),
        "column_fields": [{"name": f.name, "type": arrow_type(f.type)} for f in answer.result.table.schema],
        "stats": {"elapsed_time_ms": answer.elapsed_ms, "throttled_time_micros": 0},
        "warnings": answer.warnings,
        "query_errors": [],
        "dynadex": answer.about(),
    }
    if lambda_path:
        doc["query_lambda_path"] = lambda_path
    return doc


def answered(doc: dict, answer: queries.Answer) -> JSONResponse:
    return JSONResponse(doc, headers={"X-Dynadex-Snapshot": str(answer.snapshot.id)})


async def body_of(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    return doc


def _workspace(service: Service, request: Request) -> str:
    ws = request.path_params.get("workspace", service.workspace)
    if ws != service.workspace:
        raise NotFound(f"no workspace {ws!r} (this server answers for {service.workspace!r})")
    return ws


# ------------------------------------------------------------------------------------------------ queries

async def run_query(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    body = await body_of(request)
    if body.get("async"):
        raise NotImplementedYet("async queries are not served: run the query synchronously")
    sql = body.get("sql")
    if not isinstance(sql, dict) or not isinstance(sql.get("query"), str):
        raise BadRequest("the body needs sql.query (QueryRequest: {\"sql\": {\"query\": ...}})")
    limits = service.limits.narrowed(body.get("timeout_ms"), sql.get("default_row_limit"))
    answer = await run_in_threadpool(queries.run, service.readers, key, sql["query"], sql.get("parameters"),
                                     service.workspace, limits)
    service.metrics.answered(answer)
    return answered(query_response(answer, service.workspace), answer)


# ------------------------------------------------------------------------------------------- query lambdas

def version_doc(v: Version) -> dict:
    return {
        "workspace": v.workspace, "name": v.name, "version": str(v.version), "description": v.description,
        "sql": {"query": v.query, "default_parameters": v.default_parameters}, "state": "ACTIVE",
        "created_at": v.created_at, "created_by": v.created_by, "created_by_apikey_name": v.created_by,
        "collections": [f"{v.workspace}.{t}" for t in v.collections],
    }


def _checked_sql(service: Service, key, sql) -> tuple[str, list[dict], list[str]]:
    """A lambda's SQL (``QueryLambdaSql``) checked: it parses with every ``:name`` a parameter, its defaults are
    typed right, and the key may read what it reads; the tables it reads."""
    if not isinstance(sql, dict) or not isinstance(sql.get("query"), str):
        raise BadRequest("the body needs sql.query (QueryLambdaSql: {\"query\": ..., \"default_parameters\": [...]})")
    defaults = sql.get("default_parameters") or []
    values = parameter_values(defaults)
    _, _, named = bind_names(sql["query"], ())
    prepared = prepare(sql["query"], {**{n: None for n in named}, **values}, service.workspace)
    access.check_query(key, prepared)
    return sql["query"], defaults, prepared.tables


async def create_lambda(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    access.check_admin(key, "create Query Lambdas")
    ws = _workspace(service, request)
    body = await body_of(request)
    query, defaults, tables = _checked_sql(service, key, body.get("sql"))
    v = service.lambdas.add_version(ws, body.get("name"), query, defaults, body.get("description"), tables, key.name,
                                    first=True)
    return JSONResponse({"data": version_doc(v)})


async def update_lambda(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    access.check_admin(key, "update Query Lambdas")
    ws = _workspace(service, request)
    name = request.path_params["name"]
    body = await body_of(request)
    newest = service.lambdas.versions(ws, name)[0]
    sql = body.get("sql") or {"query": newest.query, "default_parameters": newest.default_parameters}
    query, defaults, tables = _checked_sql(service, key, sql)
    description = body.get("description", newest.description)
    v = service.lambdas.add_version(ws, name, query, defaults, description, tables, key.name, first=False)
    return JSONResponse({"data": version_doc(v)})


def lambda_doc(v: Version, count: int) -> dict:
    return {"workspace": v.workspace, "name": v.name, "version_count": count, "latest_version": version_doc(v),
            "collections": [f"{v.workspace}.{t}" for t in v.collections], "last_updated": v.created_at,
            "last_updated_by": v.created_by}


async def list_lambdas(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request) if "workspace" in request.path_params else None
    return JSONResponse({"data": [lambda_doc(v, n) for v, n in service.lambdas.lambdas(ws)]})


async def list_versions(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    return JSONResponse({"data": [version_doc(v) for v in service.lambdas.versions(ws, request.path_params["name"])]})


async def get_version(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    p = request.path_params
    return JSONResponse({"data": version_doc(service.lambdas.version(ws, p["name"], p["version"]))})


async def _execute(request: Request, v: Version):
    service: Service = request.app.state.service
    key = service.key(request)
    body = await body_of(request)
    if body.get("async"):
        raise NotImplementedYet("async Query Lambda runs are not served: run it synchronously")
    parameters = [*v.default_parameters, *(body.get("parameters") or [])]  # the request's win (last of a name)
    limits = service.limits.narrowed(body.get("timeout_ms"), body.get("default_row_limit"))
    answer = await run_in_threadpool(queries.run, service.readers, key, v.query, parameters, service.workspace, limits)
    service.metrics.answered(answer)
    return answered(query_response(answer, service.workspace, f"{v.workspace}.{v.name}:{v.version}"), answer)


async def execute_version(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    p = request.path_params
    return await _execute(request, service.lambdas.version(ws, p["name"], p["version"]))


async def execute_tag(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    p = request.path_params
    return await _execute(request, service.lambdas.tagged(ws, p["name"], p["tag"]))


def tag_doc(tag: str, v: Version) -> dict:
    return {"tag_name": tag, "version": version_doc(v)}


async def create_tag(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    access.check_admin(key, "tag Query Lambdas")
    ws = _workspace(service, request)
    body = await body_of(request)
    if not isinstance(body.get("tag_name"), str) or body.get("version") is None:
        raise BadRequest("the body needs tag_name and version (CreateQueryLambdaTagRequest)")
    v = service.lambdas.tag(ws, request.path_params["name"], body["tag_name"], body["version"])
    return JSONResponse({"data": tag_doc(body["tag_name"], v)})


async def get_tag(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    p = request.path_params
    return JSONResponse({"data": tag_doc(p["tag"], service.lambdas.tagged(ws, p["name"], p["tag"]))})


async def list_tags(request: Request):
    service: Service = request.app.state.service
    service.key(request)
    ws = _workspace(service, request)
    return JSONResponse({"data": [tag_doc(t, v) for t, v in service.lambdas.tags(ws, request.path_params["name"])]})


# ----------------------------------------------------------------------------------------------- collections

async def list_collections(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    if "workspace" in request.path_params:
        _workspace(service, request)
    tables = await run_in_threadpool(service.tables, key)
    return JSONResponse({"data": [service.collection_doc(t) for t in tables]})


async def get_collection(request: Request):
    service: Service = request.app.state.service
    key = service.key(request)
    _workspace(service, request)
    name = request.path_params["collection"]
    tables = await run_in_threadpool(service.tables, key, [name])
    if not tables:
        raise NotFound(f"no collection {service.workspace}.{name}")
    return JSONResponse({"data": service.collection_doc(tables[0])})


WS = "/v1/orgs/self/ws/{workspace}"
LAMBDA = WS + "/lambdas/{name}"

routes = [
    Route("/v1/orgs/self/queries", run_query, methods=["POST"]),
    Route("/v1/orgs/self/lambdas", list_lambdas, methods=["GET"]),
    Route(WS + "/lambdas", list_lambdas, methods=["GET"]),
    Route(WS + "/lambdas", create_lambda, methods=["POST"]),
    Route(LAMBDA + "/versions", list_versions, methods=["GET"]),
    Route(LAMBDA + "/versions", update_lambda, methods=["POST"]),
    Route(LAMBDA + "/versions/{version}", get_version, methods=["GET"]),
    Route(LAMBDA + "/versions/{version}", execute_version, methods=["POST"]),
    Route(LAMBDA + "/tags", list_tags, methods=["GET"]),
    Route(LAMBDA + "/tags", create_tag, methods=["POST"]),
    Route(LAMBDA + "/tags/{tag}", get_tag, methods=["GET"]),
    Route(LAMBDA + "/tags/{tag}", execute_tag, methods=["POST"]),
    Route("/v1/orgs/self/collections", list_collections, methods=["GET"]),
    Route(WS + "/collections", list_collections, methods=["GET"]),
    Route(WS + "/collections/{collection}", get_collection, methods=["GET"]),
]
