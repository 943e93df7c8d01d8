"""A query's rows as JSON, CSV or Arrow, each saying which snapshot answered.

Invariants:

* The format is chosen by ``?format=json|csv|arrow``, else by the ``Accept`` header, else JSON.
* Every format carries the snapshot read: JSON in its ``dynadex`` field, CSV and Arrow in the
  ``X-Dynadex-Read`` header (the same document, compact), Arrow also in its schema metadata (``dynadex``).
* Values keep their exactness: decimals stay text in JSON and CSV, typed in Arrow; nested values (lists,
  maps) are JSON text in CSV.
"""

from __future__ import annotations

import io
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dynadex.serve.errors import NotAcceptable

ARROW = "application/vnd.apache.arrow.stream"
CSV = "text/csv"
FORMATS = {"json": "application/json", "csv": CSV, "arrow": ARROW}


def chosen(request: Request) -> str:
    asked = request.query_params.get("format")
    if asked:
        if asked not in FORMATS:
            raise NotAcceptable(f"format {asked!r}: one of {', '.join(FORMATS)}")
        return asked
    accept = request.headers.get("accept", "")
    if ARROW in accept:
        return "arrow"
    if CSV in accept:
        return "csv"
    return "json"


def _headers(about: dict) -> dict:
    return {"X-Dynadex-Snapshot": str(about["snapshot"]), "X-Dynadex-Read": json.dumps(about, separators=(",", ":"))}


def render(fmt: str, result, about: dict) -> Response:
    table = result.table
    if fmt == "arrow":
        import pyarrow as pa

        meta = dict(table.schema.metadata or {})
        meta[b"dynadex"] = json.dumps(about).encode()
        table = table.replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue().to_pybytes(), media_type=ARROW, headers=_headers(about))
    if fmt == "csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.types as pt

        columns = []
        for field, column in zip(table.schema, table.columns):
            t = field.type
            if pt.is_nested(t) or pt.is_decimal(t) or pt.is_binary(t) or pt.is_large_binary(t):
                from dynadex.store.reads import jsonable

                def text(v):
                    v = jsonable(v)
                    return v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False)

                column = pa.array([text(v) for v in column.to_pylist()], pa.string())
            columns.append(column)
        out = io.BytesIO()
        pacsv.write_csv(pa.table(columns, names=table.column_names), out)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=_headers(about))
    return JSONResponse({"columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
                         "rows": result.rows(), "dynadex": about}, headers=_headers(about))
