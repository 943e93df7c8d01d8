"""A wrapped failure keeps its cause, and no cause carries a credential (issue 28).

Real faults, no network: a SQLite catalog that is a folder, an S3 endpoint and a Postgres catalog on a
closed local port, a secret DuckDB cannot parse. Each dynadex error must chain the DuckDB, botocore or OS
error behind it (``raise ... from exc``), and where that error quotes a password or a key, the chain holds a
scrubbed copy: neither ``str`` of anything down ``__cause__``/``__context__`` nor the formatted traceback
(what Airflow's task log shows) holds the secret.
"""

from __future__ import annotations

import ast
import json
import socket
import traceback

import duckdb
import pytest

from tests.support.paths import REPO

ROOT = REPO
PASSWORD = "Hunter2-kept-causes"


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it chains, through ``__cause__`` and ``__context__``, each once."""
    out, todo = [], [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__]
    return out


def assert_hidden(exc: BaseException, *secrets: str) -> str:
    """No secret in any ``str`` down the chain nor in the formatted traceback; that traceback, returned."""
    shown = "".join(traceback.format_exception(exc))
    for secret in secrets:
        assert secret not in shown, shown
        for e in chain(exc):
            assert secret not in str(e) and secret not in repr(e), (type(e), str(e))
    return shown


# ------------------------------------------------------------------ the store's catalog (DuckDB)


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_catalog_that_cannot_open_keeps_duckdbs_error(tmp_path, read_only):
    from dynadex.store import Store
    from dynadex.store.errors import StoreError

    (tmp_path / "catalog.sqlite").mkdir()  # a folder where the SQLite file should be
    with pytest.raises(StoreError, match=f"cannot open store {tmp_path}: .*catalog.sqlite") as err:
        Store(str(tmp_path), read_only=read_only)
    cause = err.value.__cause__
    assert isinstance(cause, duckdb.Error) and "catalog.sqlite" in str(cause)
    assert cause.__traceback__ is not None  # where DuckDB failed: the ATTACH
    shown = "".join(traceback.format_exception(err.value))
    assert "The above exception was the direct cause" in shown and "ATTACH" in shown


@pytest.mark.parametrize("spec", [
    "postgresql://dynadex:{pw}@127.0.0.1:{port}/dynadex",
    "postgres:dbname=dynadex host=127.0.0.1 port={port} user=dynadex password={pw}",
    "postgres:dbname=dynadex host=127.0.0.1 port={port} user=dynadex password='{pw} with spaces'",
], ids=["uri", "key-value", "quoted"])
def test_a_postgres_catalog_that_refuses_keeps_the_cause_without_its_password(tmp_path, spec):
    from dynadex.store import Store
    from dynadex.store.errors import StoreError
    from dynadex_airflow.failures import fail_fast

    spec = spec.format(pw=PASSWORD, port=closed_port())
    with pytest.raises(StoreError) as err:
        Store(spec, data_path=str(tmp_path / "data"), read_only=False)
    exc = err.value
    cause = exc.__cause__
    assert isinstance(cause, duckdb.Error)  # DuckDB's own type, scrubbed
    assert "Connection refused" in str(cause) and "***" in str(exc)  # what failed is kept, the password not
    shown = assert_hidden(exc, PASSWORD, "with spaces")
    assert "Connection refused" in shown and "***" in shown

    # what an Airflow task logs: fail_fast chains its AirflowFailException from the StoreError
    @fail_fast
    def task():
        Store(spec, data_path=str(tmp_path / "data"), read_only=False)

    with pytest.raises(Exception) as failed:
        task()
    assert failed.value.__cause__.__cause__ is not None
    assert_hidden(failed.value, PASSWORD, "with spaces")


def test_a_secret_duckdb_cannot_parse_keeps_a_cause_withholding_the_statement():
    from dynadex.credentials import AwsCredentials
    from dynadex.errors import CredentialsError
    from dynadex.store.catalog.extensions import connect

    secret = "PLANTED-wJalrXUtnFEMI-K7MDENG"
    bad = AwsCredentials("AKIAKEPT", secret + "\x00", "PLANTED-TOKEN-FwoGZX", "eu-west-1", None)
    with pytest.raises(CredentialsError, match="AKIAKEPT.*did not parse") as err:
        bad.duckdb_secret(connect())
    cause = err.value.__cause__
    assert type(cause).__name__ == "ParserException" and isinstance(cause, duckdb.Error)
    # DuckDB's text quotes the statement cut short inside the key: none of it may survive, not even a part
    assert_hidden(err.value, secret[:12], "FEMI", "PLANTED-TOKEN")


def test_a_secret_duckdb_refuses_keeps_duckdbs_words_without_the_key():
    from dynadex.credentials import AwsCredentials

    secret = "PLANTED-it's-a-key"
    creds = AwsCredentials("AKIAKEPT", secret, None, "eu-west-1", None)
    cause = duckdb.InvalidInputException(f"bad value in SECRET '{secret.replace(chr(39), chr(39) * 2)}' or {secret}")
    text = creds._scrub(cause)
    assert "PLANTED" not in text and text.startswith("bad value in SECRET '***' or ***")


# ------------------------------------------------------------------ exports (botocore, OS)


def test_an_s3_endpoint_that_refuses_gives_s3unavailable_caused_by_botocore():
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    from dynadex.errors import S3Unavailable
    from dynadex.export.source import S3Source

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{closed_port()}", region_name="us-east-1",
                          aws_access_key_id="AKIAKEPT", aws_secret_access_key="PLANTED-s3-secret",
                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=2))
    with pytest.raises(S3Unavailable, match="s3://exports/AWSDynamoDB/x/manifest-summary.json") as err:
        S3Source("exports", client).read("AWSDynamoDB/x/manifest-summary.json")
    assert isinstance(err.value.__cause__, EndpointConnectionError)
    assert err.value.transient
    assert_hidden(err.value, "PLANTED-s3-secret")


def test_an_s3_refusal_keeps_awss_answer():
    import boto3
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    from dynadex.errors import MissingFileError, S3Unavailable
    from dynadex.export.source import S3Source

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "NoSuchKey", "The specified key does not exist.", 404)
        stub.add_client_error("get_object", "SlowDown", "Please reduce your request rate.", 503)
        with pytest.raises(MissingFileError, match="object not found") as missing:
            S3Source("exports", client).read("k")
        with pytest.raises(S3Unavailable, match="SlowDown") as slow:
            S3Source("exports", client).read("k")
    for err in (missing, slow):
        assert isinstance(err.value.__cause__, ClientError)


def test_export_files_keep_the_os_and_parser_errors(tmp_path):
    from dynadex.errors import ManifestError, MissingFileError
    from dynadex.export.manifest import parse_files, parse_summary
    from dynadex.export.source import LocalSource

    with pytest.raises(MissingFileError, match="file not found") as missing:
        LocalSource(tmp_path).open("AWSDynamoDB/x/data/a.json.gz")
    assert isinstance(missing.value.__cause__, FileNotFoundError)
    with pytest.raises(ManifestError, match="not valid JSON") as summary:
        parse_summary(b"{", "s3://b/manifest-summary.json")
    assert isinstance(summary.value.__cause__, json.JSONDecodeError)
    with pytest.raises(ManifestError, match="not UTF-8") as files:
        parse_files(b"\xff\xfe", "s3://b/manifest-files.json")
    assert isinstance(files.value.__cause__, UnicodeDecodeError)


def test_a_bad_nested_value_names_its_full_path_and_keeps_only_the_real_cause():
    import binascii

    from dynadex.errors import AttributeValueError
    from dynadex.types import canonical

    with pytest.raises(AttributeValueError, match=r"at attribute 'a\.b\[1\]'") as err:
        canonical({"M": {"a": {"M": {"b": {"L": [{"S": "x"}, {"B": "not base64!"}]}}}}})
    assert isinstance(err.value.__cause__, binascii.Error)  # not the shorter-path copies of itself, one a level
    shown = "".join(traceback.format_exception(err.value))
    assert "binascii.Error" in shown and shown.count("AttributeValueError:") == 1 and "During handling" not in shown
    with pytest.raises(AttributeValueError, match=r"at attribute 'a\[0\]'") as err:  # no cause below it: none
        canonical({"M": {"a": {"L": [{"N": "x"}]}}})
    shown = "".join(traceback.format_exception(err.value))
    assert err.value.__cause__ is None and shown.count("AttributeValueError:") == 1 and "direct cause" not in shown


def test_a_query_that_does_not_parse_keeps_duckdbs_error():
    from dynadex.store.errors import QueryError
    from dynadex.store.reads import check_read_only

    with pytest.raises(QueryError, match="query does not parse") as err:
        check_read_only(duckdb.connect(), "SELEC 1")
    assert isinstance(err.value.__cause__, duckdb.ParserException)


# ------------------------------------------------------------------ the helper


def test_scrubbed_copies_keep_type_traceback_and_chain_without_the_secret():
    from botocore.exceptions import EndpointConnectionError

    from dynadex.errors import ScrubbedCause, scrubbed, scrubbed_causes

    secret = "s3" + "cret"  # never written whole here: a traceback shows the source lines it passes

    def clean(e):
        return str(e).replace(secret, "***")

    class Wrapped(Exception):
        pass

    def fail():
        try:
            try:
                raise OSError(f"socket {secret}")
            except OSError as inner:
                raise EndpointConnectionError(endpoint_url=f"http://u:{secret}@h/") from inner
        except EndpointConnectionError as exc:
            raise duckdb.IOException(f"attach {secret}") from exc

    with pytest.raises(Wrapped) as err:
        with scrubbed_causes(clean):
            try:
                fail()
            except duckdb.Error as exc:
                raise Wrapped("cannot open") from exc
    io = err.value.__cause__
    assert type(io) is duckdb.IOException and str(io) == "attach ***" and io.__traceback__ is not None
    assert err.value.__context__ is io and err.value.__suppress_context__
    boto = io.__cause__  # botocore's errors take keywords, not a message: the stand-in names the type
    assert type(boto) is ScrubbedCause and "botocore.exceptions.EndpointConnectionError" in str(boto)
    assert type(boto.__cause__) is OSError and str(boto.__cause__) == "socket ***"
    assert_hidden(err.value, secret)
    # a cycle in the chain ends
    a, b = ValueError(f"a {secret}"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert str(scrubbed(a, clean).__context__.__context__) == "a ***"


# ------------------------------------------------------------------ the rule, in the source


def test_no_cause_is_dropped_without_a_reason():
    """``raise ... from None`` hides the error behind a failure; where that is meant (a cause that cannot be
    scrubbed), the raise carries a ``# secret:`` comment saying why. Today there is none."""
    dropped = []
    for folder in ("include", "plugins", "dags"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines), str(path))):
                if isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant) and node.cause.value is None:
                    if not any("# secret:" in line for line in lines[node.lineno - 1:node.end_lineno]):
                        dropped.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not dropped, "raise from the cause (scrubbed_causes where it may hold a secret):\n" + "\n".join(dropped)


def _catalog_gone(*_args, **_kwargs):
    """What DuckDB raises when a Postgres catalog's server goes away mid-session (seen with a real server
    stopped under an open store): its message quotes the connection string, password included."""
    try:
        raise ConnectionRefusedError("connection refused")
    except ConnectionRefusedError:
        raise duckdb.IOException(f'IO Error: Unable to connect to Postgres at "postgresql://dynadex:{PASSWORD}'
                                 f'@127.0.0.1:{closed_port()}/dynadex": Connection refused') from None


def test_the_cli_shows_no_password_of_an_error_met_mid_session(monkeypatch, capsys):
    """The CLI's last word on an unexpected error is its traceback: it shows a scrubbed copy, same type."""
    from dynadex import cli

    real = cli.build_parser

    def parser_with_a_failing_status():
        parser = real()
        parser._subparsers._group_actions[0].choices["status"].set_defaults(func=_catalog_gone)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_a_failing_status)
    with pytest.raises(duckdb.IOException) as info:
        cli.main(["status"])
    shown = "".join(traceback.format_exception(info.value))
    assert "***" in shown and "Unable to connect to Postgres" in shown
    assert PASSWORD not in shown + capsys.readouterr().err
    assert all(PASSWORD not in str(e) for e in chain(info.value))


def test_an_airflow_task_logs_no_password_and_keeps_its_retries():
    """``fail_fast``: a transient error stays of its type (Airflow's retries apply) and a deterministic one
    fails the task; neither carries the password into the task log."""
    pytest.importorskip("airflow")
    from airflow.sdk.exceptions import AirflowFailException

    from dynadex.store.errors import StoreError
    from dynadex_airflow.failures import fail_fast

    with pytest.raises(duckdb.IOException) as transient:
        fail_fast(_catalog_gone)()

    def refused():
        try:
            _catalog_gone()
        except duckdb.IOException as exc:
            raise StoreError(f"the store is unreachable: {exc}") from exc

    with pytest.raises(AirflowFailException) as deterministic:
        fail_fast(refused)()
    for exc in (transient.value, deterministic.value):
        shown = "".join(traceback.format_exception(exc))
        assert PASSWORD not in shown and "***" in shown
        assert all(PASSWORD not in str(e) for e in chain(exc))
