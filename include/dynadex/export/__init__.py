"""Reading DynamoDB exports to S3: manifests, data files, records.

``read_export`` checks both manifests; ``iter_records`` streams one data file
and verifies it at its end. Everything here works without Airflow.
"""

from dynadex.export.manifest import DataFile, Export, ExportSummary, read_export
from dynadex.export.reader import FileStats, iter_lines, iter_records, verify_file
from dynadex.export.records import Record

__all__ = [
    "DataFile",
    "Export",
    "ExportSummary",
    "FileStats",
    "Record",
    "iter_lines",
    "iter_records",
    "read_export",
    "verify_file",
]
