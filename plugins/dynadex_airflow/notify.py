"""The optional failure notifier, configured in one place (the environment of the workers), off by default.

Both variables are declared in ``dynadex.settings`` (group "airflow").

* ``DYNADEX_FAILURE_WEBHOOK=https://...``: every failed task instance (a
  final failure, not one that will be retried) POSTs one JSON document to it:
  ``{"dag_id", "run_id", "task_id", "map_index", "try_number", "error",
  "log_url", "text"}`` (``text`` makes it readable by Slack-style incoming
  webhooks as they are).
* ``DYNADEX_FAILURE_CALLBACK=package.module:function``: that function is
  called with the task's Airflow context (for anything else: a pager, an
  Airflow notifier from a provider, ...).

Both may be set. A notifier that fails logs a warning and never hides the
task's own failure. ``callbacks()`` is what the DAGs put in
``default_args["on_failure_callback"]``: empty when nothing is configured.
"""

from __future__ import annotations

import importlib
import json
import logging
import urllib.request

from dynadex import settings

log = logging.getLogger("dynadex.notify")

WEBHOOK_ENV = settings.FAILURE_WEBHOOK.env
CALLBACK_ENV = settings.FAILURE_CALLBACK.env


def _document(context) -> dict:
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    doc = {
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
        "error": f"{type(error).__name__}: {error}" if error is not None else None,
        "log_url": getattr(ti, "log_url", None),
    }
    mapped = isinstance(doc["map_index"], int) and doc["map_index"] >= 0
    where = (doc["task_id"] or "?") + (f"[{doc['map_index']}]" if mapped else "")
    doc["text"] = f"dynadex: {doc['dag_id']} {where} failed (run {doc['run_id']}, try {doc['try_number']}): {doc['error']}"
    return doc


def post_webhook(url: str, doc: dict, timeout: float = 10) -> None:
    req = urllib.request.Request(url, data=json.dumps(doc, default=str).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "dynadex"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the URL is the operator's own setting)
        resp.read()


def notify_failure(context) -> None:
    """on_failure_callback: tell the configured webhook and/or callable; never raise."""
    url, target = settings.FAILURE_WEBHOOK.read(), settings.FAILURE_CALLBACK.read()
    if url:
        try:
            post_webhook(url, _document(context))
        except Exception as exc:  # a notifier must not hide the failure it reports
            log.warning("failure webhook %s: %s", WEBHOOK_ENV, exc)
    if target:
        try:
            module, _, name = target.partition(":")
            getattr(importlib.import_module(module), name)(context)
        except Exception as exc:
            log.warning("failure callback %s=%s: %s", CALLBACK_ENV, target, exc)


def callbacks() -> list:
    """The DAGs' on_failure_callback: [notify_failure] when a notifier is configured, else none."""
    return [notify_failure] if settings.FAILURE_WEBHOOK.read() or settings.FAILURE_CALLBACK.read() else []
