"""`make bench`: every benchmark, at the sizes docs/benchmarks.md reports (override with the scripts' flags)."""

import subprocess
import sys
import tempfile
from pathlib import Path

here = Path(__file__).parent
work = tempfile.mkdtemp(prefix="dynadex-bench-")
for cmd in (
    [sys.executable, str(here / "bench_planner.py")],
    [sys.executable, str(here / "bench_build.py"), "--items", "1000000", "--workdir", work],
    [sys.executable, str(here / "bench_store.py"), "--store", f"{work}/store2"],
    [sys.executable, str(here / "bench_open.py")],
    [sys.executable, str(here / "bench_ingest.py"), "--items", "1000000", "--chunks", "16", "--publish-scaling",
     "--workdir", f"{work}/ingest"],
    [sys.executable, str(here / "bench_stream.py")],
    [sys.executable, str(here / "soak.py"), "--seed", "20261202", "--seconds", "180"],
    [sys.executable, str(here / "bench_two_writers.py"), "--seconds", "150"],
):
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
