"""Names of mapped task instances in the UI, rendered from the mapped argument itself.

``map_index_template="{{ task.op_kwargs['spec'] | dynadex_chunk_label }}"``
renders when the task instance is prepared, before its body runs, from the
chunk spec it was mapped over: so the label is there in every state the
instance reaches once it has started (running, failed, up_for_retry,
success), even when the body fails on its first line. (Before a first start,
Airflow renders no template at all: the UI shows the index.)
"""

from __future__ import annotations


def chunk_label(spec) -> str:
    from dynadex.store.bulk.plan import ChunkSpec

    try:
        return ChunkSpec.from_dict(dict(spec)).label()
    except Exception:  # a spec that does not parse fails the task itself, with its own message
        return f"chunk {spec.get('chunk_id', '?') if isinstance(spec, dict) else '?'}"


FILTERS = {"dynadex_chunk_label": chunk_label}
CHUNK_TEMPLATE = "{{ task.op_kwargs['spec'] | dynadex_chunk_label }}"
JOB_TEMPLATE = "{{ task.op_kwargs['job']['label'] }}"  # a check job carries its label (prepare_publish)
SYNC_GROUP_TEMPLATE = "{{ task.sync_group['label'] }}"  # a sync group carries its label (SyncGroup)
