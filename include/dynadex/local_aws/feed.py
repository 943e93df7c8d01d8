"""Every write to an emulated table, in order: per-item history and the stream.

moto calls ``table.stream_shard.add(old, new)`` after each put, update and
delete. We give every table a ``ChangeFeed`` in that slot (streams enabled
or not), so each write lands in:

* the item's **write history** ``(time, image or None)``, which exports read
  to see the table exactly as it was at any instant (ExportTime honoured,
  also while writes continue), and incremental exports read for their windows;
* the table's current **stream**, when one is enabled.

While a request runs (``begin`` .. ``commit``/``rollback``, see
``strict.py``) writes are held back: at the end each item's final image is
checked against DynamoDB's rules, and only then lands in the history and the
stream, one record per item and request (an UpdateItem that creates an item
is one INSERT), none for a write that changed nothing. A refused or failed
request puts moto's items back as they were and records nothing.

Invariant: history entries of one item are in write order with
non-decreasing times; images are canonical DynamoDB JSON (numbers as
DynamoDB returns them) and are copies, never shared with moto's live items.
"""

from __future__ import annotations

import threading
from typing import Any

from dynadex.aws import from_client
from dynadex.local_aws.clock import now  # the emulator's one clock (tests may move it on: clock.py)
from dynadex.local_aws.lock import LOCK
from dynadex.types import canonical, canonical_item, canonical_json

_service = threading.local()  # set while the TTL sweeper deletes
_request = threading.local()  # the Pending writes of the request running in this thread


class service_delete:
    """Context: writes made inside are TTL deletes by the DynamoDB service."""

    def __enter__(self):
        _service.active = True

    def __exit__(self, *exc):
        _service.active = False


def in_service_delete() -> bool:
    return getattr(_service, "active", False)


def raw_image_of(moto_item) -> dict:
    """moto keeps B values as raw bytes; DynamoDB JSON wants base64 text (values not yet checked)."""
    return from_client(moto_item.to_json()["Attributes"])


def image_of(moto_item) -> dict:
    return canonical_item(raw_image_of(moto_item))


def keys_of_item(table, moto_item) -> tuple[str, dict]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    raw = from_client({n: moto_item.attrs[n].to_json() for n in names})
    return key_of(table, raw)


class Entry:
    """One item's writes within a request: its image before the request and the moto item after."""

    __slots__ = ("feed", "key", "keys", "old", "old_img", "new", "service")

    def __init__(self, feed, key, keys, old, old_img, new, service):
        self.feed, self.key, self.keys = feed, key, keys
        self.old, self.old_img, self.new, self.service = old, old_img, new, service


class Pending:
    """The writes of one request, held until it is committed or rolled back."""

    def __init__(self, action: str):
        self.action = action
        self.entries: dict[tuple[int, str], Entry] = {}

    def add(self, feed, old, new) -> None:
        key, keys = keys_of_item(feed.table, new if new is not None else old)
        slot = (id(feed), key)
        entry = self.entries.get(slot)
        if entry is None:
            old_img = image_of(old) if old is not None else None
            self.entries[slot] = Entry(feed, key, keys, old, old_img, new, in_service_delete())
        else:
            entry.new = new

    def rollback(self) -> None:
        """Put moto's items back as they were before the request."""
        for entry in reversed(list(self.entries.values())):
            table = entry.feed.table
            ref = entry.new if entry.new is not None else entry.old
            hk, rk = ref.hash_key, ref.range_key
            if entry.old is None:
                if rk is not None:
                    table.items.get(hk, {}).pop(rk, None)
                else:
                    table.items.pop(hk, None)
            elif rk is not None:
                table.items[hk][rk] = entry.old
            else:
                table.items[hk] = entry.old
        self.entries.clear()

    def commit(self, check) -> None:
        """Check every final image (``check(raw_image, entry)`` raises to refuse), then record the writes."""
        finals = []
        for entry in self.entries.values():
            raw = raw_image_of(entry.new) if entry.new is not None else None
            if raw is not None:
                try:
                    check(raw, entry)
                except Exception as exc:
                    exc.dynadex_entry = entry  # which item was refused (TransactWriteItems names it)
                    raise
            finals.append((entry, canonical_item(raw) if raw is not None else None))
        for entry, new_img in finals:
            if new_img == entry.old_img:
                continue  # a write that changed nothing: no history entry, no stream record
            entry.feed.record(entry.key, entry.keys, entry.old_img, new_img, entry.service)
        self.entries.clear()


def begin(action: str) -> Pending:
    pending = _request.pending = Pending(action)
    return pending


def end() -> None:
    _request.pending = None


def pending() -> Pending | None:
    return getattr(_request, "pending", None)


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

    def __deepcopy__(self, memo):
        # moto's TransactWriteItems deep-copies whole tables to roll back; the copy must keep feeding
        # the same history and stream, not a detached clone of them.
        return self

    # moto's interface
    def add(self, old, new) -> None:
        with LOCK:
            request = pending()
            if request is not None:
                request.add(self, old, new)
                return
            old_img = image_of(old) if old is not None else None
            new_img = image_of(new) if new is not None else None
            if old_img == new_img:
                return
            key, keys = key_of(self.table, new_img or old_img)
            self.record(key, keys, old_img, new_img, in_service_delete())

    def record(self, key: str, keys: dict, old_img: dict | None, new_img: dict | None, service: bool) -> None:
        with LOCK:
            t = now()
            self.keys[key] = keys
            hist = self.history.setdefault(key, [])
            if hist and hist[-1][0] > t:
                t = hist[-1][0]
            hist.append((t, new_img))
            if self.stream is not None and self.stream.enabled:
                self.stream.append(keys, old_img, new_img, t, service)

    def current_image(self, key: str) -> dict | None:
        """The item's image after its last recorded write (None: deleted, or never written through the feed)."""
        hist = self.history.get(key)
        return hist[-1][1] if hist else None

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
