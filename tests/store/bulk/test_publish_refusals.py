"""A publish refuses what is missing or wrong, and changes nothing when it does."""

from __future__ import annotations

import json

import pytest

from dynadex.store import PublishSpec, Store
from dynadex.store.errors import PublishRefused
from dynadex.types import canonical_item
from tests.support.store import publish_items


def test_publish_refuses_and_changes_nothing(tmp_path):
    publish_items(tmp_path, "T", [{"pk": {"S": "old"}}], build="b0")
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.finish()
        with pytest.raises(PublishRefused, match="chunk\\(s\\) not built: c1"):
            st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",)))
        with pytest.raises(PublishRefused, match="c0 holds 1 items, expected 2"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), expected_items={"c0": 2}))
        with pytest.raises(PublishRefused, match="the export has 5"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",), total_items=5))
        w = st.chunk_writer("T", "b1", "c1", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.finish()
        with pytest.raises(PublishRefused, match="appears 2 times"):
            st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",)))
        assert [json.loads(i)["pk"] for i in st.dump("T")] == [{"S": "old"}]
        # a chunk re-run replaces its segment: c1 now holds another key, publish succeeds
        w = st.chunk_writer("T", "b1", "c1", ("pk",), ("S",))
        w.add(canonical_item({"pk": {"S": "b"}}), 1, "t")
        w.finish()
        assert st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",), total_items=2))["published"]
        assert [json.loads(i)["pk"]["S"] for i in st.dump("T")] == ["a", "b"]
        again = st.publish(PublishSpec("T", "b1", ["c0", "c1"], ("pk",), ("S",), total_items=2))
        assert again == {"published": False, "reason": "already published", "build_id": "b1"}
        assert st.query("SELECT count(*) FROM row_index.T")[1] == [(2,)]


def test_segment_without_manifest_is_not_published(tmp_path):
    with Store(str(tmp_path), read_only=False) as st:
        w = st.chunk_writer("T", "b1", "c0", ("pk",), ("S",), part_items=1)
        w.add(canonical_item({"pk": {"S": "a"}}), 1, "t")
        w.add(canonical_item({"pk": {"S": "b"}}), 1, "t")  # flushed a part, then "crashed"
        with pytest.raises(PublishRefused, match="not built: c0"):
            st.publish(PublishSpec("T", "b1", ["c0"], ("pk",), ("S",)))
