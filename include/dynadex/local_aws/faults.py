"""Fault injection for the emulator, declared as data: "answer the next N requests of operation X with S/C".

A test (or an operator trying a failure drill) posts rules to the control
endpoint ``/_dynadex/faults`` of a running emulator (``FaultControl`` is the
client); each rule names an operation (``GetObject``, ``PutObject``,
``GetRecords``, ``DescribeStream``, ``ExportTableToPointInTime``,
``DescribeExport``, ... or ``*``), optionally an S3 key substring, and
either an error to answer (HTTP status + AWS error code) or an outage (the
connection is dropped and the server stops listening for some seconds).

Invariants:

* Errors go out in AWS's own wire formats, so botocore parses and retries
  them exactly as it would AWS's: S3 an XML ``<Error><Code>`` body (no body
  for HEAD), DynamoDB and DynamoDB Streams a JSON body whose ``__type`` is
  ``com.amazonaws.dynamodb.v20120810#<Code>``, with a request id header.
* A faulted request never reaches moto: nothing it asked for happens (no
  write, no read, no iterator handed out), as when AWS refuses a request;
  except with ``lost_reply``, where it is carried out and only its answer is
  replaced by the error (the reply lost on the way: what a client's retry
  must survive, e.g. by its ClientToken).
* Rules fire in the order they were posted; ``after`` lets that many
  matching requests through first; ``count`` requests are faulted, then the
  rule is spent (``count`` -1: until cleared). Every request is counted by
  operation (``seen``) and every faulted one too (``fired``), so a test can
  tell how many retries a client made.
* During an outage the listening socket is closed (new connections are
  refused) and any request that still arrives on a kept-alive connection
  has its connection shut without an answer; the moto state survives, and
  the server listens again on the same port when the outage ends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

CONTROL_PATH = "/_dynadex/faults"

# AWS's status and message for each error code a rule may name without giving them
KNOWN = {
    "SlowDown": (503, "Please reduce your request rate."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "LimitExceededException": (400, "Rate exceeded"),
    "ThrottlingException": (400, "Rate of requests exceeds the allowed throughput."),
    "ProvisionedThroughputExceededException": (400, "The level of configured provisioned throughput for the table "
                                                    "was exceeded. Consider increasing your provisioning level with "
                                                    "the UpdateTable API."),
    "RequestLimitExceeded": (400, "Throughput exceeds the current throughput limit for your account."),
    "InternalServerError": (500, "Internal server error"),
}
def status_line(status: int) -> str:
    """``"400 Bad Request"``: the status and its standard reason phrase, for any answer the emulator makes."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


@dataclass
class Fault:
    """One rule. ``operation`` is the API's name (``*``: any); ``key`` narrows S3 rules to keys holding it."""

    operation: str
    code: str = "InternalError"
    status: int | None = None  # default: AWS's status for ``code`` (KNOWN), else 500
    message: str | None = None
    count: int = 1  # faulted requests, then spent; -1: until cleared
    after: int = 0  # matching requests let through before the first fault
    key: str | None = None
    outage_seconds: float = 0.0  # > 0: drop the connection and stop listening this long (no error answer)
    lost_reply: bool = False  # the request IS carried out, then its answer replaced by the error (a lost reply)

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = KNOWN.get(self.code, (500, ""))[0]
        if self.message is None:
            self.message = KNOWN.get(self.code, (0, self.code))[1]

    @classmethod
    def from_dict(cls, d: dict) -> "Fault":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown or "operation" not in d:
            raise ValueError(f"a fault needs 'operation' and takes only {sorted(cls.__dataclass_fields__)}; "
                             f"got {sorted(d)}")
        return cls(**d)


@dataclass(frozen=True)
class Request:
    service: str  # "s3", "dynamodb" or "streams"
    operation: str
    key: str | None = None  # S3 object key


def classify(environ: dict) -> Request:
    """The AWS operation an HTTP request asks for (DynamoDB and Streams by X-Amz-Target, S3 by method and path)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, op = target.partition(".")
        return Request("streams" if prefix.startswith("DynamoDBStreams") else "dynamodb", op)
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/").lstrip("/")
    bucket, _, key = path.partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if key:
        if method == "GET":
            op = "ListParts" if "uploadId" in query else "GetObject"
        elif method == "PUT":
            op = ("UploadPart" if "partNumber" in query else
                  "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject")
        elif method == "HEAD":
            op = "HeadObject"
        elif method == "DELETE":
            op = "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        elif method == "POST":
            op = "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        else:
            op = method
        return Request("s3", op, key)
    ops = {"GET": "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects", "PUT": "CreateBucket",
           "HEAD": "HeadBucket", "DELETE": "DeleteBucket", "POST": "DeleteObjects"}
    return Request("s3", ops.get(method, method) if bucket else "ListBuckets")


def _s3_error(fault: Fault, req: Request, method: str) -> tuple[str, list, bytes]:
    rid = uuid.uuid4().hex[:16].upper()
    body = b"" if method == "HEAD" else (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        + (f"<Key>{req.key}</Key>" if req.key else "")
        + f"<RequestId>{rid}</RequestId><HostId>dynadex-local-aws</HostId></Error>").encode()
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid), ("Content-Length", str(len(body)))]
    return status_line(fault.status), headers, body


def _json_error(fault: Fault) -> tuple[str, list, bytes]:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": fault.message}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", uuid.uuid4().hex),
               ("Content-Length", str(len(body)))]
    return status_line(fault.status), headers, body


@dataclass
class Faults:
    """The rules, the counters and the outage state of one emulator process (thread-safe)."""

    rules: list[Fault] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    fired: dict[str, int] = field(default_factory=dict)
    outages: int = 0
    down_until: float = 0.0  # time.monotonic() deadline of the current outage
    stop_listening: object = None  # set by the server loop: closes the listening socket (runs in a thread)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def add(self, rules: list[Fault]) -> None:
        with self.lock:
            self.rules.extend(rules)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.seen.clear()
            self.fired.clear()
            self.outages = 0

    def state(self) -> dict:
        with self.lock:
            return {"faults": [asdict(r) for r in self.rules], "seen": dict(self.seen), "fired": dict(self.fired),
                    "outages": self.outages, "down": self.down}

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def match(self, req: Request) -> Fault | None:
        with self.lock:
            self.seen[req.operation] = self.seen.get(req.operation, 0) + 1
            for rule in self.rules:
                if rule.operation not in ("*", req.operation) or (rule.key and rule.key not in (req.key or "")):
                    continue
                if rule.after > 0:
                    rule.after -= 1
                    return None
                if rule.count > 0:
                    rule.count -= 1
                    if rule.count == 0:
                        self.rules.remove(rule)
                self.fired[req.operation] = self.fired.get(req.operation, 0) + 1
                return rule
            return None

    def begin_outage(self, seconds: float) -> None:
        with self.lock:
            self.down_until = max(self.down_until, time.monotonic() + seconds)
            self.outages += 1
        if callable(self.stop_listening):
            threading.Thread(target=self.stop_listening, daemon=True).start()

    def wait_outage(self) -> None:
        while self.down:
            time.sleep(min(0.05, max(0.0, self.down_until - time.monotonic())))


def _drop(environ: dict, start_response) -> list:
    """Shut the request's connection without an answer (what a crashed or restarted server does)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    start_response("503 Service Unavailable", [("Connection", "close")])  # never reaches the client
    return []


class FaultsApp:
    """WSGI middleware in front of the emulator: control endpoint, outages, then the rules."""

    def __init__(self, app, faults: Faults):
        self.app, self.faults = app, faults

    def __call__(self, environ, start_response):
        if self.faults.down:
            return _drop(environ, start_response)
        if environ.get("PATH_INFO", "").startswith(CONTROL_PATH):
            return self._control(environ, start_response)
        req = classify(environ)
        fault = self.faults.match(req)
        if fault is None:
            return self.app(environ, start_response)
        if fault.outage_seconds > 0:
            self.faults.begin_outage(fault.outage_seconds)
            return _drop(environ, start_response)
        if fault.lost_reply:
            for _ in self.app(environ, lambda *a, **k: (lambda data: None)):
                pass  # carried out; its answer is dropped
        else:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            if size:
                environ["wsgi.input"].read(size)  # read the request off the connection, so it stays usable
        status, headers, body = (_s3_error(fault, req, environ.get("REQUEST_METHOD", "GET")) if req.service == "s3"
                                 else _json_error(fault))
        start_response(status, headers)
        return [body]

    def _control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        try:
            if method == "POST":
                doc = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
                rules = [Fault.from_dict(d) for d in doc.get("faults", [])]
                self.faults.add(rules)
                if doc.get("outage_seconds"):
                    self.faults.begin_outage(float(doc["outage_seconds"]))
            elif method == "DELETE":
                self.faults.clear()
            body, status = json.dumps(self.faults.state()).encode(), "200 OK"
        except (ValueError, TypeError) as exc:
            body, status = json.dumps({"error": str(exc)}).encode(), "400 Bad Request"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class FaultControl:
    """Client of a running emulator's control endpoint (plain HTTP, no AWS signing)."""

    def __init__(self, endpoint: str):
        self.url = endpoint.rstrip("/") + CONTROL_PATH

    def _send(self, method: str, doc: dict | None = None) -> dict:
        import urllib.request

        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def inject(self, *faults: Fault | dict) -> dict:
        return self._send("POST", {"faults": [asdict(f) if isinstance(f, Fault) else f for f in faults]})

    def outage(self, seconds: float) -> dict:
        """Stop listening for ``seconds`` from now (this request is answered first)."""
        return self._send("POST", {"outage_seconds": seconds})

    def state(self) -> dict:
        return self._send("GET")

    def clear(self) -> dict:
        return self._send("DELETE")
