"""Where the repository's folders are, for tests at any depth of tests/."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "include"
BENCH = REPO / "bench"
