"""Row-group sizes of each index's files, and the Parquet options every writer uses.

Invariant: a file of the row index is cut in groups of ``ROW_GROUP_ROWS`` rows
and one of the inverted index in groups of ``ENTRY_GROUP_ROWS`` entries,
whoever writes it (a chunk build, a range merge, a fold, DuckLake's own
merges through ``Lake._tune``), so a point read opens one small group of
each file it cannot prune. Chunk files use ``CHUNK_ROW_GROUP_ROWS``.
"""

from __future__ import annotations

ROW_GROUP_ROWS = 4096  # a point lookup reads one small group of the (one) file holding its key
ENTRY_GROUP_ROWS = 16384  # a find reads one group of entries per file it opens
# a stream batch's column-index delete reads one group per key (decision 0026); 16 384 rows scan as fast as
# DuckDB's default 122 880 (4 096 took twice as long: bench_store's GROUP BY)
COLUMN_GROUP_ROWS = 16384
PARQUET = "FORMAT parquet, COMPRESSION zstd"
CHUNK_ROW_GROUP_ROWS = 4096  # a chunk's own row file, before any merge
