"""What a key may do, decided before anything runs.

Invariants:

* A key limited to tables reads those tables' row, column and inverted indexes and nothing else: no other
  table, no ``dynadex`` state, no table function (``read_parquet`` of the data path would bypass the list).
* A key of every table reads anything the sandbox lets a query read: the store, and no file or URL outside it.
* Only an admin key creates, updates or tags Query Lambdas; any key runs one, within its tables.
"""

from __future__ import annotations

from dynadex.serve.errors import Forbidden
from dynadex.serve.keys import Key
from dynadex.serve.sql import Prepared


def check_query(key: Key, prepared: Prepared) -> None:
    if not key.limited:
        return
    if prepared.functions:
        raise Forbidden(f"key {key.name!r} is limited to tables {', '.join(key.tables)}: table functions "
                        f"({', '.join(prepared.functions)}) are refused")
    if prepared.relations:
        raise Forbidden(f"key {key.name!r} is limited to tables {', '.join(key.tables)}: it may not read "
                        f"{', '.join(prepared.relations)}")
    check_tables(key, prepared.tables)


def check_tables(key: Key, tables) -> None:
    refused = [t for t in tables if not key.may_read_table(t)]
    if refused:
        raise Forbidden(f"key {key.name!r} may not read table{'s' if len(refused) > 1 else ''} {', '.join(refused)}")


def check_admin(key: Key, what: str) -> None:
    if not key.admin:
        raise Forbidden(f"only an admin key may {what}; key {key.name!r} is not one")
