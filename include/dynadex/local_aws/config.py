"""The emulator's knobs: AWS's values by default, turned down to seconds by tests.

Every knob is a flag of ``dynadex local-aws`` and an environment variable declared in ``dynadex.settings``
(group "emulator", ``DYNADEX_LOCAL_AWS_<NAME>``; the field's metadata names it), flags winning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from dynadex import settings


def _knob(setting: settings.Setting):
    """A knob whose default and environment variable are ``setting``'s."""
    return field(default=setting.default, metadata={"setting": setting})


@dataclass
class Knobs:
    export_seconds: float = _knob(settings.LOCAL_AWS_EXPORT_SECONDS)  # how long an export stays IN_PROGRESS
    export_files: int = _knob(settings.LOCAL_AWS_EXPORT_FILES)  # data files per export (by key hash; some empty)
    stream_shards: int = _knob(settings.LOCAL_AWS_STREAM_SHARDS)  # open shards per stream (items by key hash)
    rollover_records: int = _knob(settings.LOCAL_AWS_ROLLOVER_RECORDS)  # close a shard after this many records
    rollover_seconds: float = _knob(settings.LOCAL_AWS_ROLLOVER_SECONDS)  # close a shard after this age (~4 h)
    retention_seconds: float = _knob(settings.LOCAL_AWS_RETENTION_SECONDS)  # stream records live this long
    iterator_seconds: float = _knob(settings.LOCAL_AWS_ITERATOR_SECONDS)  # shard iterators expire after this
    min_incremental_seconds: float = _knob(settings.LOCAL_AWS_MIN_INCREMENTAL_SECONDS)  # shortest incremental window
    max_incremental_seconds: float = _knob(settings.LOCAL_AWS_MAX_INCREMENTAL_SECONDS)  # longest incremental window
    pitr_window_seconds: float = _knob(settings.LOCAL_AWS_PITR_WINDOW_SECONDS)  # how far back PITR reaches
    ttl_interval_seconds: float = _knob(settings.LOCAL_AWS_TTL_INTERVAL_SECONDS)  # how often the TTL sweeper runs
    streams_lane: int = _knob(settings.LOCAL_AWS_STREAMS_LANE)  # Streams' reads without moto's dispatch (0: moto)
    writes_lane: int = _knob(settings.LOCAL_AWS_WRITES_LANE)  # BatchWriteItem without moto's dispatch (0: moto)
    keep_alive: int = _knob(settings.LOCAL_AWS_KEEP_ALIVE)  # keep HTTP connections open (0: close after each)
    test_clock: int = _knob(settings.LOCAL_AWS_TEST_CLOCK)  # 1: tests may move its clock forward (clock.py)

    @staticmethod
    def setting(f) -> settings.Setting:
        """The declaration of knob field ``f``: its environment variable, type, default and documentation."""
        return f.metadata["setting"]

    @classmethod
    def from_env(cls, **overrides) -> "Knobs":
        values = {f.name: cls.setting(f).read() for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        knobs = cls(**values)
        knobs.export_files = int(knobs.export_files)
        knobs.stream_shards = int(knobs.stream_shards)
        knobs.rollover_records = int(knobs.rollover_records)
        knobs.streams_lane = int(knobs.streams_lane)
        knobs.writes_lane = int(knobs.writes_lane)
        knobs.keep_alive = int(knobs.keep_alive)
        knobs.test_clock = int(knobs.test_clock)
        return knobs

    def to_args(self) -> list[str]:
        out = []
        for f in fields(self):
            out += [f"--{f.name.replace('_', '-')}", str(getattr(self, f.name))]
        return out
