"""A bench script (bench/) run as a test: short, its one-line JSON result parsed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, tmp_path: Path, timeout: float = 900) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", "--quiet", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"returncode": done.returncode}
