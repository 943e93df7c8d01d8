"""Chunk planner balance on log-normal file sizes: makespan vs ideal, against one task per file.

Makespan = the largest chunk's bytes (chunks run in parallel, so the largest sets the pace);
ideal = max(total / chunks, largest file): no plan can beat it (a file is never split). One-task-per-file with the same number of workers is scheduled greedily
in manifest order (what a loader that maps files to workers does).
"""

from __future__ import annotations

import heapq
import random

from dynadex.export.manifest import DataFile
from dynadex.store.bulk.plan import plan_chunks


def one_task_per_file(sizes: list[int], workers: int) -> int:
    heap = [0] * workers
    for s in sizes:  # manifest order, next free worker
        heapq.heappush(heap, heapq.heappop(heap) + s)
    return max(heap)


def main() -> None:
    rnd = random.Random(42)
    print(f"{'files':>6} {'chunks':>6} {'sigma':>5} {'LPT makespan/ideal':>20} {'1 task/file makespan/ideal':>28}")
    for files, chunks, sigma in [(100, 8, 1.0), (1000, 32, 1.0), (1000, 64, 1.5), (5000, 256, 1.0), (20000, 1024, 1.2)]:
        sizes = [int(rnd.lognormvariate(17, sigma)) for _ in range(files)]
        total = sum(sizes)
        specs = plan_chunks([DataFile(f"f{i}", 1, "x", size=s) for i, s in enumerate(sizes)], total // chunks + 1)
        ideal = max(total / len(specs), max(sizes))
        lpt = max(s.bytes for s in specs) / ideal
        naive = one_task_per_file(sizes, len(specs)) / ideal
        print(f"{files:>6} {len(specs):>6} {sigma:>5} {lpt:>20.3f} {naive:>28.3f}")


if __name__ == "__main__":
    main()
