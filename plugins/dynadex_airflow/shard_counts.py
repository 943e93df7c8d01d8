"""How many shard-group tasks the stream DAG runs for each table (decision 0034, amendment).

Invariants:

* A table's count comes from the run's ``shard_groups`` param (conf or form) when it names the table, else from
  the Airflow Variable ``dynadex_shard_groups`` (a JSON object, table name -> count, e.g. ``{"Orders": 4}``;
  every worker reads the same one), else 1 (no groups: the table is followed whole, busy alone or quiet
  with others, decision 0037). The key is the DynamoDB table name, whichever followed store holds it.
* A count is a whole number from 1 to ``MOST``. A bad entry of the Variable is logged and taken as 1, so a
  typo never stops the other tables' sync; a bad param is refused by the form (the DAG's schema) and, if it
  gets past it, by ``counts`` (``BadShardGroup``, naming the entry).
* Nothing here decides when a count may change: the DAG's one active run at a time does (every group task
  of a run ends within the run, so the groups of two counts never read at once).
"""

from __future__ import annotations

import logging

from dynadex.stream.errors import BadShardGroup

log = logging.getLogger("dynadex.sync")

VARIABLE = "dynadex_shard_groups"
MOST = 64
"""More groups than this is a typo: each is a worker slot, and each lists the stream every 10 s (AWS allows 10
DescribeStream calls a second per stream; decision 0034, costs at scale)."""


def _count(table: str, value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadShardGroup(f"{where}: {table!r}: {value!r} is not a number of shard groups; give a whole number "
                            f"from 1 to {MOST}, e.g. {{\"{table}\": 2}}")
    try:
        count = int(value)
    except ValueError as exc:
        raise BadShardGroup(f"{where}: {table!r}: {value!r} is not a number of shard groups; give a whole number "
                            f"from 1 to {MOST}, e.g. {{\"{table}\": 2}}") from exc
    if count != float(value) or not 1 <= count <= MOST:
        raise BadShardGroup(f"{where}: {table!r}: {value!r} shard groups; give a whole number from 1 to {MOST}")
    return count


def parse(value, where: str) -> dict[str, int]:
    """``{table: count}`` from a JSON object; ``BadShardGroup`` naming ``where`` and the entry when it is not one."""
    if value in (None, "", "None"):
        return {}
    if not isinstance(value, dict):
        raise BadShardGroup(f"{where}: {value!r} is not an object of table name -> shard groups, e.g. {{\"Orders\": 2}}")
    return {str(table): _count(str(table), n, where) for table, n in value.items()}


def configured() -> dict[str, int]:
    """The Variable's counts; an unreadable Variable or a bad entry is logged and left out (count 1)."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(VARIABLE, default=None, deserialize_json=True)
    except Exception as exc:  # noqa: BLE001 - unreadable: every table is followed whole, as without the Variable
        log.warning("Variable %s is unreadable (%s); every table is followed without shard groups", VARIABLE, exc)
        return {}
    if not isinstance(value, dict):
        if value is not None:
            log.warning("Variable %s is not a JSON object of table -> count (%r); ignored", VARIABLE, value)
        return {}
    out = {}
    for table, n in value.items():
        try:
            out.update(parse({table: n}, f"Variable {VARIABLE}"))
        except BadShardGroup as exc:
            log.warning("%s; that table is followed without shard groups", exc)
    return out


def counts(params: dict | None, conf: dict | None, variable: dict[str, int] | None = None) -> dict[str, int]:
    """Each table's count for a run: the run's ``shard_groups`` (conf, then params) over the Variable's."""
    own = {}
    for source, where in ((params or {}, "param shard_groups"), (conf or {}, "conf shard_groups")):
        own.update(parse(source.get("shard_groups"), where))
    return {**(configured() if variable is None else variable), **own}
