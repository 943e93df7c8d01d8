"""Which stores the continuous stream sync follows: every store an ingest has published into.

Invariant: ``start_stream_sync`` remembers its run's store here before it
triggers the sync, and a ``dynamodb_stream_sync`` run with no store of its
own syncs every remembered store (plus the default one), so a second store
is never silently left behind. The list lives in the Airflow Variable
``dynadex_stores`` (a JSON list; ``""`` stands for the default store,
``$DYNADEX_STORE`` or ./.dynadex), so every worker sees the same list. Edit
or delete the Variable to stop following a store.

Store specs are kept as given: give Postgres passwords through the
environment or a ~/.pgpass, not inside the URI, if the Variable must not
hold them.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dynadex.stores")

VARIABLE = "dynadex_stores"
DEFAULT = ""


def _key(store: str | None) -> str:
    return store if store and store != "None" else DEFAULT


def remembered() -> list[str]:
    from airflow.sdk import Variable

    try:
        value = Variable.get(VARIABLE, default=None, deserialize_json=True)
    except Exception as exc:  # an unreadable Variable must not stop the sync of the default store
        log.warning("Variable %s is unreadable (%s); syncing the default store only", VARIABLE, exc)
        value = None
    return [str(s) for s in value] if isinstance(value, list) else []


def remember(store: str | None) -> bool:
    """Add ``store`` to the list; True when it was not there yet."""
    from airflow.sdk import Variable

    key = _key(store)
    known = remembered()
    if key in known:
        return False
    Variable.set(VARIABLE, [*known, key], serialize_json=True,
                 description="stores dynamodb_stream_sync follows (written by dynamodb_ingest; \"\" = default store)")
    return True


def to_sync(store: str | None) -> list[str | None]:
    """The stores one sync run follows: the run's own store if it has one, else every remembered store."""
    if _key(store):
        return [store]
    stores = [None] + [s for s in remembered() if s != DEFAULT]
    return stores
