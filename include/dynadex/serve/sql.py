"""A served query made ready to run: Rockset's parameters bound, workspace names resolved, what it reads named.

Invariants:

* Parameter values are never spliced into SQL: ``:name`` (Rockset's spelling) becomes DuckDB's ``$name`` and
  the value is bound, so a value holding SQL stays a value.
* Only one SELECT statement is served; any other statement is refused before anything runs.
* ``Prepared.tables``, ``relations`` and ``functions`` name everything the query reads, from DuckDB's own
  parse (``json_serialize_sql``), so that ``access.check`` can refuse a key what it may not read before the
  query runs. A name the parse cannot see (none known) would still meet the sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass, field

import duckdb

from dynadex.serve.errors import BadRequest, QueryFailed
from dynadex.store.reads import sql_nodes

INDEX_SCHEMAS = ("main", "row_index", "inverted_index")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word not in ("true", "false"):
        raise ValueError("not true or false")
    return word == "true"


def _datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


PARAMETER_TYPES = {  # Rockset's parameter types -> how a value (always text on the wire) is read
    "string": str,
    "int": int,
    "float": float,
    "bool": _bool,
    "date": dt.date.fromisoformat,
    "datetime": _datetime,
    "timestamp": _datetime,
    "time": dt.time.fromisoformat,
}


def parameter_values(parameters: list[dict] | None) -> dict:
    """``[{name, type, value}]`` (Rockset's ``QueryParameter``) as name -> typed value; the last of a name wins."""
    out = {}
    for p in parameters or []:
        if not isinstance(p, dict) or not {"name", "type", "value"} <= set(p):
            raise BadRequest("each parameter needs 'name', 'type' and 'value'")
        name, kind, value = p["name"], str(p["type"]).lower(), p["value"]
        if not isinstance(name, str) or not IDENT.fullmatch(name):
            raise BadRequest(f"parameter name {name!r}: letters, digits and '_', not starting with a digit")
        if kind not in PARAMETER_TYPES:
            raise BadRequest(f"parameter {name}: type {p['type']!r} is not one of {', '.join(PARAMETER_TYPES)}")
        if kind == "string" and value is None:
            out[name] = None
            continue
        try:
            out[name] = PARAMETER_TYPES[kind](str(value) if not isinstance(value, bool) else str(value).lower())
        except ValueError as exc:
            raise BadRequest(f"parameter {name}: {value!r} is not a {kind}: {exc}") from exc
    return out


def bind_names(sql: str, names) -> tuple[str, list[str], list[str]]:
    """``sql`` with each ``:name`` of a given ``names`` turned into ``$name`` (outside strings, quoted names and
    comments; ``::`` casts untouched); also the names used, and the ``:name``s left without a value."""
    wanted = set(names)
    out, used, missing = [], [], []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":  # a string or a quoted name: to its closing quote (doubled quotes inside)
            j = i + 1
            while j < n and not (sql[j] == c and not (j + 1 < n and sql[j + 1] == c)):
                j += 2 if sql[j] == c else 1
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j])
            i = j
        elif c == "$" and (m := re.match(r"\$([A-Za-z_]\w*)?\$", sql[i:])):  # dollar quoting: $$...$$, $t$...$t$
            j = sql.find(m.group(0), i + len(m.group(0)))
            j = n if j < 0 else j + len(m.group(0))
            out.append(sql[i:j])
            i = j
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and (m := IDENT.match(sql, i + 1)):
            name = m.group(0)
            if name in wanted:
                out.append("$" + name)
                used.append(name)
            else:
                out.append(":" + name)
                missing.append(name)
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out), sorted(set(used)), sorted(set(missing))


@dataclass
class Prepared:
    sql: str  # as DuckDB runs it: $name parameters, workspace names as main
    params: dict  # the bound values it uses
    tables: list[str] = field(default_factory=list)  # indexed tables read (any of their three indexes)
    relations: list[str] = field(default_factory=list)  # anything else read by name (dynadex.tables, ...)
    functions: list[str] = field(default_factory=list)  # table functions called (read_parquet, range, ...)


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _parse(sql: str) -> dict:
    """DuckDB's parse of one SELECT as JSON (an in-memory DuckDB of its own: nothing is bound or run)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        con = _parser.cursor()
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryFailed(f"query does not parse: {str(exc).splitlines()[0]}") from exc
        if len(statements) != 1:
            raise BadRequest(f"one statement per query, not {len(statements)}")
        kind = statements[0].type.name
        if kind != "SELECT":
            raise BadRequest(f"dynadex serve is read-only: {kind} statements are refused (only SELECT is served)")
        doc = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        con.close()
    if doc.get("error"):
        raise QueryFailed(f"query does not parse: {doc.get('error_message')}")
    return doc


def _walk(tree, found: dict) -> None:
    """What ``prepare`` needs of a parsed query, into ``found``: its base tables, table functions, column
    references and the names of its CTEs."""
    for node in sql_nodes(tree):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            found["tables"].append(node)
        elif kind == "TABLE_FUNCTION":
            found["functions"].append((node.get("function") or {}).get("function_name", "?"))
        elif node.get("class") == "COLUMN_REF":
            found["columns"].append(node)
        cte = node.get("cte_map")
        if isinstance(cte, dict):
            found["ctes"].update(str(e.get("key", "")).lower() for e in cte.get("map", []))


NO_LOCATION = 2**64 - 1


def _name_at(text: bytes, at: int, name: str) -> int | None:
    """The end of the identifier ``name`` (bare or double-quoted, any case) at byte ``at``, if it is there."""
    bare = re.compile(rb"[A-Za-z_][A-Za-z0-9_$]*")
    if text[at:at + 1] == b'"':
        end = text.find(b'"', at + 1)
        word = text[at + 1:end] if end > 0 else b""
        return end + 1 if word.decode(errors="replace") == name else None
    m = bare.match(text, at)
    return m.end() if m and m.group(0).decode().lower() == name.lower() else None


def prepare(sql: str, parameters: dict, workspace: str) -> Prepared:
    """``sql`` with Rockset's ``:name`` parameters bound from ``parameters`` (name -> value) and
    ``workspace.T`` read as table ``T``; what it reads, named."""
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("the query is empty")
    text, used, missing = bind_names(sql, parameters)
    try:
        doc = _parse(text)
    except QueryFailed as exc:
        if missing:
            raise BadRequest(f"parameter{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(':' + m for m in missing)} given no value") from exc
        raise
    found = {"tables": [], "functions": [], "columns": [], "ctes": set()}
    _walk(doc["statements"], found)
    ws = workspace.lower()
    tables, relations, edits = [], [], []
    data = text.encode()
    for node in found["tables"]:
        catalog, schema, name = node.get("catalog_name") or "", node.get("schema_name") or "", node["table_name"]
        if not catalog and not schema and name.lower() in found["ctes"]:
            continue  # a CTE of the query itself
        if catalog.lower() in ("", "lake") and schema.lower() in ("", ws, *INDEX_SCHEMAS):
            tables.append(name)
            loc = node.get("query_location", NO_LOCATION)
            if schema.lower() == ws and not catalog and loc != NO_LOCATION:
                end = _name_at(data, loc, schema)
                if end is not None:
                    edits.append((loc, end))
        else:
            relations.append(".".join(p for p in (catalog, schema, name) if p))
    for node in found["columns"]:
        names = node.get("column_names") or []
        loc = node.get("query_location", NO_LOCATION)
        if len(names) >= 3 and names[0].lower() == ws and loc != NO_LOCATION:
            end = _name_at(data, loc, names[0])
            if end is not None:
                edits.append((loc, end))
    for start, end in sorted(set(edits), reverse=True):
        data = data[:start] + b"main" + data[end:]
    return Prepared(data.decode(), {n: parameters[n] for n in used}, sorted(set(tables), key=str.lower),
                    sorted(set(relations)), sorted(set(found["functions"])))
