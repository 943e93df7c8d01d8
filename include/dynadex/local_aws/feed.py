"""Every write to an emulated table, in order: per-item history and the stream.

moto calls ``table.stream_shard.add(old, new)`` after each put, update and
delete. We give every table a ``ChangeFeed`` in that slot (streams enabled
or not), so each write lands in:

* the item's **write history** ``(time, image or None)``, which exports read
  to see the table exactly as it was at any instant (ExportTime honoured,
  also while writes continue), and incremental exports read for their windows;
* the table's current **stream**, when one is enabled.

Invariant: history entries of one item are in write order with
non-decreasing times; images are canonical DynamoDB JSON (numbers as
DynamoDB returns them) and are copies, never shared with moto's live items.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dynadex.aws import from_client
from dynadex.types import canonical, canonical_item, canonical_json

LOCK = threading.RLock()  # one lock for the emulator's state (moto requests run in threads)
_service = threading.local()  # set while the TTL sweeper deletes


def now() -> float:
    return time.time()


class service_delete:
    """Context: writes made inside are TTL deletes by the DynamoDB service."""

    def __enter__(self):
        _service.active = True

    def __exit__(self, *exc):
        _service.active = False


def in_service_delete() -> bool:
    return getattr(_service, "active", False)


def image_of(moto_item) -> dict:
    """moto keeps B values as raw bytes; DynamoDB JSON wants base64 text."""
    return canonical_item(from_client(moto_item.to_json()["Attributes"]))


def key_of(table, image: dict) -> tuple[str, dict]:
    keys = {table.hash_key_attr: image[table.hash_key_attr]}
    if table.range_key_attr:
        keys[table.range_key_attr] = image[table.range_key_attr]
    keys = {k: canonical(v, k) for k, v in keys.items()}
    return canonical_json(keys, validated=True), keys


class ChangeFeed:
    """Stands in moto's ``Table.stream_shard`` slot; see the module docstring."""

    def __init__(self, table, knobs):
        self.table = table
        self.knobs = knobs
        self.history: dict[str, list[tuple[float, dict | None]]] = {}
        self.keys: dict[str, dict] = {}
        self.stream = None  # streams.Stream when enabled
        self.old_streams: dict[str, Any] = {}  # label -> Stream, after a stream was replaced

    # moto's interface
    def add(self, old, new) -> None:
        with LOCK:
            t = now()
            old_img = image_of(old) if old is not None else None
            new_img = image_of(new) if new is not None else None
            key, keys = key_of(self.table, new_img or old_img)
            self.keys[key] = keys
            hist = self.history.setdefault(key, [])
            if hist and hist[-1][0] > t:
                t = hist[-1][0]
            hist.append((t, new_img))
            if self.stream is not None and self.stream.enabled:
                self.stream.append(keys, old_img, new_img, t, in_service_delete())

    # exports
    def image_at(self, key: str, t: float) -> dict | None:
        """The item's image as of instant ``t`` (writes at or before ``t``)."""
        last = None
        for when, image in self.history.get(key, ()):
            if when > t:
                break
            last = image
        return last

    def snapshot(self, t: float) -> list[dict]:
        with LOCK:
            out = []
            for key in self.history:
                image = self.image_at(key, t)
                if image is not None:
                    out.append(image)
            return out

    def changes(self, start: float, end: float) -> list[tuple[dict, dict | None, dict | None, float]]:
        """(keys, old image at start, new image before end, last write time) for items written in [start, end)."""
        with LOCK:
            out = []
            for key, hist in self.history.items():
                in_window = [(w, img) for w, img in hist if start <= w < end]
                if not in_window:
                    continue
                before = None
                for w, img in hist:
                    if w >= start:
                        break
                    before = img
                after = in_window[-1][1]
                # an item created and deleted inside the window still gets its (Keys only) record
                out.append((self.keys[key], before, after, in_window[-1][0]))
            return out
