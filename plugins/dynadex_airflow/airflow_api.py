"""Unpausing a DAG from a task, through Airflow's public REST API (tasks have no metadata-DB access in Airflow 3).

Invariant: ``unpause`` needs an Airflow connection (``DYNADEX_AIRFLOW_API_CONN``,
default ``airflow_api``) whose host is the API server's base URL and whose
login and password are a user allowed to edit DAGs; it gets a token from
``/auth/token`` and PATCHes ``/api/v2/dags/{dag_id}``. Without that connection
it unpauses nothing and says why; the caller then warns. ``make airflow``
creates the connection.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from dynadex import settings

CONN_ENV = settings.AIRFLOW_API_CONN.env


def _json(url: str, body: dict, method: str, token: str | None = None, timeout: float = 15) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the operator's own API server)
        return json.loads(resp.read() or b"{}")


def base_url(conn) -> str:
    host = (conn.host or "").rstrip("/")
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    return host


def unpause(dag_id: str) -> tuple[bool, str]:
    """(done, why): unpause ``dag_id`` through the REST API."""
    from airflow.sdk import BaseHook

    conn_id = settings.AIRFLOW_API_CONN.read()
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return False, f"no Airflow connection {conn_id!r} to reach the REST API with (set {CONN_ENV} or create it)"
    url = base_url(conn)
    try:
        token = _json(f"{url}/auth/token", {"username": conn.login, "password": conn.password}, "POST")["access_token"]
        doc = _json(f"{url}/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": False}, "PATCH", token)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        return False, f"the REST API at {url} refused: {exc}"
    if doc.get("is_paused") is not False:
        return False, f"the REST API at {url} answered is_paused={doc.get('is_paused')!r}"
    return True, f"unpaused through {url}"
