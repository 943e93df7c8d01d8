"""The item structure a build's earlier chunks found, kept beside its manifests to seed its next chunks.

A DuckDB chunk build parses its lines with the export's attribute structure
(``fast_structure``). Sampling it costs about a tenth of a chunk of 60 000
items (21 000 lines through ``json_group_structure``), paid by every chunk.
The chunks of one export share their structure, so each chunk adds what it
found to this seed (``_structure.json`` in the build's staging folder) and the
next chunks, in this process or any other worker's, start from the seed and
sample only ``fast_structure.SEEDED_SAMPLE_ROWS`` lines of their own.

Invariant: a seed never decides what a chunk holds. A chunk parses with the
union of the seed and its own sample, refined from its own lines as before:
fields of the seed that a line lacks are NULL and write nothing (the same
files as without the seed, ``tests/store/bulk/test_structure_seed.py``), and
whatever the union misses still makes its lines regenerate shorter, so the
length guard refines the structure or sends them to Python. So a seed that is
stale, partial, lost to a concurrent writer or unreadable costs at most a
parse round, never a wrong file: reading one that fails counts as no seed,
and failing to write one (but a full disk) only logs.
"""

from __future__ import annotations

import json
import logging

from pyarrow import fs as pafs

from dynadex.store.bulk.fast_structure import clean, merge
from dynadex.store.bulk.staging import atomic_write, staging_dir
from dynadex.store.catalog.disk_full import is_no_space
from dynadex.store.catalog.location import StoreLocation
from dynadex.store.errors import OutsideFastPath

log = logging.getLogger("dynadex.build")

NAME = "_structure.json"


def _path(location: StoreLocation, table: str, build_id: str) -> tuple[pafs.FileSystem, str]:
    fs, d = staging_dir(location, table, build_id)
    return fs, f"{d}/{NAME}"


def read_seed(location: StoreLocation, table: str, build_id: str) -> dict | None:
    """The build's seed structure (cleaned), or None when there is none or it cannot be read."""
    try:
        fs, path = _path(location, table, build_id)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with fs.open_input_stream(path) as f:
            return clean(json.loads(f.read()))
    except Exception as exc:  # noqa: BLE001 - a seed only saves time: any doubt is no seed
        log.info("build %s of %s: structure seed not read (%s)", build_id, table, str(exc).splitlines()[0][:200])
        return None


def add_to_seed(location: StoreLocation, table: str, build_id: str, structure: dict, seen: dict | None) -> None:
    """Fold ``structure`` (what a chunk parsed with) into the build's seed; ``seen``: the seed the chunk read
    (nothing is written when the chunk found nothing more). A concurrent writer may win: the seed then lacks
    what this chunk found, and a later chunk finds it again."""
    if structure == seen:
        return
    try:
        current = read_seed(location, table, build_id)
        if current is not None:
            try:
                structure = clean(merge(current, structure))
            except OutsideFastPath:
                pass  # the two disagree on a JSON type: keep this chunk's
        if structure == current:
            return
        fs, path = _path(location, table, build_id)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        atomic_write(fs, path, json.dumps(structure, ensure_ascii=False).encode())
    except Exception as exc:
        if is_no_space(exc):
            raise
        log.info("build %s of %s: structure seed not written (%s)", build_id, table,
                 str(exc).splitlines()[0][:200])
