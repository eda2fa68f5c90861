"""The fault proxy: what each fault looks like to a real botocore client, and clean forwarding.

The client never retries (one attempt) and gives up reading after half a second, so every
fault shows up as exactly one exception or status, and the stall (1.5 s) always outlasts it.
"""

from __future__ import annotations

import errno
import http.client
import io
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from tests.support.s3 import FAKE_ACCESS_KEY_ID, Fault, FaultProxy, S3Bucket, s3_client

# s3_server, aws_env, s3_bucket and fault_proxy come from tests/conftest.py.

READ_TIMEOUT = 0.5
STALL = 1.5
BODY = os.urandom(256 * 1024)  # larger than a socket buffer, so truncation is mid-stream


@pytest.fixture
def client(fault_proxy: FaultProxy, aws_env: dict[str, str]) -> Any:
    """A botocore S3 client that talks to the proxy, tries once and times out fast."""
    return s3_client(
        fault_proxy.endpoint_url,
        max_attempts=1,
        read_timeout=READ_TIMEOUT,
        connect_timeout=READ_TIMEOUT,
    )


@pytest.fixture
def stored(s3_bucket: S3Bucket) -> S3Bucket:
    """The bucket with BODY stored at key "crawl.txt"."""
    s3_bucket.put("crawl.txt", BODY)
    return s3_bucket


def fake_sigv4_headers() -> dict[str, str]:
    # moto routes by the credential scope and does not check the signature.
    scope = "AKIAFAKE/20260101/us-east-1/s3/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, Signature={'0' * 64}"}


def test_get_through_proxy_returns_the_same_bytes_as_direct(client, stored):
    proxied = client.get_object(Bucket=stored.name, Key="crawl.txt")
    assert proxied["Body"].read() == stored.get("crawl.txt")
    assert proxied["ETag"] == stored.head("crawl.txt")["ETag"]


def test_put_through_proxy_stores_the_same_bytes_as_direct(client, s3_bucket):
    client.put_object(Bucket=s3_bucket.name, Key="upload.txt", Body=io.BytesIO(BODY))
    assert s3_bucket.get("upload.txt") == BODY


def test_large_multipart_upload_and_ranged_download_pass_through_whole(
    fault_proxy, aws_env, s3_bucket
):
    big = os.urandom(20 * 1024 * 1024)
    transfer_client = s3_client(fault_proxy.endpoint_url)
    transfer_client.upload_fileobj(io.BytesIO(big), s3_bucket.name, "big.bin")
    downloaded = io.BytesIO()
    transfer_client.download_fileobj(s3_bucket.name, "big.bin", downloaded)

    assert s3_bucket.get("big.bin") == big
    assert downloaded.getvalue() == big
    assert any(r.method == "POST" and "uploads" in r.query for r in fault_proxy.requests)
    assert any(r.range for r in fault_proxy.requests if r.method == "GET")


def test_chunked_aws_chunked_upload_is_forwarded_intact(fault_proxy, s3_bucket):
    # What SDK streaming uploads send: aws-chunked content inside HTTP chunked framing.
    parts = [os.urandom(70_000), os.urandom(1_000)]
    signature = "0" * 64

    def aws_chunks():
        for part in parts:
            yield f"{len(part):x};chunk-signature={signature}\r\n".encode() + part + b"\r\n"
        yield f"0;chunk-signature={signature}\r\n\r\n".encode()

    proxy = urlsplit(fault_proxy.endpoint_url)
    connection = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=10)
    headers = {
        **fake_sigv4_headers(),
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": str(sum(map(len, parts))),
    }
    connection.request(
        "PUT", s3_bucket.path("streamed.bin"), aws_chunks(), headers, encode_chunked=True
    )
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.status == 200
    assert fault_proxy.requests[-1].headers["transfer-encoding"] == "chunked"
    assert s3_bucket.get("streamed.bin") == b"".join(parts)


def test_keep_alive_client_sends_all_requests_over_one_connection(client, fault_proxy, stored):
    for _ in range(5):
        client.head_object(Bucket=stored.name, Key="crawl.txt")
        client.get_object(Bucket=stored.name, Key="crawl.txt")["Body"].read()

    assert len(fault_proxy.requests) == 10
    assert fault_proxy.connections_accepted == 1


def test_s3fs_reads_and_writes_through_proxy(fault_proxy, aws_env, stored):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=fault_proxy.endpoint_url, skip_instance_cache=True)
    fs.pipe_file(f"{stored.name}/from-s3fs.bin", BODY[::-1])

    assert fs.cat_file(f"{stored.name}/crawl.txt") == BODY
    assert stored.get("from-s3fs.bin") == BODY[::-1]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalError"), (503, "SlowDown"), (503, "ServiceUnavailable")],
)
def test_status_fault_reaches_client_as_s3_error(client, fault_proxy, stored, status, code):
    fault_proxy.plan(Fault.status(status, code))

    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=stored.name, Key="crawl.txt")

    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_reset_reaches_client_as_connection_closed(client, fault_proxy, stored):
    fault_proxy.plan(Fault.reset())

    with pytest.raises(ConnectionClosedError) as raised:
        client.get_object(Bucket=stored.name, Key="crawl.txt")

    _, cause = raised.value.kwargs["error"].args  # urllib3's ('Connection aborted.', cause)
    assert cause.errno == errno.ECONNRESET  # a reset, not an orderly close


def test_stall_longer_than_read_timeout_reaches_client_as_read_timeout(client, fault_proxy, stored):
    fault_proxy.plan(Fault.stall(STALL))

    with pytest.raises(ReadTimeoutError):
        client.get_object(Bucket=stored.name, Key="crawl.txt")


def test_truncated_object_body_fails_when_read(client, fault_proxy, stored):
    fault_proxy.plan(Fault.truncate(1000))

    response = client.get_object(Bucket=stored.name, Key="crawl.txt")
    assert response["ContentLength"] == len(BODY)  # the true length still arrives
    with pytest.raises(ResponseStreamingError, match="IncompleteRead"):
        response["Body"].read()


def test_stall_mid_body_fails_the_read_with_read_timeout(client, fault_proxy, stored):
    fault_proxy.plan(Fault.truncate(1000, stall=STALL))

    response = client.get_object(Bucket=stored.name, Key="crawl.txt")
    with pytest.raises(ReadTimeoutError):
        response["Body"].read()


def test_truncated_listing_reaches_client_as_500(client, fault_proxy, stored):
    # botocore turns an unparseable 200 into a 500 so that its retry logic treats it as one.
    fault_proxy.plan(Fault.truncate(10))

    with pytest.raises(ClientError) as raised:
        client.list_objects_v2(Bucket=stored.name)

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


@pytest.mark.parametrize(
    "fault",
    [Fault.status(503, "SlowDown"), Fault.reset(), Fault.stall(STALL), Fault.truncate(1000)],
    ids=lambda fault: fault.kind,
)
def test_request_after_a_fault_succeeds(client, fault_proxy, stored, fault):
    fault_proxy.plan(fault)
    with pytest.raises(
        (ClientError, ConnectionClosedError, ReadTimeoutError, ResponseStreamingError)
    ):
        client.get_object(Bucket=stored.name, Key="crawl.txt")["Body"].read()

    assert client.get_object(Bucket=stored.name, Key="crawl.txt")["Body"].read() == BODY


def test_fault_with_method_and_path_spares_other_requests(client, fault_proxy, stored):
    stored.put("other.txt", b"other")
    fault_proxy.plan(Fault.status(503, "SlowDown", method="GET", path=stored.path("crawl.txt")))

    client.head_object(Bucket=stored.name, Key="crawl.txt")
    assert client.get_object(Bucket=stored.name, Key="other.txt")["Body"].read() == b"other"
    with pytest.raises(ClientError):
        client.get_object(Bucket=stored.name, Key="crawl.txt")
    assert [r.fault is not None for r in fault_proxy.requests] == [False, False, True]


def test_each_planned_fault_is_used_once_in_order(client, fault_proxy, stored):
    fault_proxy.plan(Fault.status(503, "SlowDown"), Fault.status(500, "InternalError"))

    codes = []
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            client.head_object(Bucket=stored.name, Key="crawl.txt")
        codes.append(raised.value.response["ResponseMetadata"]["HTTPStatusCode"])
    client.head_object(Bucket=stored.name, Key="crawl.txt")

    assert codes == [503, 500]
    assert fault_proxy.pending == ()


def test_fail_always_fails_every_matching_request_until_cleared(client, fault_proxy, stored):
    fault_proxy.fail_always(Fault.status(503, "SlowDown", method="GET"))

    for _ in range(3):
        with pytest.raises(ClientError):
            client.get_object(Bucket=stored.name, Key="crawl.txt")
    fault_proxy.clear()

    assert client.get_object(Bucket=stored.name, Key="crawl.txt")["Body"].read() == BODY


def test_request_log_records_range_and_if_match(client, fault_proxy, stored):
    etag = stored.head("crawl.txt")["ETag"]

    response = client.get_object(
        Bucket=stored.name, Key="crawl.txt", Range="bytes=1000-", IfMatch=etag
    )

    assert response["Body"].read() == BODY[1000:]
    logged = fault_proxy.requests[-1]
    assert (logged.method, logged.path) == ("GET", stored.path("crawl.txt"))
    assert (logged.range, logged.if_match) == ("bytes=1000-", etag)


def test_stop_ends_a_stall_in_progress(s3_server, aws_env, stored):
    proxy = FaultProxy(s3_server.endpoint_url).start()
    proxy.plan(Fault.stall(600))
    patient = s3_client(proxy.endpoint_url, max_attempts=1, read_timeout=600)
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            patient.get_object(Bucket=stored.name, Key="crawl.txt")
        except Exception as exc:  # the stall ends in a closed connection
            outcome.append(exc)

    fetcher = threading.Thread(target=fetch, daemon=True)
    try:
        fetcher.start()
        for _ in range(1000):  # wait (boundedly) until the stall has begun
            if proxy.requests:
                break
            threading.Event().wait(0.01)
    finally:
        proxy.stop()
    fetcher.join(30)

    assert not fetcher.is_alive()
    assert isinstance(outcome[0], ConnectionClosedError)


@pytest.fixture
def developer_aws_setup(monkeypatch, tmp_path):
    """A developer's own AWS setup: a profile in ~/.aws, an endpoint override, an HTTP proxy."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text("[profile work]\nregion = eu-west-3\n")
    (home / ".aws" / "credentials").write_text(
        "[work]\naws_access_key_id = AKIAREALKEY\naws_secret_access_key = real\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_PROFILE", "work")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.example.invalid")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.invalid:3128")


def test_aws_env_hides_the_developers_own_aws_setup(developer_aws_setup, aws_env):
    import boto3

    session = boto3.session.Session()
    client = session.client("s3")

    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.access_key == FAKE_ACCESS_KEY_ID
    assert session.region_name == "us-east-1"
    assert "example.invalid" not in client.meta.endpoint_url
    assert "HTTP_PROXY" not in os.environ


@pytest.mark.unit
def test_proxy_refuses_a_non_loopback_upstream():
    with pytest.raises(ValueError, match="127.0.0.1"):
        FaultProxy("http://192.0.2.1:9000")
