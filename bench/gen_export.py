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


def generate(root: Path, items: int, files: int, sizes: str = "even", seed: int = 1) -> Path:
    rnd = random.Random(seed)
    folder = root / "bench" / "AWSDynamoDB" / EXPORT_ID
    (folder / "data").mkdir(parents=True, exist_ok=True)
    weights = [rnd.lognormvariate(0, 1) for _ in range(files)] if sizes == "lognormal" else [1.0] * files
    total_w = sum(weights)
    counts = [int(items * w / total_w) for w in weights]
    counts[0] += items - sum(counts)
    manifest, n = [], 0
    for f, count in enumerate(counts):
        lines = []
        for _ in range(count):
            lines.append(json.dumps({"Item": item(n, rnd)}, separators=(",", ":")))
            n += 1
        body = gzip.compress(("\n".join(lines) + ("\n" if lines else "")).encode(), compresslevel=6, mtime=0)
        key = f"bench/AWSDynamoDB/{EXPORT_ID}/data/{f:026d}.json.gz"
        (root / key).write_bytes(body)
        digest = hashlib.md5(body).digest()
        manifest.append({"itemCount": count, "md5Checksum": base64.b64encode(digest).decode(),
                         "etag": hashlib.md5(digest).hexdigest() + "-1", "dataFileS3Key": key})
    (folder / "manifest-files.json").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    summary = {"version": "2020-06-30", "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/Bench/export/{EXPORT_ID}",
               "startTime": "2023-11-14T22:13:20.000Z", "endTime": "2023-11-14T22:20:00.000Z",
               "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/Bench", "tableId": "bench",
               "exportTime": "2023-11-14T22:13:20.000Z", "s3Bucket": "bench", "s3Prefix": "bench", "s3SseAlgorithm": "AES256",
               "s3SseKmsKeyId": None, "manifestFilesS3Key": f"bench/AWSDynamoDB/{EXPORT_ID}/manifest-files.json",
               "billedSizeBytes": 0, "itemCount": items, "outputFormat": "DYNAMODB_JSON"}
    (folder / "manifest-summary.json").write_text(json.dumps(summary))
    return folder / "manifest-summary.json"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--sizes", choices=["even", "lognormal"], default="even")
    a = ap.parse_args()
    t = time.time()
    print(generate(Path(a.root), a.items, a.files, a.sizes), f"{time.time() - t:.1f}s")
