"""The bulk room: from an export's data files to one published snapshot.

Path of one load: ``plan`` splits the export's files into balanced chunks;
``build`` (``fastbuild`` in DuckDB, ``chunk_writer`` in exact Python) writes
each chunk's final files (``chunk_files``) into a fresh attempt folder
(``staging``) and its ``chunk_manifest`` last; ``prepare`` and ``range_merge``
check and merge key ranges; ``publish`` registers every file in one metadata
transaction. Invariant: a chunk re-run never touches a file a snapshot reads.
"""
