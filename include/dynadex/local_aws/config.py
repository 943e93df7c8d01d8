"""The emulator's knobs: AWS's values by default, turned down to seconds by tests.

Every knob is a flag of ``dynadex local-aws`` and an environment variable
``DYNADEX_LOCAL_AWS_<NAME>`` (upper case), flags winning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass
class Knobs:
    export_seconds: float = 5.0  # how long an export stays IN_PROGRESS
    export_files: int = 4  # data files per export (partitions by key hash; some may be empty)
    stream_shards: int = 4  # open shards per stream (items spread by key hash)
    rollover_records: int = 0  # close a shard after this many records (0: never by count)
    rollover_seconds: float = 4 * 3600.0  # close a shard after this age (AWS: about 4 h)
    retention_seconds: float = 24 * 3600.0  # stream records live this long
    iterator_seconds: float = 15 * 60.0  # shard iterators expire after this
    min_incremental_seconds: float = 15 * 60.0  # shortest incremental export window
    max_incremental_seconds: float = 24 * 3600.0  # longest incremental export window
    pitr_window_seconds: float = 35 * 86400.0  # how far back PITR reaches
    ttl_interval_seconds: float = 10.0  # how often the TTL sweeper runs
    streams_lane: int = 1  # answer DynamoDB Streams' reads without moto's dispatch (0: through moto, as before)
    keep_alive: int = 1  # keep HTTP connections open between requests, as AWS does (0: close after each answer)
    test_clock: int = 0  # 1: tests may move its clock forward (POST /_dynadex/clock, clock.py); not for deployments

    @classmethod
    def from_env(cls, **overrides) -> "Knobs":
        values = {}
        for f in fields(cls):
            env = os.environ.get(f"DYNADEX_LOCAL_AWS_{f.name.upper()}")
            if env is not None:
                values[f.name] = type(f.default)(float(env)) if f.type in ("int", int) else float(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        knobs = cls(**values)
        knobs.export_files = int(knobs.export_files)
        knobs.stream_shards = int(knobs.stream_shards)
        knobs.rollover_records = int(knobs.rollover_records)
        knobs.streams_lane = int(knobs.streams_lane)
        knobs.keep_alive = int(knobs.keep_alive)
        knobs.test_clock = int(knobs.test_clock)
        return knobs

    def to_args(self) -> list[str]:
        out = []
        for f in fields(self):
            out += [f"--{f.name.replace('_', '-')}", str(getattr(self, f.name))]
        return out
