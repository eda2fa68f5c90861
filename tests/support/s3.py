"""Pytest fixtures for a real S3-protocol server on 127.0.0.1 and a fault proxy in front of it.

- `s3_server` (session): moto's threaded server on a free loopback port.
- `aws_env`: fake credentials and region; the developer's ~/.aws, profiles, endpoint
  overrides and HTTP proxies are cut off, so nothing can reach a real account.
- `s3_bucket`: a fresh, uniquely named bucket with a boto3 client and small helpers.
- `fault_proxy`: a `FaultProxy` forwarding to `s3_server`; point clients at its endpoint_url.

boto3 and moto are imported inside the fixtures: only tests that use S3 pay for them.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import Fault, FaultProxy, ProxiedRequest
from tests.support.project import Project

__all__ = [
    "FAKE_ACCESS_KEY_ID",
    "FAKE_SECRET_ACCESS_KEY",
    "Fault",
    "FaultProxy",
    "ProxiedRequest",
    "S3Bucket",
    "S3Server",
    "aws_env",
    "fault_proxy",
    "s3_bucket",
    "s3_client",
    "s3_server",
    "use_s3_source",
]

FAKE_ACCESS_KEY_ID = "AKIAFAKETESTKEY00000"
FAKE_SECRET_ACCESS_KEY = "fake-secret-key-for-tests-only"
REGION = "us-east-1"
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass(frozen=True)
class S3Server:
    """The running S3-protocol server: talk to it at `endpoint_url`."""

    host: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class S3Bucket:
    """A bucket on the test server, with a boto3 client talking to the server directly."""

    name: str
    client: Any
    endpoint_url: str

    def put(self, key: str, data: bytes) -> str:
        """Store `data` at `key`; returns the ETag as S3 sends it (with its quotes)."""
        return self.client.put_object(Bucket=self.name, Key=key, Body=data)["ETag"]

    def put_multipart(self, key: str, data: bytes, part_size: int = 5 * 1024 * 1024) -> str:
        """Store `data` at `key` in parts of `part_size` bytes (S3's minimum is 5 MiB), as
        `aws s3 cp` does above 8 MB; returns the multipart ETag ("<md5>-<parts>")."""
        upload = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        parts = []
        for number, start in enumerate(range(0, len(data), part_size), start=1):
            etag = self.client.upload_part(
                Bucket=self.name,
                Key=key,
                UploadId=upload,
                PartNumber=number,
                Body=data[start : start + part_size],
            )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
        return self.client.complete_multipart_upload(
            Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )["ETag"]

    def get(self, key: str) -> bytes:
        """The whole object at `key`."""
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def head(self, key: str) -> dict[str, Any]:
        """HeadObject's response: ETag, ContentLength, LastModified, ..."""
        return self.client.head_object(Bucket=self.name, Key=key)

    def url(self, key: str) -> str:
        """s3://<bucket>/<key>"""
        return f"s3://{self.name}/{key}"

    def path(self, key: str) -> str:
        """The request path of `key` (path-style), as `Fault(path=...)` and the proxy log use."""
        return f"/{self.name}/{key}"


def use_s3_source(
    project: Project, bucket: S3Bucket, endpoint_url: str, prefix: str = "crawls"
) -> None:
    """Point `project`'s `source.root` at a DVC remote `crawls` on the test server (at
    `endpoint_url`, the server or a fault proxy) and upload the sample crawl files there."""
    for spec in project.params["engines"].values():
        source = project.root / "data/sources" / spec["file"]
        bucket.put(f"{prefix}/{spec['file']}", source.read_bytes())
    project.add_s3_remote("crawls", f"s3://{bucket.name}/{prefix}", endpoint_url)
    project.edit_params(lambda p: p["source"].update(root="remote://crawls"))


def s3_client(
    endpoint_url: str,
    *,
    max_attempts: int | None = None,
    read_timeout: float = 10.0,
    connect_timeout: float = 5.0,
) -> Any:
    """A boto3 S3 client for a loopback endpoint, path-style, from a fresh session.

    A fresh session reads the environment now (boto3's default session caches it on first
    use, which would let one test's `aws_env` leak into the next). `max_attempts` counts the
    first try too: 1 disables retries; None keeps botocore's default.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "read_timeout": read_timeout,
        "connect_timeout": connect_timeout,
    }
    if max_attempts is not None:
        options["retries"] = {"total_max_attempts": max_attempts}
    session = botocore.session.Session()
    # Only the parsed service models are shared: loading them costs ~0.1 s per session.
    session.register_component("data_loader", _shared_model_loader())
    return boto3.session.Session(botocore_session=session).client(
        "s3", endpoint_url=endpoint_url, region_name=REGION, config=Config(**options)
    )


@functools.cache
def _shared_model_loader() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3-protocol server on 127.0.0.1 and a free port, for the whole test session."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; failing tests' output stays readable without it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(host=host, port=port)
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake AWS credentials and region only; returns the variables it set.

    Every AWS_* variable of the caller is removed first (profiles, endpoint overrides, session
    tokens, role settings), config and credentials files point at paths that do not exist, the
    instance metadata service is off, and HTTP proxies are cleared so loopback stays loopback.
    """
    for name in set(os.environ) - set(without_aws(os.environ)):
        monkeypatch.delenv(name)
    env = fake_aws_variables(tmp_path / "no-aws-config")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def without_aws(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without any AWS_* variable (profiles, endpoint overrides, session tokens, role
    settings) or HTTP proxy, so loopback stays loopback."""
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith("AWS_") and name.lower() not in _PROXY_VARIABLES
    }


def fake_aws_variables(absent: Path) -> dict[str, str]:
    """Fake credentials and region; config and credentials files at paths under `absent` (a
    folder that does not exist); the instance metadata service off; loopback not proxied."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(absent / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(absent / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }


@pytest.fixture
def s3_bucket(s3_server: S3Server, aws_env: dict[str, str]) -> Iterator[S3Bucket]:
    """A new empty bucket on `s3_server`; it and its objects are deleted afterwards."""
    client = s3_client(s3_server.endpoint_url)
    name = f"test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    yield S3Bucket(name=name, client=client, endpoint_url=s3_server.endpoint_url)
    # The server lives for the whole session and keeps objects in memory: free them, every
    # version of them when a test turned versioning on.
    for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=name, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def fault_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of `s3_server`; use its `endpoint_url` as the endpoint."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy
