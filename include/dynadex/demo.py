"""`make demo`: run dynadex end to end on the embedded default.

What it runs today (and says so): the pieces that exist. It inspects and
verifies the bundled genuine AWS export. Later steps (emulator, store,
Airflow DAGs) are added here as they land, so `make demo` always runs the
main job as far as it exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dynadex.cli import main as cli

SAMPLES = Path(__file__).parent / "samples" / "aws"
SAMPLE_EXPORT = SAMPLES / "export-full-2024" / "dynamodb-export" / "AWSDynamoDB" / "01715685260608-c488b4e1"


def run() -> int:
    print("dynadex demo: inspecting and verifying the bundled genuine AWS export")
    print(f"  {SAMPLE_EXPORT / 'manifest-summary.json'}\n")
    rc = cli(["inspect-export", str(SAMPLE_EXPORT / "manifest-summary.json")])
    if rc:
        return rc
    print(
        "\nThis is all the demo runs today: the emulator, the DuckLake store and the Airflow DAGs"
        " are not built yet (see the README's status section)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(run())
