"""API keys: made once, shown once, kept only as a hash; each may read some tables or all, and admin or not.

Invariants:

* A key is 32 random bytes (``secrets``); the state file keeps its SHA-256 and a few leading characters
  (``hint``), never the key. A key this random cannot be guessed from its hash, so a slow password hash
  would only slow every request (decision 0031).
* ``check`` answers for the key as the file is now: a key revoked (by ``dynadex keys revoke`` in another
  process) is refused at its next request.
* A key limited to tables may read those tables' three indexes and nothing else (``Key.may_read``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import sqlite3
from dataclasses import dataclass

from dynadex.serve.errors import AlreadyExists, BadRequest, NotFound, Unauthorized
from dynadex.serve.state import StateFile

PREFIX = "dk_"
HINT_CHARS = 8  # "dk_" and 5 random characters: tells keys apart, 30 bits of 256
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Key:
    name: str
    tables: tuple[str, ...] | None  # None: every table
    admin: bool

    def may_read_table(self, table: str) -> bool:
        return self.tables is None or table.lower() in {t.lower() for t in self.tables}

    @property
    def limited(self) -> bool:
        return self.tables is not None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyRing:
    def __init__(self, state: StateFile):
        self.state = state

    def create(self, name: str, tables: list[str] | None = None, admin: bool = False) -> str:
        """A new key named ``name``; returned once, never stored."""
        if not NAME.fullmatch(name):
            raise BadRequest(f"key name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
        if tables is not None and not tables:
            raise BadRequest("a key limited to tables needs at least one table")
        key = PREFIX + secrets.token_urlsafe(32)
        try:
            self.state.write([("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                               (name, _hash(key), key[:HINT_CHARS], json.dumps(tables) if tables is not None else None,
                                int(admin), _now()))])
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"an API key named {name!r} exists (revoked keys keep their names)") from exc
        return key

    def list(self) -> list[dict]:
        rows = self.state.read("SELECT name, hint, tables, admin, created_at, revoked_at FROM api_keys ORDER BY name")
        return [{"name": n, "hint": h + "…", "tables": json.loads(t) if t else None, "admin": bool(a),
                 "created_at": c, "revoked_at": r} for n, h, t, a, c, r in rows]

    def revoke(self, name: str) -> None:
        if not self.state.read("SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)):
            raise NotFound(f"no API key named {name!r} in use")
        self.state.write([("UPDATE api_keys SET revoked_at = ? WHERE name = ?", (_now(), name))])

    def check(self, key: str | None) -> Key:
        """The key's grants; ``Unauthorized`` when it is missing, unknown or revoked."""
        if not key:
            raise Unauthorized("no API key: send the header 'Authorization: ApiKey <key>'")
        rows = self.state.read("SELECT name, tables, admin FROM api_keys WHERE hash = ? AND revoked_at IS NULL",
                               (_hash(key),))
        if not rows:
            raise Unauthorized("unknown or revoked API key")
        name, tables, admin = rows[0]
        return Key(name, tuple(json.loads(tables)) if tables else None, bool(admin))


def from_header(value: str | None) -> str | None:
    """The key in an ``Authorization`` header: ``ApiKey <key>`` (any case: the rockset client sends ``apikey``)."""
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    return key.strip() if scheme.lower() == "apikey" and key.strip() else None
