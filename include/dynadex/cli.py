"""The ``dynadex`` command.

Invariant: exit 0 on success, 1 when a check fails or input is bad (with one
message on stderr naming what and where), 2 on a usage error (unknown
command, bad arguments). Nothing here holds logic of its own: each command
calls the library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from dynadex import settings
from dynadex.errors import DynadexError


def _cmd_inspect_export(args: argparse.Namespace) -> int:
    from dynadex.export import read_export, verify_file

    export = read_export(args.source)
    s = export.summary
    checked = []
    for f in export.files:
        stats = verify_file(export, f, decode=not args.no_decode)
        checked.append((f, stats))
    export.check_total()  # every file holds what its entry says: now the entries must add up
    if args.json:
        doc = export.to_dict()
        doc["verified"] = True
        doc["uncompressedBytes"] = sum(st.json_bytes for _, st in checked)
        doc["bytes"] = sum(st.gzip_bytes for _, st in checked)
        print(json.dumps(doc, indent=2))
        return 0
    gz = sum(st.gzip_bytes for _, st in checked)
    raw = sum(st.json_bytes for _, st in checked)
    print(f"export      {s.export_arn}")
    print(f"table       {s.table_arn or '-'}")
    print(f"type        {s.export_type}")
    print(f"format      {s.output_format}")
    if s.export_type == "INCREMENTAL_EXPORT":
        print(f"from        {s.from_time}")
        print(f"to          {s.to_time}")
        print(f"view        {s.output_view or '-'}")
    else:
        print(f"time        {s.export_time}")
    print(f"files       {len(export.files)} ({sum(1 for f in export.files if f.item_count == 0)} empty)")
    print(f"items       {s.item_count}")
    print(f"bytes       {gz} gzip, {raw} uncompressed, {s.billed_size_bytes} billed")
    what = "MD5 and item count" if args.no_decode else "MD5, item count and every item"
    print(f"verified    {what} of {len(export.files)} data files: OK")
    return 0


def _open(args, read_only: bool = True):
    from dynadex.store import Store

    return Store(args.store, data_path=getattr(args, "data_path", None), read_only=read_only,
                 sandbox=bool(getattr(args, "sandbox", False)))


def _cmd_query(args: argparse.Namespace) -> int:
    from dynadex.store.reads import jsonable

    with _open(args) as st:
        columns, rows = st.query(args.sql)
    if args.json:
        for row in rows:
            print(json.dumps({c: jsonable(v) for c, v in zip(columns, row)}, ensure_ascii=False))
        return 0
    _print_table(columns, rows)
    return 0


def _print_table(columns: list[str], rows: list[tuple]) -> None:
    from dynadex.store.reads import jsonable

    def cell(v) -> str:
        if v is None:
            return "NULL"
        v = jsonable(v)
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    text = [[cell(v) for v in row] for row in rows]
    widths = [min(60, max([len(c)] + [len(r[i]) for r in text])) for i, c in enumerate(columns)]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in text:
        print(" | ".join((v if len(v) <= w else v[: w - 1] + "…").ljust(w) for v, w in zip(r, widths)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cmd_get(args: argparse.Namespace) -> int:
    with _open(args) as st:
        item = st.get(args.table, args.key)
    if item is None:
        print(f"dynadex: no item with key {args.key} in {args.table}", file=sys.stderr)
        return 1
    print(item)
    return 0


def _cmd_find(args: argparse.Namespace) -> int:
    with _open(args) as st:
        items = st.find(args.table, args.expression, args.limit)
    for item in items:
        print(item if args.json else _brief(item))
    if not args.json:
        print(f"({len(items)} item{'s' if len(items) != 1 else ''})", file=sys.stderr)
    return 0


def _brief(item: str) -> str:
    return item if len(item) <= 200 else item[:199] + "…"


def _cmd_dump(args: argparse.Namespace) -> int:
    with _open(args) as st:
        out = sys.stdout
        for item in st.dump(args.table):
            out.write(item)
            out.write("\n")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    with _open(args) as st:
        doc = st.status(args.table)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"store      {doc['store']} (snapshot {doc['snapshot']})")
    if not doc["tables"]:
        print("no tables indexed yet")
    for t in doc["tables"]:
        print(f"\ntable      {t['table']}  key {t['key']}")
        print(f"items      {t['items']}  ({t['files']} data files, {t['bytes']} bytes)")
        print(f"export     {t['export_arn'] or '-'} at {t['export_time'] or '-'}")
        print(f"stream     {t['stream_arn'] or '-'}")
        if t["lag_seconds"] is None:
            print("lag        - (no stream sync yet)")
        else:
            print(f"lag        {t['lag_seconds']:.3f} s behind the table (as of {t['checked_at']}, "
                  f"{t['checked_seconds_ago']:.0f} s ago; 0 = every shard was read to its tip)")
        print(f"changes    applied through {t['applied_through'] or '-'}, last change applied {t['last_change_at'] or '-'}")
        for cp in t["checkpoints"]:
            print(f"  shard {cp['shard_id']}  at {cp['sequence_number'] or 'start'}{'  (ended)' if cp['ended'] else ''}")
        for ev in t["recent_events"][:5]:
            print(f"  event {ev['at']}  {ev['kind']}  {json.dumps(ev['detail'])}")
    return 0


def _logging(default: str) -> None:
    """Progress logs on stderr at DYNADEX_LOG_LEVEL (botocore kept quiet: it could log request bodies)."""
    import logging

    logging.basicConfig(level=(settings.LOG_LEVEL.read() or default).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)


def _cmd_ingest_export(args: argparse.Namespace) -> int:
    from dynadex.ingest import ingest_export

    _logging("WARNING")

    result = ingest_export(args.source, args.table, args.key, store=args.store, data_path=args.data_path,
                           workers=args.workers, chunk_target_mb=args.chunk_target_mb)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    pub = result["publish"]
    state = "published" if pub["published"] else f"not published ({pub.get('reason')})"
    ph = result["phases"]
    print(f"{result['table']}: {result['items']} items from {result['chunks']} chunks ({result['workers']} workers), "
          f"{state}; plan {ph['plan']:.1f}s, build {ph['build']:.1f}s, checks {ph['prepare'] + ph['checks']:.1f}s, "
          f"publish {ph['publish']:.1f}s")
    return 0


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    from dynadex import bootstrap

    _logging("WARNING")
    ddb, _, _ = _aws_clients()

    def progress(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    result = bootstrap.run(ddb, args.table, bucket=args.bucket, prefix=args.prefix, export_format=args.format,
                           store=args.store, data_path=args.data_path, chunk_target_mb=args.chunk_target_mb,
                           workers=args.workers, poll_seconds=args.poll_seconds, bucket_owner=args.bucket_owner,
                           kms_key_id=args.kms_key_id, progress=progress)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    pub, ph = result["publish"], result["phases"]
    state = "published" if pub["published"] else f"not published ({pub.get('reason')})"
    print(f"{result['table']}: {result['items']} items from export {result['export_arn']}, {state} "
          f"(build {ph['build']:.1f}s, publish {ph['publish']:.1f}s); stream checkpoint stored at T0 "
          f"{result['t0']:.3f}. Follow it with: dynadex sync {result['table']}")
    return 0


def _cmd_maintain(args: argparse.Namespace) -> int:
    import datetime as dt

    from dynadex.store.catalog import contention

    with _open(args, read_only=False) as st:
        compacted = st.compact()
        expired = st.expire(dt.timedelta(seconds=args.keep_seconds))
    print(json.dumps({**compacted, **expired, "store_writes": contention.snapshot().as_dict()}))
    return 0


def _cmd_local_aws(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from dynadex.local_aws.config import Knobs
    from dynadex.local_aws.server import serve

    knobs = Knobs.from_env(**{f.name: getattr(args, f.name) for f in fields(Knobs)})
    serve(args.host, args.port, knobs)
    return 0


def _aws_clients():
    from dynadex.aws import client

    return client("dynamodb"), client("dynamodbstreams"), client("s3")


def _cmd_sync(args: argparse.Namespace) -> int:
    from dynadex.store import Store
    from dynadex.store.catalog import contention
    from dynadex.stream import SyncSettings, sync_table
    from dynadex.stream.shard_groups import WHOLE, ShardGroup

    _logging("INFO")
    group = ShardGroup.parse(args.group) if args.group else WHOLE
    ddb, streams, s3 = _aws_clients()
    sync_settings = SyncSettings()
    with Store(args.store, data_path=args.data_path, read_only=False, threads=sync_settings.threads or None) as st:
        stats = sync_table(st, args.table, ddb, streams, s3, seconds=0 if args.once else args.seconds,
                           settings=sync_settings, group=group)
    print(json.dumps({**stats, "store_writes": contention.snapshot().as_dict()}, default=str))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from dynadex.stream.verify import verify

    ddb, _, _ = _aws_clients()
    with _open(args) as st:
        report = verify(st, args.table, ddb, max_rcu=args.max_rcu)
    for text in report.missing:
        print(f"missing from the index: {text}")
    for text in report.extra:
        print(f"extra in the index:     {text}")
    for table_text, index_text in report.different:
        print(f"different:\n  table: {table_text}\n  index: {index_text}")
    verdict = "OK" if report.ok else "DIFFERENT"
    shown = len(report.missing) + len(report.extra) + len(report.different)
    total = report.missing_count + report.extra_count + report.different_count
    print(f"{args.table}: {report.table_items} items in the table, {report.index_items} in the index: {verdict} "
          f"({report.missing_count} missing, {report.extra_count} extra, {report.different_count} different"
          + (f"; the first {shown} shown" if shown < total else "") + ")")
    return 0 if report.ok else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from dynadex.serve.server import serve

    _logging("WARNING")
    serve(args.store, args.host, args.port, data_path=args.data_path, state=args.state)
    return 0


def _key_ring(args: argparse.Namespace):
    from dynadex.serve.keys import KeyRing
    from dynadex.serve.state import StateFile, state_path
    from dynadex.store.catalog.location import resolve

    return KeyRing(StateFile(state_path(resolve(args.store, args.data_path), args.state)))


def _cmd_keys(args: argparse.Namespace) -> int:
    ring = _key_ring(args)
    try:
        if args.action == "create":
            tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables is not None else None
            key = ring.create(args.name, tables, args.admin)
            print(key)
            print(f"key {args.name!r} created ({'admin, ' if args.admin else ''}"
                  f"{'tables ' + ', '.join(tables) if tables else 'every table'}); it is shown this once",
                  file=sys.stderr)
        elif args.action == "list":
            keys = ring.list()
            if args.json:
                print(json.dumps(keys, indent=2))
            else:
                for k in keys:
                    print(f"{k['name']:<24} {k['hint']:<10} {'admin' if k['admin'] else 'read ':<6} "
                          f"{','.join(k['tables']) if k['tables'] else '*':<24} created {k['created_at']}"
                          + (f"  REVOKED {k['revoked_at']}" if k["revoked_at"] else ""))
        else:
            ring.revoke(args.name)
            print(f"key {args.name!r} revoked", file=sys.stderr)
    finally:
        ring.state.close()
    return 0


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="store folder or Postgres URI (default: $DYNADEX_STORE or ./.dynadex)")
    p.add_argument("--data-path", help="data files location for a Postgres catalog (local or s3://)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynadex",
        description="A fast, queryable index of a DynamoDB table, fed by Export to S3 and DynamoDB Streams.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "inspect-export",
        help="read an export's manifests and verify every data file",
        description="SOURCE is the location of manifest-summary.json: an s3:// URL or a local path "
        "(data file keys resolve against the bucket root the summary's manifestFilesS3Key implies).",
    )
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    p.add_argument("--no-decode", action="store_true", help="check MD5 and counts only, do not decode items")
    p.set_defaults(func=_cmd_inspect_export)

    p = sub.add_parser("ingest-export", help="index a full export into the store (plan, build chunks, publish)")
    p.add_argument("source", metavar="SOURCE", help="manifest-summary.json location, as for inspect-export")
    p.add_argument("--table", required=True, help="name of the indexed table in the store")
    p.add_argument("--key", required=True, help="key attributes: NAME[:S|N|B][,NAME[:S|N|B]] (type defaults to S)")
    p.add_argument("--workers", type=int, default=None, help="builder processes (default: one per core)")
    p.add_argument("--chunk-target-mb", type=float, default=None,
                   help="target chunk size in MB of gzip (default: two chunks per worker, at most 256 MB each)")
    p.add_argument("--json", action="store_true")
    _store_args(p)
    p.set_defaults(func=_cmd_ingest_export)

    p = sub.add_parser("bootstrap", help="index a live table: validate, pin the stream, export to S3, wait, ingest "
                                         "(what the dynamodb_ingest DAG does, in one process)")
    p.add_argument("table", metavar="TABLE", help="DynamoDB table (its key comes from DescribeTable)")
    p.add_argument("--bucket", required=True, help="S3 bucket DynamoDB writes the export to")
    p.add_argument("--prefix", default="dynadex", help="key prefix of the export in the bucket (default: dynadex)")
    p.add_argument("--format", default="DYNAMODB_JSON", choices=["DYNAMODB_JSON", "ION"], help="export format")
    p.add_argument("--bucket-owner", default=None, help="12-digit account id owning the bucket (cross-account)")
    p.add_argument("--kms-key-id", default=None, help="KMS key DynamoDB encrypts the export with (S3SseAlgorithm KMS)")
    p.add_argument("--workers", type=int, default=None, help="builder processes (default: one per core)")
    p.add_argument("--chunk-target-mb", type=float, default=None, help="as for ingest-export")
    p.add_argument("--poll-seconds", type=float, default=10, help="how often to ask DescribeExport (default: 10)")
    p.add_argument("--json", action="store_true")
    _store_args(p)
    p.set_defaults(func=_cmd_bootstrap)

    p = sub.add_parser("query", help="run a read-only SQL query (tables: T, row_index.T, inverted_index.T)")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--sandbox", action="store_true", default=settings.QUERY_SANDBOX.read(),
                   help="read this store and nothing else: no local file, URL or setting (for queries from "
                        "others; also DYNADEX_QUERY_SANDBOX=1)")
    _store_args(p)
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("get", help="print one item by key, exactly, as DynamoDB JSON")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("key", metavar="KEY", help='key in DynamoDB JSON, e.g. \'{"pk":{"S":"a"}}\'')
    _store_args(p)
    p.set_defaults(func=_cmd_get)

    p = sub.add_parser("find", help="items whose PATH holds VALUE, through the inverted index")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("expression", metavar="PATH=VALUE", help="VALUE is text (matched as S, N, BOOL, null or base64 B) "
                   'or a DynamoDB JSON value like {"N":"1.5"}. PATH joins names with "."; inside a name, '
                   r'\, . and [ are written \\, \. and \[, control characters \u00XX, and = as \= '
                   r"(the attribute named a.b is a\.b; map a's field b is a.b)")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true", help="print whole items as JSON lines")
    _store_args(p)
    p.set_defaults(func=_cmd_find)

    p = sub.add_parser("dump", help="every live item, one canonical DynamoDB JSON line each, ordered by key")
    p.add_argument("table", metavar="TABLE")
    _store_args(p)
    p.set_defaults(func=_cmd_dump)

    p = sub.add_parser("status", help="items, snapshot, export, stream checkpoints and lag")
    p.add_argument("table", metavar="TABLE", nargs="?")
    p.add_argument("--json", action="store_true")
    _store_args(p)
    p.set_defaults(func=_cmd_status)

    from dataclasses import fields as _fields

    from dynadex.local_aws.config import Knobs

    p = sub.add_parser("local-aws", help="run the bundled AWS emulator (DynamoDB, Streams, S3) in the foreground")
    p.add_argument("--port", type=int, default=4566, help="port (0 picks a free one; default 4566)")
    p.add_argument("--host", default="127.0.0.1")
    for f in _fields(Knobs):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=None,
                       help=f"default {f.default} (env {Knobs.setting(f).env})")
    p.set_defaults(func=_cmd_local_aws)

    p = sub.add_parser("sync", help="follow the table's stream into the store (gaps recovered by incremental export)")
    p.add_argument("table", metavar="TABLE")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--once", action="store_true", help="sync until caught up, then stop (the default)")
    g.add_argument("--for", dest="seconds", type=float, default=0, metavar="SECONDS", help="sync for this long")
    p.add_argument("--group", metavar="INDEX/COUNT",
                   help="follow only shard group INDEX of COUNT (e.g. 0/2 and 1/2 in two processes): each shard "
                        "is read by one group, a child after its parent whichever group read it (decision 0034)")
    _store_args(p)
    p.set_defaults(func=_cmd_sync)

    p = sub.add_parser("verify", help="compare the live table with the index, item by item; exit 1 on any difference")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--max-rcu", type=float, help="read capacity units per second the scan may use")
    _store_args(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("serve", help="answer queries over HTTP: Rockset's query API, Query Lambdas, get and find "
                                     "(docs/serving.md)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    p.add_argument("--state", help="the SQLite file of API keys and Query Lambdas (default: serve.sqlite in the "
                                   "store folder; also DYNADEX_SERVE_STATE)")
    _store_args(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("keys", help="API keys of dynadex serve: create (shown once), list, revoke")
    keys = p.add_subparsers(dest="action", metavar="ACTION")
    keys.required = True
    for action, text in (("create", "make a key and print it, once"), ("list", "the keys, without the keys"),
                         ("revoke", "refuse a key from now on")):
        k = keys.add_parser(action, help=text)
        if action != "list":
            k.add_argument("name", metavar="NAME")
        if action == "create":
            k.add_argument("--tables", metavar="T,...", help="the tables it may read (default: every table)")
            k.add_argument("--admin", action="store_true", help="it may also create, update and tag Query Lambdas")
        if action == "list":
            k.add_argument("--json", action="store_true")
        k.add_argument("--state", help="the server's state file (as for serve)")
        _store_args(k)
        k.set_defaults(func=_cmd_keys)

    p = sub.add_parser("maintain", help="prune superseded inverted entries, compact small files, expire old snapshots")
    p.add_argument("--keep-seconds", type=float, default=3600, help="keep snapshots younger than this (default 3600)")
    _store_args(p)
    p.set_defaults(func=_cmd_maintain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # reads settings (DYNADEX_QUERY_SANDBOX): a bad value is one line, as below
    except DynadexError as exc:
        print(f"dynadex: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DynadexError as exc:
        from dynadex.store.catalog.location import without_secrets

        print(f"dynadex: error: {without_secrets(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        from dynadex.reach import as_unreachable, connection_failure
        from dynadex.store.catalog.location import without_secrets

        shown = without_secrets(exc)  # a Postgres catalog's error quotes its connection string
        if not connection_failure(exc):
            if shown is exc:
                raise
        else:
            print(f"dynadex: error: {as_unreachable(shown, args.command)}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    # the scrubbed copy, raised outside the handler: Python would otherwise chain the original as its context
    raise shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
