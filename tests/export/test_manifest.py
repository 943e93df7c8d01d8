"""Export reading and `dynadex inspect-export` on the genuine AWS export and on corrupted copies."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import subprocess
import sys

import pytest

from dynadex.cli import main
from dynadex.errors import (
    ChecksumMismatch,
    CorruptDataFile,
    ItemCountMismatch,
    MalformedLine,
    ManifestError,
    MissingFileError,
)
from dynadex.export import iter_records, read_export, verify_file
from dynadex.types import canonical_json
from tests.support.exports import GENUINE_DIR_KEY, GENUINE_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynadex.cli", *args], capture_output=True, text=True)


def test_genuine_export_reads_and_verifies():
    export = read_export(str(GENUINE_ROOT / GENUINE_DIR_KEY / "manifest-summary.json"))
    s = export.summary
    assert s.export_type == "FULL_EXPORT"  # the summary has no exportType field
    assert s.output_format == "DYNAMODB_JSON"
    assert s.export_time == "2024-05-14T11:14:20.608Z"
    assert s.export_id == "01715685260608-c488b4e1"
    assert s.table_name == "S3ExportTest"
    assert [f.key for f in export.files] == [
        f"{GENUINE_DIR_KEY}/data/uimbi7eofu2b5kzkxe63gsvb6i.json.gz"
    ]
    assert export.source.root == GENUINE_ROOT.resolve()
    records = list(iter_records(export, export.files[0]))
    assert {canonical_json(r.item) for r in records} >= {
        '{"baz":{"N":"0"},"id":{"S":"bar"}}',
        '{"bar":{"N":"42"},"id":{"S":"foo"}}',
    }
    assert verify_file(export, export.files[0]).items == 3


def test_inspect_export_cli_verifies_genuine_export():
    summary = GENUINE_ROOT / GENUINE_DIR_KEY / "manifest-summary.json"
    done = run_cli("inspect-export", str(summary))
    assert done.returncode == 0, done.stderr
    assert "arn:aws:dynamodb:eu-central-1:164221962816:table/S3ExportTest/export/01715685260608-c488b4e1" in done.stdout
    assert "FULL_EXPORT" in done.stdout and "DYNAMODB_JSON" in done.stdout
    assert "items       3" in done.stdout and "OK" in done.stdout
    doc = json.loads(run_cli("inspect-export", str(summary.parent), "--json").stdout)
    assert doc["itemCount"] == 3 and doc["files"] == 1 and doc["verified"] is True
    assert doc["bytes"] == 253


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]


def test_flipped_byte_is_an_md5_mismatch_naming_the_file(genuine_export):
    path = genuine_export.data_path()
    raw = path.read_bytes()
    path.write_bytes(_flip(raw, len(raw) - 12))  # inside the deflate stream
    with pytest.raises((ChecksumMismatch, CorruptDataFile)) as info:
        e = read_export(str(genuine_export.summary_path))
        verify_file(e, e.files[0])
    assert path.name in str(info.value)
    done = run_cli("inspect-export", str(genuine_export.summary_path))
    assert done.returncode == 1 and path.name in done.stderr


def test_flipped_byte_in_gzip_header_area_with_fixed_md5_is_corrupt_gzip(genuine_export):
    raw = genuine_export.data_path().read_bytes()
    genuine_export.replace_data(0, _flip(raw, 15), fix_count=False)
    e = read_export(str(genuine_export.summary_path))
    with pytest.raises((CorruptDataFile, MalformedLine)) as info:
        verify_file(e, e.files[0])
    assert genuine_export.data_path().name in str(info.value)


def test_truncated_gzip_is_named(genuine_export):
    raw = genuine_export.data_path().read_bytes()
    genuine_export.replace_data(0, raw[: len(raw) // 2], fix_count=False)
    e = read_export(str(genuine_export.summary_path))
    with pytest.raises(CorruptDataFile, match="truncated") as info:
        verify_file(e, e.files[0])
    assert genuine_export.data_path().name in str(info.value)


def test_wrong_item_count_in_files_manifest(genuine_export):
    lines = genuine_export.manifest_lines()
    lines[0]["itemCount"] = 4
    genuine_export.write_manifest_lines(lines)
    e = read_export(str(genuine_export.summary_path))  # which count is wrong is known once the file is read
    with pytest.raises(ItemCountMismatch, match="summary") as info:
        e.check_total()
    assert "manifest-files.json" in str(info.value)
    with pytest.raises(ItemCountMismatch, match="holds 3 items but the manifest says 4") as info:
        verify_file(e, e.files[0])
    done = run_cli("inspect-export", str(genuine_export.summary_path))
    assert done.returncode == 1 and genuine_export.data_path().name in done.stderr and "says 4" in done.stderr
    summary = genuine_export.summary()
    summary["itemCount"] = 4
    genuine_export.write_summary(summary)
    e = read_export(str(genuine_export.summary_path))
    with pytest.raises(ItemCountMismatch, match="holds 3 items but the manifest says 4") as info:
        verify_file(e, e.files[0])
    assert genuine_export.data_path().name in str(info.value)


def test_missing_data_file_is_named(genuine_export):
    path = genuine_export.data_path()
    path.unlink()
    with pytest.raises(MissingFileError) as info:  # refused when the files are stat'ed (planning)
        read_export(str(genuine_export.summary_path))
    assert path.name in str(info.value) and "listed in" in str(info.value)
    assert "manifest-files.json" in str(info.value)
    e = read_export(str(genuine_export.summary_path), stat_files=False)
    with pytest.raises(MissingFileError) as info:
        verify_file(e, e.files[0])
    assert path.name in str(info.value)
    done = run_cli("inspect-export", str(genuine_export.summary_path))
    assert done.returncode == 1 and path.name in done.stderr


def test_malformed_line_and_unknown_type_tag_name_file_and_line(genuine_export):
    good = gzip.decompress(genuine_export.data_path().read_bytes()).decode().splitlines()
    genuine_export.replace_data(0, gzip.compress(("\n".join([good[0], '{"Item":{"id":{"S":"x"}'] ) + "\n").encode()))
    e = read_export(str(genuine_export.summary_path))
    with pytest.raises(MalformedLine, match="line 2: not valid JSON"):
        verify_file(e, e.files[0])
    genuine_export.replace_data(0, gzip.compress((good[0] + '\n{"Item":{"id":{"S":"x"},"w":{"M":{"v":{"Z":"1"}}}}}\n').encode()))
    e = read_export(str(genuine_export.summary_path))
    with pytest.raises(MalformedLine) as info:
        verify_file(e, e.files[0])
    msg = str(info.value)
    assert "line 2" in msg and "unknown type tag 'Z'" in msg and "w.v" in msg
    assert genuine_export.data_path().name in msg


def test_missing_and_malformed_manifests(genuine_export):
    (genuine_export.dir / "manifest-files.json").unlink()
    with pytest.raises(ManifestError, match="manifest-files.json"):
        read_export(str(genuine_export.summary_path))
    genuine_export.summary_path.write_text("{not json")
    with pytest.raises(ManifestError, match="manifest-summary.json: not valid JSON"):
        read_export(str(genuine_export.summary_path))
    genuine_export.summary_path.unlink()
    done = run_cli("inspect-export", str(genuine_export.summary_path))
    assert done.returncode == 1 and "manifest-summary.json" in done.stderr


def test_summary_fields_are_checked(genuine_export):
    doc = genuine_export.summary()
    doc["outputFormat"] = "CSV"
    genuine_export.write_summary(doc)
    with pytest.raises(ManifestError, match="unknown outputFormat 'CSV'"):
        read_export(str(genuine_export.summary_path))
    doc["outputFormat"] = "DYNAMODB_JSON"
    del doc["exportArn"]
    genuine_export.write_summary(doc)
    with pytest.raises(ManifestError, match="'exportArn' is missing"):
        read_export(str(genuine_export.summary_path))


def test_sidecars_verify_when_present(genuine_export):
    summary_bytes = genuine_export.summary_path.read_bytes()
    files_bytes = (genuine_export.dir / "manifest-files.json").read_bytes()
    (genuine_export.dir / "manifest-summary.md5").write_text(hashlib.md5(summary_bytes).hexdigest())
    (genuine_export.dir / "manifest-files.checksum").write_text(base64.b64encode(hashlib.md5(files_bytes).digest()).decode())
    assert read_export(str(genuine_export.summary_path)).summary.item_count == 3
    (genuine_export.dir / "manifest-files.checksum").write_text("0" * 32)
    with pytest.raises(ChecksumMismatch, match="manifest-files.json: MD5 does not match its sidecar manifest-files.checksum"):
        read_export(str(genuine_export.summary_path))


def test_export_moved_out_of_its_bucket_layout_is_refused(tmp_path, genuine_export):
    moved = tmp_path / "elsewhere"
    genuine_export.dir.rename(moved)
    with pytest.raises(ManifestError, match="laid out as in its bucket"):
        read_export(str(moved / "manifest-summary.json"))


def test_incremental_export_lines(genuine_export):
    doc = genuine_export.summary()
    doc.update(exportType="INCREMENTAL_EXPORT", exportFromTime="2024-05-14T11:00:00Z", exportToTime="2024-05-14T11:15:00Z")
    del doc["exportTime"]
    genuine_export.write_summary(doc)
    lines = [
        {"Metadata": {"WriteTimestampMicros": {"N": "1715685000000001"}}, "Keys": {"id": {"S": "a"}},
         "NewImage": {"id": {"S": "a"}, "n": {"N": "1.50"}}, "OldImage": {"id": {"S": "a"}, "n": {"N": "1"}}},
        {"Metadata": {"WriteTimestampMicros": "1715685000000002"}, "Keys": {"id": {"S": "b"}}},
        {"Metadata": {"WriteTimestampMicros": 1715685000000003}, "Keys": {"id": {"S": "c"}}, "NewImage": {"id": {"S": "c"}}},
    ]
    genuine_export.replace_data(0, gzip.compress("".join(json.dumps(l) + "\n" for l in lines).encode()))
    e = read_export(str(genuine_export.summary_path))
    assert e.summary.export_type == "INCREMENTAL_EXPORT"
    recs = list(iter_records(e, e.files[0]))
    assert [r.write_micros for r in recs] == [1715685000000001, 1715685000000002, 1715685000000003]
    assert recs[0].item == {"id": {"S": "a"}, "n": {"N": "1.5"}}
    assert recs[1].item is None and recs[1].keys == {"id": {"S": "b"}}
    done = run_cli("inspect-export", str(genuine_export.summary_path))
    assert done.returncode == 0 and "INCREMENTAL_EXPORT" in done.stdout and "2024-05-14T11:15:00Z" in done.stdout


def test_ion_export(genuine_export):
    doc = genuine_export.summary()
    doc["outputFormat"] = "ION"
    genuine_export.write_summary(doc)
    ion = '$ion_1_0 {Item:{id:"a",n:12.50,s:$dynamodb_SS::["y","x"]}}\n$ion_1_0 {Item:{id:"b",blob:{{aGk=}}}}\n'
    genuine_export.replace_data(0, gzip.compress(ion.encode()))
    e = read_export(str(genuine_export.summary_path))
    recs = [canonical_json(r.item) for r in iter_records(e, e.files[0])]
    assert recs == ['{"id":{"S":"a"},"n":{"N":"12.5"},"s":{"SS":["x","y"]}}', '{"blob":{"B":"aGk="},"id":{"S":"b"}}']


def test_usage_errors_exit_2():
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("inspect-export").returncode == 2
    assert run_cli().returncode == 2
    with pytest.raises(SystemExit) as info:
        main(["inspect-export", "x", "--bogus"])
    assert info.value.code == 2
