"""The ``dynadex`` command.

Invariant: exit 0 on success, 1 when a check fails or input is bad (with one
message on stderr naming what and where), 2 on a usage error (unknown
command, bad arguments). Nothing here holds logic of its own: each command
calls the library.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dynadex.errors import DynadexError


def _cmd_inspect_export(args: argparse.Namespace) -> int:
    from dynadex.export import read_export, verify_file

    export = read_export(args.source)
    s = export.summary
    checked = []
    for f in export.files:
        stats = verify_file(export, f, decode=not args.no_decode)
        checked.append((f, stats))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DynadexError as exc:
        print(f"dynadex: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
