"""Chunk planning: bin-pack an export's data files into balanced chunks.

Invariants:

* Every data file lands in exactly one chunk; chunks are listed in a stable
  order (``c00000``, ``c00001``…) so the same export and target always give
  the same plan (and the same chunk ids, which makes re-runs idempotent).
* The number of chunks is ``ceil(total bytes / target)``, at most the number
  of files and at most ``max_chunks`` (Airflow's ``max_map_length``, 1024).
* Files go largest first to the least-loaded chunk (LPT), so no chunk is
  far above the mean when the file sizes allow it.
* A chunk spec holds keys, sizes, counts and checksums only, never data.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass

from dynadex.export.manifest import DataFile

MAX_CHUNKS = 1024


@dataclass
class ChunkSpec:
    chunk_id: str
    index: int
    count: int
    files: list[DataFile]  # key, item count, md5 and size of each: never data
    bytes: int
    items: int

    def to_dict(self) -> dict:
        """For XCom: plain JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkSpec":
        return cls(**{**d, "files": [DataFile(**f) for f in d["files"]]})

    def label(self) -> str:
        return f"chunk {self.index + 1}/{self.count} · {len(self.files)} files · {_human(self.bytes)}"


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def plan_chunks(files: list[DataFile], target_bytes: int, max_chunks: int = MAX_CHUNKS) -> list[ChunkSpec]:
    if target_bytes <= 0:
        raise ValueError("chunk target must be positive")
    if not files:
        return []
    sizes = [f.size if f.size is not None else 0 for f in files]
    total = sum(sizes)
    count = max(1, min(len(files), max_chunks, math.ceil(total / target_bytes) if total else 1))
    heap = [(0, i) for i in range(count)]
    bins: list[list[tuple[DataFile, int]]] = [[] for _ in range(count)]
    order = sorted(range(len(files)), key=lambda i: (-sizes[i], files[i].key))
    for i in order:
        load, b = heapq.heappop(heap)
        bins[b].append((files[i], sizes[i]))
        heapq.heappush(heap, (load + sizes[i], b))
    specs = []
    for b, members in enumerate(bins):
        members.sort(key=lambda m: m[0].key)
        specs.append(
            ChunkSpec(
                chunk_id=f"c{b:05d}",
                index=b,
                count=count,
                files=[DataFile(f.key, f.item_count, f.md5, size=s) for f, s in members],
                bytes=sum(s for _, s in members),
                items=sum(f.item_count for f, _ in members),
            )
        )
    return specs


def makespan_ratio(specs: list[ChunkSpec]) -> float:
    """Largest chunk over the mean chunk: 1.0 is perfectly balanced."""
    if not specs:
        return 1.0
    mean = sum(s.bytes for s in specs) / len(specs)
    return max(s.bytes for s in specs) / mean if mean else 1.0
