"""Store upkeep: merge small files, flush inlined rows, expire old snapshots, delete their files.

Invariant: maintenance never changes what a query at the current snapshot
returns; it only rewrites storage. Snapshots younger than ``keep`` stay
readable (time travel and readers still on them).
"""

from __future__ import annotations

import datetime as dt

from dynadex.store.lake import ALIAS, Lake


def compact(lake: Lake) -> dict:
    lake.con.execute(f"CALL ducklake_flush_inlined_data('{ALIAS}')")
    lake.con.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}')")
    return {"compacted": True}


def expire(lake: Lake, keep: dt.timedelta = dt.timedelta(hours=1)) -> dict:
    cutoff = dt.datetime.now(dt.timezone.utc) - keep
    expired = lake.con.execute(
        f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => ?::TIMESTAMPTZ)", [cutoff]
    ).fetchall()
    cleaned = lake.con.execute(f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)").fetchall()
    return {"expired_snapshots": len(expired), "deleted_files": len(cleaned)}
