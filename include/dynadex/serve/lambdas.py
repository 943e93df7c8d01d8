"""Query Lambdas: named, versioned SQL with default parameters, kept in the server's state file.

Invariants:

* A version never changes once made: an update makes the next version (1, 2, 3, ... as text, as Rockset
  answers versions), so a caller pinned to a version always runs the same SQL.
* A tag names one version of one lambda; ``latest`` always names the newest, without being stored.
* A version's SQL was prepared once when it was made (``sql.prepare``): SQL that does not parse is refused then,
  and the tables it reads are kept as its ``collections``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from dynadex.serve.errors import AlreadyExists, BadRequest, NotFound
from dynadex.serve.state import StateFile

NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
LATEST = "latest"


@dataclass(frozen=True)
class Version:
    workspace: str
    name: str
    version: int
    query: str
    default_parameters: list[dict]
    description: str | None
    collections: list[str]
    created_at: str
    created_by: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadRequest(f"{kind} name {name!r}: use 1 to 128 letters, digits, '_' or '-'")


class LambdaBook:
    def __init__(self, state: StateFile):
        self.state = state

    def _newest(self, workspace: str, name: str) -> int | None:
        rows = self.state.read("SELECT max(version) FROM lambda_versions WHERE workspace = ? AND name = ?",
                               (workspace, name))
        return rows[0][0]

    def add_version(self, workspace: str, name: str, query: str, defaults: list[dict], description: str | None,
                    collections: list[str], by: str, *, first: bool) -> Version:
        """Version 1 of a new lambda (``first``; ``AlreadyExists`` if it exists), else the next version."""
        check_name("Query Lambda", name)
        newest = self._newest(workspace, name)
        if first and newest is not None:
            raise AlreadyExists(f"Query Lambda {workspace}.{name} exists: update it to make a new version")
        if not first and newest is None:
            raise NotFound(f"no Query Lambda {workspace}.{name}")
        version = (newest or 0) + 1
        now = _now()
        self.state.write([("INSERT INTO lambda_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (workspace, name, version, query, json.dumps(defaults), description,
                            json.dumps(collections), now, by))])
        return Version(workspace, name, version, query, defaults, description, collections, now, by)

    def version(self, workspace: str, name: str, version: str | int) -> Version:
        try:
            number = int(version)
        except (TypeError, ValueError) as exc:
            raise NotFound(f"Query Lambda {workspace}.{name} has no version {version!r}") from exc
        rows = self.state.read("SELECT * FROM lambda_versions WHERE workspace = ? AND name = ? AND version = ?",
                               (workspace, name, number))
        if not rows:
            if self._newest(workspace, name) is None:
                raise NotFound(f"no Query Lambda {workspace}.{name}")
            raise NotFound(f"Query Lambda {workspace}.{name} has no version {version!r}")
        return _version(rows[0])

    def versions(self, workspace: str, name: str) -> list[Version]:
        rows = self.state.read("SELECT * FROM lambda_versions WHERE workspace = ? AND name = ? ORDER BY version DESC",
                               (workspace, name))
        if not rows:
            raise NotFound(f"no Query Lambda {workspace}.{name}")
        return [_version(r) for r in rows]

    def lambdas(self, workspace: str | None = None) -> list[tuple[Version, int]]:
        """(newest version, version count) of every lambda, of one workspace or all."""
        rows = self.state.read(
            "SELECT v.* , c.n FROM lambda_versions v JOIN (SELECT workspace, name, max(version) AS top, count(*) AS n "
            "FROM lambda_versions GROUP BY 1, 2) c ON v.workspace = c.workspace AND v.name = c.name "
            "AND v.version = c.top WHERE ? IS NULL OR v.workspace = ? ORDER BY v.workspace, v.name",
            (workspace, workspace))
        return [(_version(r[:-1]), r[-1]) for r in rows]

    def tag(self, workspace: str, name: str, tag: str, version: str | int) -> Version:
        check_name("tag", tag)
        if tag == LATEST:
            raise BadRequest(f"tag {LATEST!r} always names the newest version; it cannot be set")
        found = self.version(workspace, name, version)
        self.state.write([("INSERT OR REPLACE INTO lambda_tags VALUES (?, ?, ?, ?)",
                           (workspace, name, tag, found.version))])
        return found

    def tagged(self, workspace: str, name: str, tag: str) -> Version:
        if tag == LATEST:
            newest = self._newest(workspace, name)
            if newest is None:
                raise NotFound(f"no Query Lambda {workspace}.{name}")
            return self.version(workspace, name, newest)
        rows = self.state.read("SELECT version FROM lambda_tags WHERE workspace = ? AND name = ? AND tag = ?",
                               (workspace, name, tag))
        if not rows:
            raise NotFound(f"Query Lambda {workspace}.{name} has no tag {tag!r}")
        return self.version(workspace, name, rows[0][0])

    def tags(self, workspace: str, name: str) -> list[tuple[str, Version]]:
        self.versions(workspace, name)  # NotFound for a lambda that does not exist
        rows = self.state.read("SELECT tag, version FROM lambda_tags WHERE workspace = ? AND name = ? ORDER BY tag",
                               (workspace, name))
        return [(t, self.version(workspace, name, v)) for t, v in rows]


def _version(row) -> Version:
    ws, name, version, query, defaults, description, collections, created_at, by = row
    return Version(ws, name, version, query, json.loads(defaults), description, json.loads(collections), created_at, by)
