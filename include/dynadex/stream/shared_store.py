"""One open ``Store`` shared by the syncs of several tables in one process, their batches committed together.

Invariants:

* Every call is a whole transaction (or several), run under one lock, so the writer lock and the held catalog
  connection are taken and left by the same thread, one call at a time (as the store's writer lock already
  made its writes).
* **Group commit** (decision 0039): a batch handed to ``apply`` while another commit runs waits, and the next
  commit carries every batch waiting by then, one per table, in ONE transaction (``Store.apply_many``). Each
  batch still commits with its own shards' checkpoints (invariant 2), all of them or none; each caller gets
  its own batch's counts, or the exception that stopped it.
* ``prepare`` shapes a batch WITHOUT the lock (a sync shapes its next batch while another table's commit runs,
  so its batch is waiting when that commit ends and joins the next one): it is given the table's key, read once
  under the lock, so it never touches the store's connection. Taking the lock there made every sync wait for
  one commit to prepare and for another to commit, and the batches trickled in: two a commit, not fifty.
* ``warm`` reads every table's state and checkpoints in two statements when a group starts; each table's first
  ``table_state`` and ``checkpoints`` are answered from them only while the store's snapshot is still the one they
  were read at (any commit makes a new one), else read as before. Fifty tables' own reads, serialized here, took
  about 2 s of a group's start, and their key reads (``Lake.key_spec``) nearly 2 s more.
* One table's bad batch never fails the others': when a shared commit fails, each of its batches is applied
  again alone, and only the one that fails alone gets the error.
* ``flush_inlined`` flushes the whole store, so the tables' requests are one: a flush runs only once at least
  ``flush_every`` commits landed since the last (each commit adds at most one batch per table, so no table
  keeps more inlined batches than a sync alone would). A fold runs only right after a flush, nothing
  committed since (decision 0032: a fold after a batch that added a column must flush first); a fold asked
  for in between is skipped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from dynadex.store import Preshaped, Store, TableBatch


@dataclass
class _Waiting:
    batch: TableBatch
    done: bool = False
    result: dict | None = None
    error: BaseException | None = None


class SharedStore:
    def __init__(self, store: Store, *, flush_every: int = 1, group_commit: bool = True):
        """``group_commit`` False: each batch commits alone, as a sync of its own would (the bench's baseline)."""
        self._store, self._lock = store, threading.RLock()
        self.group_commit = group_commit
        self._queue: list[_Waiting] = []
        self._queued = threading.Lock()
        self.flush_every = max(1, flush_every)
        self.commits = 0  # commits of batches (one per shared commit)
        self.batches = 0  # batches committed: batches / commits is how many tables a commit carried
        self._since_flush: int | None = None  # commits since this process last flushed; None: never
        self._keys: dict[str, tuple] = {}  # table -> (key names, key types), read under the lock
        self._warm: tuple[int, dict] | None = None  # (snapshot, table -> [state, checkpoints]) (``warm``)

    # ------------------------------------------------------------ a group's start
    def warm(self, tables: list[str]) -> None:
        """Every table's state and checkpoints at once (``Store.followed``), for each table's first reads."""
        with self._lock:
            snapshot = self._store.lake.current_snapshot()
            held = self._store.warm(tables)
            self._warm = (snapshot, {t: [found, cps] for t, (found, cps) in held.items()})

    def _warmed(self, table: str, i: int):
        """What ``warm`` read of ``table`` (0: its state, 1: its checkpoints), once, if the store's snapshot is
        still the one it was read at; else None (read it now). Call with the lock held."""
        if self._warm is None or self._warm[1].get(table, [None, None])[i] is None:
            return None
        if self._store.lake.current_snapshot() != self._warm[0]:
            self._warm = None  # a commit since: every table reads its own again
            return None
        got, self._warm[1][table][i] = self._warm[1][table][i], None
        return got

    def table_state(self, table: str):
        with self._lock:
            got = self._warmed(table, 0)
            return got if got is not None else self._store.table_state(table)

    def checkpoints(self, table: str) -> dict:
        with self._lock:
            got = self._warmed(table, 1)
            return got if got is not None else self._store.checkpoints(table)

    # --------------------------------------------------------------- shaping
    def prepare(self, table: str, changes) -> Preshaped | None:
        """``Store.prepare``, without waiting for a commit in flight (its key read once, under the lock)."""
        if len(changes) < 2:
            return None  # a batch of one is shaped in its transaction (``Store.prepare``)
        key = self._keys.get(table)
        if key is None:
            with self._lock:
                try:
                    key = self._keys[table] = self._store.lake.key_spec(table)
                except Exception:  # noqa: BLE001 - not published: its transaction raises the error, as alone
                    return None
        return self._store.prepare(table, changes, key)

    def __getattr__(self, name):
        value = getattr(self._store, name)
        if not callable(value):
            return value

        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked

    # ------------------------------------------------------------ group commit
    def apply(self, table: str, changes, checkpoints=(), **options) -> dict:
        """``Store.apply``, its batch committed with whatever other tables' batches wait at the same time."""
        if not self.group_commit:
            with self._lock:
                result = self._store.apply(table, changes, checkpoints, **options)
                self._committed(1)
                return result
        mine = _Waiting(TableBatch(table, list(changes), list(checkpoints), **options))
        with self._queued:
            self._queue.append(mine)
        with self._lock:
            if not mine.done:  # no commit took it while this thread waited for the lock: this one takes all
                with self._queued:
                    taken, self._queue = self._queue, []
                self._commit(taken)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _commit(self, taken: list[_Waiting]) -> None:
        try:
            rounds = _one_per_table(taken)
            for batch in rounds:
                try:
                    results = self._store.apply_many([w.batch for w in batch])
                except Exception as exc:  # noqa: BLE001 - each batch gets its own outcome below
                    if len(batch) == 1:
                        batch[0].error = exc
                    else:  # which table's batch failed? each alone: the others commit, the bad one fails
                        for w in batch:
                            try:
                                w.result = self._store.apply_many([w.batch])[0]
                                self._committed(1)
                            except Exception as alone:  # noqa: BLE001 - handed to its own caller
                                w.error = alone
                else:
                    for w, result in zip(batch, results):
                        w.result = result
                    self._committed(len(batch))
                for w in batch:
                    w.done = True
        except BaseException as exc:  # an interrupt: no caller is left waiting for a commit that never comes
            for w in taken:
                if not w.done:
                    w.error, w.done = exc, True
            raise

    def _committed(self, batches: int) -> None:
        self.commits += 1
        self.batches += batches
        self._since_flush = (self._since_flush or 0) + 1

    # ----------------------------------------------------------------- upkeep
    def flush_inlined(self) -> bool:
        """The store's inlined rows into files, if ``flush_every`` commits landed since the last flush; whether
        it flushed."""
        with self._lock:
            if self._since_flush is None or self._since_flush >= self.flush_every:
                self._store.flush_inlined()
                self._since_flush = 0
                return True
            return False

    def fold_small_files(self, table: str, *args, flush_first: bool = True, **kwargs) -> dict:
        """``Store.fold_small_files``, where the whole-store flush it needs first (decision 0032) is due: right
        after a flush with nothing committed since, or once ``flush_every`` commits landed (then it flushes).
        Otherwise nothing is folded now ({}): each table's sync asks every few of its batches, and a flush per
        table's ask stalled every table's commits (50 flushes in a minute at 50 tables); its small files wait
        for the next due fold or ``dynadex maintain``."""
        with self._lock:
            if self._since_flush is None and not flush_first:
                self._since_flush = 0  # the caller has just flushed (a store opened for it alone)
            if self._since_flush is None or self._since_flush >= self.flush_every:
                self._store.flush_inlined()
                self._since_flush = 0
            if self._since_flush:
                return {}
            return self._store.fold_small_files(table, *args, flush_first=False, **kwargs)


def _one_per_table(waiting: list[_Waiting]) -> list[list[_Waiting]]:
    """``waiting`` in rounds with at most one batch per table, each table's batches in the order they came."""
    rounds: list[list[_Waiting]] = []
    last: dict[str, int] = {}
    for w in waiting:
        i = last.get(w.batch.table, -1) + 1
        if i == len(rounds):
            rounds.append([])
        rounds[i].append(w)
        last[w.batch.table] = i
    return rounds
