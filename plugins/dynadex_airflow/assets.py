"""The Airflow asset dynadex publishes: one event each time ``dynamodb_ingest``'s publish succeeds.

Schedule a downstream DAG on it with ``schedule=[INDEX]`` (``from
dynadex_airflow.assets import INDEX``, or ``Asset(name="dynadex_index",
uri="dynadex://index")``). The event's extra names what was published:
``{"table", "store", "build_id", "export_arn", "published", "items"}``;
``published`` is False when publish ran again over an index already
published (a cleared task: nothing changed), so filter on it if a re-run
must not start downstream work.
"""

from __future__ import annotations

from airflow.sdk import Asset

INDEX = Asset(name="dynadex_index", uri="dynadex://index", group="dynadex")


def event_extra(table: str, store: str | None, meta: dict, result: dict) -> dict:
    return {
        "table": table,
        "store": store or "",
        "build_id": meta.get("build_id"),
        "export_arn": meta.get("export_arn"),
        "published": bool(result.get("published")),
        "items": result.get("items", meta.get("total_items")),
    }
