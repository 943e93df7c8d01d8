"""Bad input is refused with an error naming the file (and line, and parameter), by both build paths, and the
store stays exactly as it was: same rows, same published build, no new snapshot.

Each case writes an export whose one fault is described by the table below, over a store that already holds
a good snapshot of the same table, and ingests it with the exact Python build (``DYNADEX_BUILD=python``)
and with the default DuckDB build; both must refuse with the same message. Item-level faults are tried in
both export formats (an ION line the DuckDB path refuses reaches the Ion parser from its Ion text).
"""

from __future__ import annotations

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used
import json
import sys
from pathlib import Path

import pytest

from dynadex.errors import DynadexError
from dynadex.ingest import ingest_export
from dynadex.local_aws.exports import ion_line
from dynadex.store import Store

sys.path.insert(0, str(REPO / "bench"))
import gen_export  # noqa: E402  (the benchmarks' export writer: the real S3 layout)

GOOD_ID, BAD_ID = "01700000000001-00000001", "01700000000002-00000002"
PER_FILE = 6


def good_item(i: int) -> dict:
    return {"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}, "tags": {"SS": ["a", f"t{i}"]}}


def nested(levels: int) -> dict:
    av: dict = {"S": "bottom"}
    for _ in range(levels):
        av = {"M": {"a": av}}
    return av


def render(item: dict, fmt: str) -> str:
    return ion_line({"Item": item}) if fmt == "ION" else json.dumps({"Item": item}, separators=(",", ":"))


def write(root: Path, export_id: str, fmt: str, bad_item: dict | None = None) -> Path:
    """Two data files of PER_FILE items; ``bad_item`` (if any) is line 3 of the second file."""
    files = [[render(good_item(f * PER_FILE + i), fmt) for i in range(PER_FILE)] for f in range(2)]
    if bad_item is not None:
        files[1][2] = render(bad_item, fmt)
    summary = gen_export.write_export(root, files, prefix="b", export_id=export_id, table="T",
                                      export_time="2024-01-01T00:00:00.000Z" if export_id == GOOD_ID
                                      else "2024-01-02T00:00:00.000Z")
    doc = json.loads(summary.read_text())
    doc["outputFormat"] = fmt
    summary.write_text(json.dumps(doc))
    return summary


def manifest_lines(summary: Path) -> list[dict]:
    return [json.loads(x) for x in (summary.parent / "manifest-files.json").read_text().splitlines()]


def rewrite_manifest(summary: Path, change) -> None:
    lines = manifest_lines(summary)
    change(lines)
    (summary.parent / "manifest-files.json").write_text("".join(json.dumps(x) + "\n" for x in lines))


def count_off_by_one(summary: Path) -> None:
    """The second file's entry says one item more than it holds; the summary's total is right."""
    rewrite_manifest(summary, lambda lines: lines[1].update(itemCount=PER_FILE + 1))
    doc = json.loads(summary.read_text())
    assert doc["itemCount"] == 2 * PER_FILE


def listed_but_missing(summary: Path) -> None:
    rewrite_manifest(summary, lambda lines: lines.append(
        {**lines[1], "dataFileS3Key": lines[1]["dataFileS3Key"].replace("000001.json", "000009.json")}))


def outside_prefix(summary: Path) -> None:
    rewrite_manifest(summary, lambda lines: lines[1].update(dataFileS3Key="elsewhere/" + lines[1]["dataFileS3Key"]))


def dot_dot(summary: Path) -> None:
    rewrite_manifest(summary, lambda lines: lines[1].update(
        dataFileS3Key=f"b/AWSDynamoDB/{BAD_ID}/data/../../{GOOD_ID}/data/{Path(lines[1]['dataFileS3Key']).name}"))


SECOND = f"b/AWSDynamoDB/{BAD_ID}/data/{1:026d}.json.gz"

# name -> (fault in the manifests, or None; bad line 3 of the second file, or None; fragments of the message)
MANIFEST_FAULTS = {
    "file count disagrees with its entry": (count_off_by_one, [SECOND, "holds 6 items but the manifest says 7"]),
    "manifest lists a missing data file": (listed_but_missing, [f"{9:026d}.json.gz", "not found",
                                                               "manifest-files.json"]),
    "data key outside the export's prefix": (outside_prefix, ["manifest-files.json line 2", "elsewhere/b/",
                                                             "outside the export's folder"]),
    "data key climbing out with ..": (dot_dot, ["manifest-files.json line 2", "outside the export's folder"]),
}

ITEM_FAULTS = {
    "item without the key": ({"other": {"S": "x"}}, ["item has no key attribute 'pk'"]),
    "key of the wrong type": ({"pk": {"N": "7"}}, ["key attribute 'pk' has type N, the table's key type is S"]),
    "item over 400 KB": ({"pk": {"S": "big"}, "s": {"S": "x" * (400 * 1024)}},
                         ["item is 409606 bytes", "maximum item size is 409600"]),
    "nesting deeper than 32 levels": ({"pk": {"S": "deep"}, "m": nested(33)},
                                      ["nesting deeper than DynamoDB's 32 levels", "m" + ".a" * 32]),
    "name over 64 KB": ({"pk": {"S": "n"}, "m": {"M": {"k" * 65536: {"S": "v"}}}},
                        ["attribute name longer than DynamoDB's 65535 bytes", "attribute 'm.kkkkkkkkkkkkkkkkkkkk...'"]),
    "empty set": ({"pk": {"S": "e"}, "ss": {"SS": []}}, ["SS must not be empty", "attribute 'ss'"]),
    "set with duplicate members": ({"pk": {"S": "d"}, "ns": {"NS": ["1", "2", "1"]}},
                                   ["holds duplicate members", "attribute 'ns'"]),
}


def snapshot_of(store: str) -> tuple:
    with Store(store) as st:
        snapshots = st.query("SELECT max(snapshot_id), count(*) FROM lake.snapshots()")[1][0]
        return list(st.dump("T")), st.status("T")["tables"][0]["build_id"], st.tables(), tuple(snapshots)


def refusals(tmp_path: Path, monkeypatch, summary: Path) -> list[str]:
    """Ingest the bad export over a good snapshot with each build path; returns both messages."""
    messages = []
    for build in ("python", "auto"):
        store = str(tmp_path / f"store-{build}")
        ingest_export(str(write(tmp_path / f"good-{build}", GOOD_ID, "DYNAMODB_JSON")), "T", "pk", store=store,
                      workers=1)
        before = snapshot_of(store)
        assert before[1] == GOOD_ID
        monkeypatch.setenv("DYNADEX_BUILD", build)
        with pytest.raises(DynadexError) as info:
            ingest_export(str(summary), "T", "pk", store=store, workers=1)
        monkeypatch.delenv("DYNADEX_BUILD")
        assert snapshot_of(store) == before  # nothing published, no snapshot taken
        messages.append(str(info.value))
    return messages


@pytest.mark.parametrize("fault", list(MANIFEST_FAULTS))
def test_manifest_fault_is_named_and_commits_nothing(tmp_path, monkeypatch, fault):
    inject, fragments = MANIFEST_FAULTS[fault]
    summary = write(tmp_path / "bad", BAD_ID, "DYNAMODB_JSON")
    inject(summary)
    python, duckdb = refusals(tmp_path, monkeypatch, summary)
    assert python == duckdb
    for fragment in fragments:
        assert fragment in python, python


@pytest.mark.parametrize("fmt", ["DYNAMODB_JSON", "ION"])
@pytest.mark.parametrize("fault", list(ITEM_FAULTS))
def test_bad_item_is_named_with_file_and_line_and_commits_nothing(tmp_path, monkeypatch, fault, fmt):
    item, fragments = ITEM_FAULTS[fault]
    summary = write(tmp_path / "bad", BAD_ID, fmt, bad_item=item)
    python, duckdb = refusals(tmp_path, monkeypatch, summary)
    assert python == duckdb
    assert f"{SECOND} line 3: " in python, python
    for fragment in fragments:
        assert fragment in python, python


def test_an_export_error_raised_in_a_builder_process_reaches_the_caller_whole():
    """Builds run in worker processes: their errors are pickled back, and must keep file, line and reason."""
    import pickle

    from dynadex.errors import MalformedLine

    err = pickle.loads(pickle.dumps(MalformedLine("s3://b/data/x.json.gz", "item has no key attribute 'pk'", 7)))
    assert type(err) is MalformedLine and str(err) == "s3://b/data/x.json.gz line 7: item has no key attribute 'pk'"
