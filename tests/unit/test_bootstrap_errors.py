"""Which bootstrap errors are deterministic (fail the task at once) and which are transient (retried)."""

from __future__ import annotations


def test_a_throttled_export_request_is_not_a_refusal():
    """start_export turns AWS refusals into BootstrapError (no retry) but lets throttling through (retried)."""
    import pytest
    from botocore.exceptions import ClientError

    from dynadex import bootstrap

    info = bootstrap.TableInfo("T", "arn:aws:dynamodb:us-east-1:1:table/T", ("pk",), ("S",), "arn:s", "NEW_IMAGE", 0)

    class Ddb:
        def __init__(self, code, status):
            self.code, self.status = code, status

        def export_table_to_point_in_time(self, **kw):
            raise ClientError({"Error": {"Code": self.code, "Message": "m"},
                               "ResponseMetadata": {"HTTPStatusCode": self.status}}, "ExportTableToPointInTime")

    kw = dict(bucket="b12", prefix="p", export_format="DYNAMODB_JSON", export_time=1.0, token="t")
    with pytest.raises(bootstrap.BootstrapError, match="refused by AWS: PointInTimeRecoveryUnavailableException"):
        bootstrap.start_export(Ddb("PointInTimeRecoveryUnavailableException", 400), info, **kw)
    for code, status in (("LimitExceededException", 400), ("InternalServerError", 500)):
        with pytest.raises(ClientError):
            bootstrap.start_export(Ddb(code, status), info, **kw)
