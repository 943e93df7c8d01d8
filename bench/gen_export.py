"""Generate a DynamoDB full export in the real S3 layout (local folder = bucket root), for benchmarks.

Items carry every attribute type; ~370 bytes of DynamoDB JSON each, like the
issue's 1 M items / 370 MB. ``sizes="lognormal"`` spreads items over files
log-normally (some files much larger than others), as real partitions do.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import random
import re
import time
from pathlib import Path

EXPORT_ID = "01700000000000-0badcafe"


def number(text: str) -> str:
    """As DynamoDB stores and exports numbers: no trailing fractional zeros ("12.50" -> "12.5", "3.00" -> "3")."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def item(i: int, rnd: random.Random) -> dict:
    return {
        "pk": {"S": f"customer#{i:09d}"}, "sk": {"N": str(i % 1000)},
        "city": {"S": rnd.choice(["Paris", "Rome", "Oslo", "Lima", "Kyoto", "Accra", "Quito", "Hanoi"])},
        "total": {"N": number(f"{rnd.randint(1, 99999)}.{rnd.randint(0, 99):02d}")}, "qty": {"N": str(rnd.randint(1, 50))},
        "paid": {"BOOL": rnd.random() < 0.8}, "note": {"NULL": True} if i % 7 == 0 else {"S": f"order number {i}"},
        "tags": {"SS": sorted({rnd.choice(["gift", "express", "fragile", "bulk", "eco"]) for _ in range(2)})},
        "sizes": {"NS": sorted({str(rnd.randint(36, 46)) for _ in range(2)})},
        "sig": {"B": base64.b64encode(rnd.randbytes(8)).decode()},
        "lines": {"L": [{"M": {"sku": {"S": f"sku-{rnd.randint(1, 5000)}"}, "price": {"N": f"{rnd.randint(1, 500)}.5"}}}]},
        "address": {"M": {"street": {"S": f"{i % 9999} Main Street"}, "zip": {"N": str(10000 + i % 89999)}}},
        "email": {"S": f"user{i}@example.com"}, "status": {"S": rnd.choice(["new", "paid", "shipped", "closed"])},
    }


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def ion_value(av: dict) -> str:
    """One attribute value as AWS writes it in an ION export: decimals with a point ("103.", "12.5"), blobs
    as {{base64}}, sets as lists annotated $dynamodb_SS/NS/BS, maps as structs."""
    ((tag, v),) = av.items()
    if tag == "S":
        return json.dumps(v, ensure_ascii=False)
    if tag == "N":
        return v if "." in v else v + "."
    if tag == "B":
        return "{{" + v + "}}"
    if tag == "BOOL":
        return "true" if v else "false"
    if tag == "NULL":
        return "null"
    if tag in ("SS", "NS", "BS"):
        inner = tag[0]
        return f"$dynamodb_{tag}::[" + ",".join(ion_value({inner: m}) for m in v) + "]"
    if tag == "L":
        return "[" + ",".join(ion_value(x) for x in v) + "]"
    return ion_struct(v)


def ion_struct(fields: dict) -> str:
    return "{" + ",".join((k if _IDENT.fullmatch(k) and k not in ("true", "false", "null", "nan") else
                           "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'") + ":" + ion_value(v)
                          for k, v in fields.items()) + "}"


def ion_line(item: dict) -> str:
    """One full-export line of an ION export, as AWS writes it."""
    return "$ion_1_0 {Item:" + ion_struct(item) + "}"


def write_export(root: Path, files, *, prefix: str = "bench", export_id: str = EXPORT_ID, table: str = "Bench",
                 export_time: str = "2023-11-14T22:13:20.000Z", output_format: str = "DYNAMODB_JSON") -> Path:
    """A full export of the given data lines (an iterable of one list of lines per file) in the real S3
    layout under ``root`` (a folder standing for the bucket root); returns the manifest-summary path."""
    folder = root / prefix / "AWSDynamoDB" / export_id
    (folder / "data").mkdir(parents=True, exist_ok=True)
    manifest, items = [], 0
    for f, lines in enumerate(files):
        body = gzip.compress("".join(line + "\n" for line in lines).encode(), compresslevel=6, mtime=0)
        key = f"{prefix}/AWSDynamoDB/{export_id}/data/{f:026d}.{'ion' if output_format == 'ION' else 'json'}.gz"
        (root / key).write_bytes(body)
        digest = hashlib.md5(body).digest()
        manifest.append({"itemCount": len(lines), "md5Checksum": base64.b64encode(digest).decode(),
                         "etag": hashlib.md5(digest).hexdigest() + "-1", "dataFileS3Key": key})
        items += len(lines)
    (folder / "manifest-files.json").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    summary = {"version": "2020-06-30", "exportArn": f"{arn}/export/{export_id}",
               "startTime": export_time, "endTime": export_time, "tableArn": arn, "tableId": table.lower(),
               "exportTime": export_time, "s3Bucket": prefix, "s3Prefix": prefix, "s3SseAlgorithm": "AES256",
               "s3SseKmsKeyId": None, "manifestFilesS3Key": f"{prefix}/AWSDynamoDB/{export_id}/manifest-files.json",
               "billedSizeBytes": 0, "itemCount": items, "outputFormat": output_format}
    (folder / "manifest-summary.json").write_text(json.dumps(summary))
    return folder / "manifest-summary.json"


def generate(root: Path, items: int, files: int, sizes: str = "even", seed: int = 1,
             export_time: str | None = None, output_format: str = "DYNAMODB_JSON") -> Path:
    """The same items (same seed) whatever the format: an ION export and a JSON one hold equal tables."""
    rnd = random.Random(seed)
    weights = [rnd.lognormvariate(0, 1) for _ in range(files)] if sizes == "lognormal" else [1.0] * files
    total_w = sum(weights)
    counts = [int(items * w / total_w) for w in weights]
    counts[0] += items - sum(counts)
    starts = [sum(counts[:f]) for f in range(files)]

    def file_lines(f: int) -> list[str]:  # one file at a time: memory stays one file's lines
        render = ion_line if output_format == "ION" else (lambda i: json.dumps({"Item": i}, separators=(",", ":")))
        return [render(item(n, rnd)) for n in range(starts[f], starts[f] + counts[f])]

    return write_export(root, (file_lines(f) for f in range(files)), output_format=output_format,
                        **({"export_time": export_time} if export_time else {}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--sizes", choices=["even", "lognormal"], default="even")
    ap.add_argument("--format", choices=["DYNAMODB_JSON", "ION"], default="DYNAMODB_JSON")
    a = ap.parse_args()
    t = time.time()
    print(generate(Path(a.root), a.items, a.files, a.sizes, output_format=a.format), f"{time.time() - t:.1f}s")
