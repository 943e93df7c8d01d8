"""How dynadex reaches AWS (or the emulator): one explicit object, handed to what needs it.

Invariants:

* Credentials travel as an ``AwsCredentials`` value (built from an Airflow
  connection, a boto3 session, or, for the command line only, the usual
  ``AWS_*`` environment): nothing here writes to ``os.environ``.
* The secret key and session token never appear in ``repr``, ``str``,
  ``to_dict``, an error message or the DuckDB error it chains (kept
  scrubbed: ``errors.scrubbed_causes``); ``to_dict`` is what may be logged.
* DuckDB receives them as a temporary secret (``CREATE SECRET``, kept in the
  connection's memory, never persisted); pyarrow as S3 filesystem options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from dynadex.errors import CredentialsError, scrubbed_causes

DEFAULT_REGION = "us-east-1"
SECRET_NAME = "dynadex_s3"


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str | None = None
    """Access key id; None means "use the default credential chain" (instance profile, SSO, ...)."""
    secret_key: str | None = field(default=None, repr=False)
    """Secret access key (never shown)."""
    session_token: str | None = field(default=None, repr=False)
    """Session token of temporary credentials (never shown)."""
    region: str = DEFAULT_REGION
    """Region of the S3 bucket holding the store's data."""
    endpoint_url: str | None = None
    """S3 endpoint, e.g. the bundled emulator's ``http://127.0.0.1:PORT``; None for AWS itself."""

    @classmethod
    def from_environment(cls, env=None) -> "AwsCredentials":
        """The usual AWS environment, for the command line (Airflow tasks build theirs from a connection)."""
        env = os.environ if env is None else env
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        return cls(
            access_key=key if key and secret else None,
            secret_key=secret if key and secret else None,
            session_token=(env.get("AWS_SESSION_TOKEN") or None) if key and secret else None,
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or DEFAULT_REGION,
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        )

    @classmethod
    def from_boto3_session(cls, session, *, region: str | None = None, endpoint_url: str | None = None) -> "AwsCredentials":
        """Frozen credentials of a boto3 (or Airflow hook's) session: what it would sign requests with now."""
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        return cls(
            access_key=frozen.access_key if frozen and frozen.access_key else None,
            secret_key=frozen.secret_key if frozen and frozen.access_key else None,
            session_token=(frozen.token or None) if frozen and frozen.access_key else None,
            region=region or session.region_name or DEFAULT_REGION,
            endpoint_url=endpoint_url or None,
        )

    def to_dict(self) -> dict:
        """What may be shown: everything but the secret key and token."""
        return {"access_key": self.access_key, "region": self.region, "endpoint_url": self.endpoint_url,
                "has_secret": self.secret_key is not None, "has_session_token": self.session_token is not None}

    def __str__(self) -> str:
        return f"AwsCredentials({self.to_dict()})"

    # ------------------------------------------------------------ consumers
    def duckdb_secret(self, con) -> None:
        """Create the connection's temporary S3 secret (httpfs), replacing any before."""
        from dynadex.store.layout.names import literal

        parts = ["TYPE s3"]
        if self.access_key:
            parts += [f"KEY_ID {literal(self.access_key)}", f"SECRET {literal(self.secret_key or '')}"]
            if self.session_token:
                parts.append(f"SESSION_TOKEN {literal(self.session_token)}")
        else:
            parts.append("PROVIDER credential_chain")
        parts.append(f"REGION {literal(self.region)}")
        if self.endpoint_url:
            url = urlparse(self.endpoint_url)
            parts += [f"ENDPOINT {literal(url.netloc)}", "URL_STYLE 'path'",
                      f"USE_SSL {'true' if url.scheme == 'https' else 'false'}"]
        with scrubbed_causes(self._scrub):  # DuckDB's error may quote the statement: the cause is kept scrubbed
            try:
                con.execute("LOAD httpfs")
                con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({', '.join(parts)})")
            except Exception as exc:
                raise CredentialsError(f"could not give DuckDB the S3 settings {self.to_dict()}: "
                                       f"{self._reason(exc)}") from exc

    def _scrub(self, exc: BaseException) -> str:
        """``exc``'s text without the secret key or token. A parser error quotes the statement where it
        stopped, which can be inside the key (a character SQL text cannot hold cuts it short, so the whole
        value never appears to be replaced): its text is withheld entirely."""
        if type(exc).__name__ == "ParserException":
            return ("Parser Error: the secret statement did not parse (DuckDB's text withheld: it quotes the "
                    "statement, secret included)")
        text = str(exc)
        for value in (self.secret_key, self.session_token):
            if value:
                text = text.replace(value.replace("'", "''"), "***").replace(value, "***")  # as quoted, as given
        return text

    def _reason(self, exc: Exception) -> str:
        if type(exc).__name__ == "ParserException":
            return "the secret statement did not parse (a value holds a character SQL text cannot)"
        text = self._scrub(exc).strip()
        text = text.splitlines()[0] if text else type(exc).__name__
        if not self.access_key:
            text += " (no access key given: DuckDB looked for credentials in its default chain)"
        return text

    def arrow_s3_options(self) -> dict:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem``."""
        options: dict = {"region": self.region}
        if self.endpoint_url:
            url = urlparse(self.endpoint_url)
            options.update(endpoint_override=url.netloc, scheme=url.scheme)
        if self.access_key:
            options.update(access_key=self.access_key, secret_key=self.secret_key, session_token=self.session_token)
        return options
