"""`dynadex status` lag: how far behind the table the index is as the sync last saw it, not time since the last change."""

from __future__ import annotations

import time

from dynadex.cli import main
from dynadex.store import Change, Checkpoint, PublishSpec, Store
from dynadex.types import canonical_item


def published(store_dir, *, stream=True):
    now = int(time.time() * 1e6)
    with Store(str(store_dir), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "bulk")
        w.finish()
        st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), export_time_micros=now - 300_000_000,
                               stream_arn="arn:aws:dynamodb:us-east-1:1:table/T/stream/x" if stream else None,
                               stream_start_micros=now - 300_000_000))
    return now


def table_status(store_dir):
    with Store(str(store_dir)) as st:
        return st.status("T")["tables"][0]


def test_lag_is_zero_when_a_pass_found_every_shard_at_its_tip_even_long_after_the_last_change(tmp_path):
    now = published(tmp_path)
    with Store(str(tmp_path), read_only=False) as st:
        old = now - 120_000_000  # the table last changed two minutes ago
        st.apply("T", [Change({"pk": {"S": "b"}}, canonical_item({"pk": {"S": "b"}}), old, "stream:s:1")],
                 [Checkpoint("s", "1")])
        behind = table_status(tmp_path)
        assert behind["lag_seconds"] >= 119  # applied just now, a change two minutes old: that far behind
        st.note_caught_up("T", int(time.time() * 1e6))  # then a pass found every shard at its tip
    t = table_status(tmp_path)
    assert t["lag_seconds"] == 0
    assert t["checked_seconds_ago"] < 60 and t["checked_at"]
    assert t["last_change_at"]  # when the last change landed is reported separately


def test_no_lag_without_a_stream(tmp_path):
    published(tmp_path, stream=False)
    assert table_status(tmp_path)["lag_seconds"] is None


def test_cli_status_says_what_the_lag_means(tmp_path, capsys):
    published(tmp_path)
    with Store(str(tmp_path), read_only=False) as st:
        st.note_caught_up("T", int(time.time() * 1e6))
    assert main(["status", "T", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lag        0.000 s behind the table" in out and "every shard was read to its tip" in out
    assert "last change applied" in out
