"""Body of the dynadex_maintenance task: prune, compact and expire one store.

Stream batches only append inverted entries (include/dynadex/store/writes.py)
and every commit is a DuckLake snapshot, so a store that is never maintained
keeps growing. Maintenance never changes what a query at the current snapshot
returns. It commits in its own transactions next to a running stream sync; a
conflict with a sync batch fails the task, and its retry runs again.
"""

from __future__ import annotations

import datetime as dt
import logging

from dynadex.store import Store

log = logging.getLogger("dynadex.maintenance")


def maintain(params: dict, conf: dict) -> dict:
    store = conf.get("store") or params.get("store")
    keep = dt.timedelta(hours=float(conf.get("keep_hours") or params.get("keep_hours") or 1))
    with Store(store, read_only=False) as st:
        result = {**st.compact(), **st.expire(keep)}
    log.info("maintenance of %s: %s", store or "the default store", result)
    return result
