"""Bad exports never publish: each fault is injected into a real export and the store stays as it was."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dynadex.errors import DynadexError, MissingFileError
from dynadex.export import read_export
from dynadex.export.source import S3Source
from dynadex.ingest import ingest_export
from dynadex.store import Store


def publish_ok(genuine_export, store) -> None:
    ingest_export(str(genuine_export.summary_path), "T", "id", store=store)


def lines(genuine_export) -> list[str]:
    return gzip.decompress(genuine_export.data_path().read_bytes()).decode().splitlines()


FAULTS = {
    "corrupt gzip": (lambda e: e.replace_data(0, b"\x1f\x8b\x08\x00garbage-not-deflate", fix_count=False), "corrupt gzip"),
    "md5 mismatch": (lambda e: e.data_path().write_bytes(gzip.compress(b'{"Item":{"id":{"S":"x"}}}\n' * 3)), "does not match the manifest's md5Checksum"),
    "truncated file": (lambda e: e.replace_data(0, e.data_path().read_bytes()[:-9], fix_count=False), "truncated gzip"),
    "malformed line": (lambda e: e.replace_data(0, gzip.compress(("\n".join(lines(e)[:2]) + '\n{"Item": {\n').encode()), fix_count=False), "line 3: not valid JSON"),
    "unknown type tag": (lambda e: e.replace_data(0, gzip.compress((lines(e)[0] + '\n{"Item":{"id":{"S":"q"},"z":{"XX":"1"}}}\n' + lines(e)[2] + "\n").encode())), "line 2: unknown type tag 'XX'"),
    "missing manifest": (lambda e: (e.dir / "manifest-files.json").unlink(), "manifest-files.json"),
    "wrong item count": (lambda e: e.write_manifest_lines([{**e.manifest_lines()[0], "itemCount": 2}]), "holds 3 items but the manifest says 2"),
    "item without the key": (lambda e: e.replace_data(0, gzip.compress((lines(e)[0] + '\n{"Item":{"other":{"S":"q"}}}\n' + lines(e)[2] + "\n").encode())), "line 2: item has no key attribute 'id'"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_named_and_nothing_is_published(genuine_export, tmp_path, fault):
    store = str(tmp_path / "store")
    publish_ok(genuine_export, store)  # a good snapshot is there first
    with Store(store) as st:
        before = list(st.dump("T"))
    # a new export of the same table (new id) with the fault in it
    summary = genuine_export.summary()
    summary["exportArn"] = summary["exportArn"][:-8] + "deadbeef"
    genuine_export.write_summary(summary)
    inject, message = FAULTS[fault]
    inject(genuine_export)
    with pytest.raises(DynadexError) as info:
        publish_ok(genuine_export, store)
    text = str(info.value)
    assert message in text, text
    if fault != "missing manifest":
        assert Path(genuine_export.data_path().name).name in text or genuine_export.data_path().name in text
    with Store(store) as st:
        assert list(st.dump("T")) == before  # nothing published
        assert st.status("T")["tables"][0]["build_id"] == "01715685260608-c488b4e1"


class DeniedS3:
    """An S3 client whose bucket policy denies everything (the fault a wrong IAM role gives)."""

    def _deny(self, **kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    get_object = head_object = _deny


def test_access_denied_names_the_object():
    with pytest.raises(MissingFileError, match=r"s3://exports/x/manifest-summary.json: access denied"):
        read_export("s3://exports/x/manifest-summary.json", s3_client=DeniedS3())
    assert S3Source("exports", DeniedS3()).exists("k") is False
