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


def write_export(root: Path, files, *, prefix: str = "bench", export_id: str = EXPORT_ID, table: str = "Bench",
                 export_time: str = "2023-11-14T22:13:20.000Z") -> Path:
    """A full export of the given data lines (an iterable of one list of lines per file) in the real S3
    layout under ``root`` (a folder standing for the bucket root); returns the manifest-summary path."""
    folder = root / prefix / "AWSDynamoDB" / export_id
    (folder / "data").mkdir(parents=True, exist_ok=True)
    manifest, items = [], 0
    for f, lines in enumerate(files):
        body = gzip.compress("".join(line + "\n" for line in lines).encode(), compresslevel=6, mtime=0)
        key = f"{prefix}/AWSDynamoDB/{export_id}/data/{f:026d}.json.gz"
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
               "billedSizeBytes": 0, "itemCount": items, "outputFormat": "DYNAMODB_JSON"}
    (folder / "manifest-summary.json").write_text(json.dumps(summary))
    return folder / "manifest-summary.json"


def generate(root: Path, items: int, files: int, sizes: str = "even", seed: int = 1,
             export_time: str | None = None) -> Path:
    rnd = random.Random(seed)
    weights = [rnd.lognormvariate(0, 1) for _ in range(files)] if sizes == "lognormal" else [1.0] * files
    total_w = sum(weights)
    counts = [int(items * w / total_w) for w in weights]
    counts[0] += items - sum(counts)
    starts = [sum(counts[:f]) for f in range(files)]

    def file_lines(f: int) -> list[str]:  # one file at a time: memory stays one file's lines
        return [json.dumps({"Item": item(n, rnd)}, separators=(",", ":")) for n in range(starts[f], starts[f] + counts[f])]

    return write_export(root, (file_lines(f) for f in range(files)),
                        **({"export_time": export_time} if export_time else {}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--sizes", choices=["even", "lognormal"], default="even")
    a = ap.parse_args()
    t = time.time()
    print(generate(Path(a.root), a.items, a.files, a.sizes), f"{time.time() - t:.1f}s")
