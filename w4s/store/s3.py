"""S3 store (AWS S3 or any S3-compatible service such as SeaweedFS or MinIO).

A PUT replaces an object atomically, so no temporary-key dance is needed for crash-safe writes. Everything
that can go wrong on the wire becomes a StoreError naming the bucket, key and endpoint, so an operator can
tell a typo in a bucket name from a bad credential from an unreachable endpoint; credentials never enter
messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from w4s.errors import StoreError
from w4s.store.base import Store, validate_key, validate_prefix

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Checked in this order; the first is ours so w4s can use an in-cluster endpoint without changing where the
# rest of the AWS tooling in the same pod points.
ENDPOINT_ENV_VARS = ("W4S_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 5

_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "ExpiredToken", "InvalidToken"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def client_from_env() -> BaseClient:
    """Build an S3 client from the standard AWS environment (credentials chain, region) plus an endpoint.

    Timeouts and a bounded number of retries keep a dead endpoint from hanging a run; ``AWS_MAX_ATTEMPTS``
    (the standard variable) overrides the bound. Path-style addressing is used with a custom endpoint because
    S3-compatible servers rarely have wildcard DNS for virtual-hosted buckets.
    """
    endpoint_url = next((os.environ[name] for name in ENDPOINT_ENV_VARS if os.environ.get(name)), None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    raw_attempts = os.environ.get("AWS_MAX_ATTEMPTS") or str(DEFAULT_MAX_ATTEMPTS)
    if not raw_attempts.isdigit() or int(raw_attempts) < 1:
        raise StoreError(f"AWS_MAX_ATTEMPTS must be a positive integer, got {raw_attempts!r}")
    max_attempts = int(raw_attempts)
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store(Store):
    """Objects under ``s3://bucket/prefix``; key ``a/b`` is the S3 object ``prefix/a/b``."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise StoreError("an S3 store needs a bucket: s3://bucket[/prefix]")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self._prefix = validate_key(prefix) + "/" if prefix else ""
        self._client = client_from_env()
        self.endpoint_url: str = self._client.meta.endpoint_url
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn boto errors into StoreErrors that say what failed where; callers handle 'not found' first."""
        where = f"s3://{self.bucket}/{self._prefix}{key}"
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                raise StoreError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url} "
                    f"(while trying to {action} {where})") from None
            if code in _DENIED_CODES:
                raise StoreError(
                    f"access denied ({code}) trying to {action} {where} at {self.endpoint_url}: check the "
                    f"credentials and the bucket policy (without s3:ListBucket a missing key also reads as "
                    f"access denied)") from None
            message = exc.response.get("Error", {}).get("Message") or exc
            raise StoreError(f"cannot {action} {where} at {self.endpoint_url}: {code}: {message}") from None
        except NoCredentialsError:
            raise StoreError(
                f"no S3 credentials found to {action} {where}: set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the pod an IAM role") from None
        except BotoCoreError as exc:
            # Connection refused, timeouts, DNS failures: botocore's message names the endpoint, not the keys.
            raise StoreError(f"cannot {action} {where}: {exc}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._prefix + validate_key(key)
        with self._errors("write", key):
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def get_bytes(self, key: str) -> bytes:
        full = self._prefix + validate_key(key)
        with self._errors("read", key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND_CODES:
                    raise KeyError(key) from None
                raise
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        full = self._prefix + validate_key(key)
        with self._errors("check", key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                # A HEAD response has no body, so a missing bucket also reads as a bare 404 here; the next
                # write then reports it by name.
                if _code(exc) in _NOT_FOUND_CODES:
                    return False
                raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        full = self._prefix + validate_prefix(prefix)
        keys = []
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        with self._errors("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self._prefix)
                    # "Folder" marker objects (keys ending in '/') made by consoles are not artifacts.
                    if not key.endswith("/"):
                        keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        full = self._prefix + validate_key(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=full)
