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
from dynadex_airflow.failures import fail_fast
from dynadex_airflow.hooks import store_location

log = logging.getLogger("dynadex.maintenance")


def _given(conf: dict, params: dict, name: str, default):
    """The run's value of ``name``: conf first, then the param; 0 and "" count as given (only None is not)."""
    for source in (conf, params):
        if source.get(name) is not None:
            return source[name]
    return default


@fail_fast
def maintain(params: dict, conf: dict) -> dict:
    store = _given(conf, params, "store", None) or None
    keep = dt.timedelta(hours=float(_given(conf, params, "keep_hours", 1)))
    location = store_location(store, _given(conf, params, "aws_conn_id", None) or "aws_default")
    with Store(location, read_only=False) as st:
        result = {**st.compact(), **st.expire(keep)}
    log.info("maintenance of %s (keeping %s of snapshots): %s", store or "the default store", keep, result)
    return result


def prune_runs(params: dict, conf: dict) -> dict:
    """Prune the stream sync's Airflow runs older than ``keep_run_days`` (run_history)."""
    from dynadex_airflow import run_history

    keep = _given(conf, params, "keep_run_days", None)
    return run_history.prune(None if keep in (None, "") else float(keep)).to_dict()
