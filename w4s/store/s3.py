"""S3 store (AWS S3 or any S3-compatible service such as SeaweedFS or MinIO).

A PUT replaces an object atomically, so no temporary-key dance is needed for crash-safe writes. Big files
(checkpoints) go up as multipart uploads, which are just as atomic: the object appears only when the upload
is completed, and an upload cut short by a crash is aborted by the next successful write of the same key. Everything
that can go wrong on the wire becomes a StoreError naming the bucket, key and endpoint, so an operator can
tell a typo in a bucket name from a bad credential from an unreachable endpoint; credentials never enter
messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import botocore.session
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from w4s.errors import StoreError
from w4s.store.base import Progress, Store, validate_key, validate_prefix

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Checked in this order; the first is ours so w4s can use an in-cluster endpoint without changing where the
# rest of the AWS tooling in the same pod points.
ENDPOINT_ENV_VARS = ("W4S_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 5
MiB = 1024 * 1024
# Files above the threshold go up in parts of the chunk size, several at a time. 16 MiB parts keep a 100 GiB
# checkpoint under S3's 10,000-part limit; the minimum part size S3 accepts is 5 MiB.
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_MULTIPART_CHUNKSIZE = 16 * MiB
DEFAULT_TRANSFER_CONCURRENCY = 4

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
    # The session default applies to the clients the credential chain makes for itself too (the STS client
    # that trades an IRSA web-identity token for keys), so that call is bounded by the same timeouts.
    core = botocore.session.get_session()
    core.set_default_client_config(Config(
        connect_timeout=10, read_timeout=60, retries={"mode": "standard", "total_max_attempts": max_attempts}))
    return boto3.session.Session(botocore_session=core).client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store(Store):
    """Objects under ``s3://bucket/prefix``; key ``a/b`` is the S3 object ``prefix/a/b``."""

    def __init__(self, bucket: str, prefix: str = "", *, multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
                 multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
                 max_concurrency: int = DEFAULT_TRANSFER_CONCURRENCY) -> None:
        """``multipart_*`` and ``max_concurrency`` shape ``put_file``/``get_file`` transfers (boto3's
        TransferConfig); the defaults suit multi-GiB checkpoints, tests lower them to force multipart."""
        if not bucket:
            raise StoreError("an S3 store needs a bucket: s3://bucket[/prefix]")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self._prefix = validate_key(prefix) + "/" if prefix else ""
        self._client = client_from_env()
        self.endpoint_url: str = self._client.meta.endpoint_url
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=multipart_chunksize, max_concurrency=max_concurrency)

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn boto errors into StoreErrors that say what failed where; callers handle 'not found' first."""
        where = f"s3://{self.bucket}/{self._prefix}{key}"
        try:
            yield
        except (S3UploadFailedError, RetriesExceededError) as exc:
            # boto3's transfer layer wraps the real error; report that one the same way as everywhere else.
            cause = exc.__cause__ or exc.__context__ or getattr(exc, "last_exception", None)
            if isinstance(cause, ClientError | BotoCoreError):
                with self._errors(action, key):
                    raise cause from None
            raise StoreError(f"cannot {action} {where} at {self.endpoint_url}: {exc}") from None
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                raise StoreError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url} "
                    f"(while trying to {action} {where}): create it, or fix the bucket name in the store "
                    f"URI") from None
            if exc.operation_name == "AssumeRoleWithWebIdentity":
                message = exc.response.get("Error", {}).get("Message") or code
                raise StoreError(
                    f"cannot get S3 credentials to {action} {where}: STS refused the web identity token "
                    f"({code}: {message}); check AWS_ROLE_ARN, the token in AWS_WEB_IDENTITY_TOKEN_FILE and "
                    f"the role's trust policy (IRSA: the service account annotation)") from None
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

    def put_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Stream ``path`` to ``key``, in parts when it is above the multipart threshold.

        boto3 aborts its own multipart upload when the transfer fails in this process, but a process that is
        killed mid-upload leaves the upload open: invisible, yet its parts are stored (and billed) until
        someone aborts it. So the open uploads of this key that exist before the transfer starts are aborted
        once it has succeeded. Uploads begun after that listing are left alone: they belong to a concurrent
        writer, whose own completion decides what the key holds.
        """
        full = self._prefix + validate_key(key)
        source = os.fspath(path)
        if not os.path.isfile(source):
            raise StoreError(f"cannot upload {source!r} to s3://{self.bucket}/{full}: not a readable file")
        with self._errors("upload", key):
            stale = self._open_uploads(full)
            try:
                self._client.upload_file(source, self.bucket, full, Config=self._transfer, Callback=progress)
            except OSError as exc:
                raise StoreError(f"cannot read {source!r} to upload it to s3://{self.bucket}/{full}: "
                                 f"{exc}") from exc
            for upload_id in stale:
                try:
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
                except ClientError as exc:
                    if _code(exc) != "NoSuchUpload":  # already aborted or completed by someone else
                        raise

    def _open_uploads(self, full: str) -> list[str]:
        """IDs of the incomplete multipart uploads of exactly the object ``full``.

        A policy without s3:ListBucketMultipartUploads makes this an empty list rather than a failed write:
        the cleanup is worth doing, not worth refusing to store a checkpoint over.
        """
        pages = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full)
        try:
            return [upload["UploadId"] for page in pages for upload in page.get("Uploads", [])
                    if upload["Key"] == full]
        except ClientError as exc:
            if _code(exc) == "AccessDenied":
                return []
            raise

    def get_file(self, key: str, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Stream ``key`` into ``path`` (ranged GETs in parallel for big objects); boto3 writes a temporary
        file beside ``path`` and renames it into place, so ``path`` never holds a partial download."""
        full = self._prefix + validate_key(key)
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {os.fspath(path)!r}: {exc}") from exc
        with self._errors("download", key):
            try:
                self._client.download_file(self.bucket, full, os.fspath(target), Config=self._transfer,
                                           Callback=progress)
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND_CODES:
                    raise
                # download_file starts with a HEAD, whose 404 has no body to say whether the key or the
                # bucket is missing; ask the bucket, so a typo in its name is not reported as a missing key.
                try:
                    self._client.head_bucket(Bucket=self.bucket)
                except ClientError as bucket_exc:
                    if _code(bucket_exc) in _NOT_FOUND_CODES:
                        raise ClientError({"Error": {"Code": "NoSuchBucket"}}, "HeadBucket") from None
                    raise
                raise KeyError(key) from None
            except OSError as exc:
                raise StoreError(f"cannot write s3://{self.bucket}/{full} to {os.fspath(path)!r}: {exc}") from exc
