"""The genuine AWS export bundled with dynadex (``GENUINE_*``), and ``genuine_export``: a writable copy of it
laid out as in its bucket, so tests may corrupt it (a pytest plugin)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from dynadex.demo import SAMPLES

GENUINE_ROOT = SAMPLES / "export-full-2024"
GENUINE_ID = "01715685260608-c488b4e1"
GENUINE_DIR_KEY = f"dynamodb-export/AWSDynamoDB/{GENUINE_ID}"


class ExportCopy:
    """A writable copy of an export laid out as in its bucket (root = bucket root)."""

    def __init__(self, root: Path, dir_key: str):
        self.root = root
        self.dir_key = dir_key

    @property
    def dir(self) -> Path:
        return self.root / self.dir_key

    @property
    def summary_path(self) -> Path:
        return self.dir / "manifest-summary.json"

    def manifest_lines(self) -> list[dict]:
        return [json.loads(l) for l in (self.dir / "manifest-files.json").read_text().splitlines() if l.strip()]

    def write_manifest_lines(self, lines: list[dict]) -> None:
        (self.dir / "manifest-files.json").write_text("".join(json.dumps(l) + "\n" for l in lines))

    def summary(self) -> dict:
        return json.loads(self.summary_path.read_text())

    def write_summary(self, doc: dict) -> None:
        self.summary_path.write_text(json.dumps(doc))

    def data_path(self, index: int = 0) -> Path:
        return self.root / self.manifest_lines()[index]["dataFileS3Key"]

    def replace_data(self, index: int, raw: bytes, *, fix_md5: bool = True, fix_count: bool = True) -> None:
        """Write new gzip bytes for data file ``index``, keeping the manifest consistent if asked."""
        path = self.data_path(index)
        path.write_bytes(raw)
        lines = self.manifest_lines()
        if fix_md5:
            lines[index]["md5Checksum"] = base64.b64encode(hashlib.md5(raw).digest()).decode()
        if fix_count:
            try:
                text = gzip.decompress(raw).decode()
                count = sum(1 for l in text.split("\n") if l.strip())
            except Exception:
                count = lines[index]["itemCount"]
            delta = count - lines[index]["itemCount"]
            lines[index]["itemCount"] = count
            summary = self.summary()
            summary["itemCount"] += delta
            self.write_summary(summary)
        self.write_manifest_lines(lines)


@pytest.fixture
def genuine_export(tmp_path: Path) -> ExportCopy:
    root = tmp_path / "bucket"
    shutil.copytree(GENUINE_ROOT, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return ExportCopy(root, GENUINE_DIR_KEY)

