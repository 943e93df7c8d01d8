"""Where a store lives: its DuckLake catalog, its data files, its chunk staging area.

Invariant: one store spec maps to exactly one catalog and one data path.
``--store DIR`` (or ``DYNADEX_STORE``, default ``./.dynadex``) keeps the
catalog in ``DIR/catalog.sqlite`` and data under ``DIR/data/``. A Postgres
URI (``postgresql://…`` or ``postgres:dbname=…``) keeps the catalog in
Postgres and needs a data path (``--data-path`` or ``DYNADEX_DATA_PATH``),
local or ``s3://``. ``display`` never shows a password. An ``s3://`` data
path is reached with the location's ``credentials`` (an explicit
``AwsCredentials``; without one, the command line's AWS environment).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dynadex import settings
from dynadex.credentials import AwsCredentials
from dynadex.errors import scrubbed
from dynadex.store.errors import StoreError

DEFAULT_STORE = "./.dynadex"


@dataclass(frozen=True)
class StoreLocation:
    catalog: str  # what follows 'ducklake:' in ATTACH
    data_path: str  # DuckLake DATA_PATH, ends with '/'
    staging: str  # chunk segments before publish, ends with '/'
    display: str
    credentials: AwsCredentials | None = field(default=None, repr=False, compare=False)

    def aws(self) -> AwsCredentials:
        """How to reach an s3:// data path: the location's credentials, else the AWS environment."""
        return self.credentials if self.credentials is not None else AwsCredentials.from_environment()

    @property
    def is_s3(self) -> bool:
        return self.data_path.startswith("s3://")

    @property
    def local_root(self) -> Path | None:
        if self.catalog.startswith("sqlite:"):
            return Path(self.catalog[len("sqlite:") :]).parent
        return None


def _slash(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def mask(spec: str) -> str:
    """``spec`` (or a message quoting it) with any password replaced by ``***``: in a URI's user part, or a
    ``password=`` value, quoted (libpq's ``'…'``, spaces and ``\\'`` inside) or not."""
    spec = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", spec)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", r"\1***", spec, flags=re.I)


def without_secrets(exc: BaseException) -> BaseException:
    """``exc`` as it may be shown or logged: ``exc`` itself when nothing in its text or chain holds a password,
    else a copy (``errors.scrubbed``) whose text and chain went through ``mask``. A DuckDB error met on a
    Postgres catalog (a server gone mid-session) quotes the connection string, password included; the CLI and
    the Airflow tasks pass every error through here before it reaches a terminal or a task log."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if mask(str(e)) != str(e):
            return scrubbed(exc, lambda x: mask(str(x)))
        todo += [e.__cause__, e.__context__]
    return exc


def resolve(spec: str | None = None, data_path: str | None = None, *,
            credentials: AwsCredentials | None = None) -> StoreLocation:
    spec = spec or settings.STORE.read() or DEFAULT_STORE
    data_path = data_path or settings.DATA_PATH.read()
    if spec.startswith(("postgresql://", "postgres://", "postgres:")):
        conn = spec[len("postgres:") :] if spec.startswith("postgres:") and not spec.startswith("postgres://") else spec
        if not data_path:
            raise StoreError(f"store {mask(spec)}: a Postgres catalog needs a data path (--data-path or DYNADEX_DATA_PATH)")
        data = _slash(data_path if data_path.startswith("s3://") else str(Path(data_path).resolve()))
        return StoreLocation(f"postgres:{conn}", data, data + "staging/", mask(spec), credentials)
    if "://" in spec:
        raise StoreError(f"store {mask(spec)}: expected a folder or a Postgres URI")
    root = Path(os.path.expanduser(spec)).resolve()
    if root.exists() and not root.is_dir():
        raise StoreError(f"store {root} is not a folder")
    data = _slash(data_path if data_path and data_path.startswith("s3://") else str(Path(data_path).resolve()) if data_path else str(root / "data"))
    return StoreLocation(f"sqlite:{root / 'catalog.sqlite'}", data, _slash(str(root / "staging")) if not data.startswith("s3://") else data + "staging/", str(root),
                         credentials)
