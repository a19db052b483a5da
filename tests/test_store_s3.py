"""The S3 store against a real S3 gateway (SeaweedFS on loopback): multipart checkpoints, folders, listings past
one page, interrupted uploads, credentials from the environment (IRSA included) and the errors users see.

The behaviour every backend shares is in test_store.py; this file covers what only shows up with big objects,
many keys, crashes and credentials.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from servers import SeaweedFS, use_s3

from w4s.errors import StoreError
from w4s.store import Store, open_store
from w4s.store.local import LocalStore
from w4s.store.s3 import MiB, S3Store

# Small parts so that a ~50 MB checkpoint really goes up as a multipart upload (S3's minimum part is 5 MiB).
PART = 8 * MiB
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def s3_env(s3_endpoint: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The standard AWS environment pointed at the test server, as in a pod."""
    use_s3(monkeypatch, s3_endpoint)
    return s3_endpoint


def multipart_store(uri: str, **options: Any) -> S3Store:
    """An S3 store whose file transfers switch to multipart above one ``PART``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    settings = {"multipart_threshold": PART, "multipart_chunksize": PART, "max_concurrency": 4} | options
    return S3Store(bucket, prefix, **settings)


def write_random_file(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes (1 MiB at a time) and return their SHA-256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for start in range(0, size, MiB):
            chunk = os.urandom(min(MiB, size - start))
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def open_uploads(server: SeaweedFS, bucket: str, key: str) -> list[str]:
    """Upload IDs of the incomplete multipart uploads of exactly ``key``, straight from the server."""
    uploads = server.client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    return [upload["UploadId"] for upload in uploads if upload["Key"] == key]


def assert_clean_store_error(error: StoreError, *, mentions: list[str], secrets_: Sequence[str] = ()) -> None:
    """A user-facing error: names what it must, leaks no secret, and hides the botocore chain."""
    message = str(error)
    for text in mentions:
        assert text in message, f"{text!r} not in {message!r}"
    for secret in secrets_:
        assert secret not in message
    assert error.__cause__ is None and error.__suppress_context__, "raw botocore exception chained"


# --- 1. multipart checkpoints and folders ---------------------------------------------------------------------

def test_multipart_checkpoint_round_trip_is_byte_exact(s3_env: SeaweedFS, tmp_path: Path) -> None:
    bucket = s3_env.create_bucket()
    store = multipart_store(f"s3://{bucket}/team/a")
    size = 48 * MiB + 12_345  # not a whole number of parts: the last one is short
    source = tmp_path / "model.safetensors"
    expected = write_random_file(source, size)
    sent: list[int] = []
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            sent.append(n)

    started = time.monotonic()
    store.child("runs/r1").put_file("checkpoints/iter-3/model.safetensors", source, progress)
    upload_s = time.monotonic() - started
    full = "team/a/runs/r1/checkpoints/iter-3/model.safetensors"
    head = s3_env.client.head_object(Bucket=bucket, Key=full)
    # An ETag of the form "<md5 of part md5s>-<parts>" is how S3 marks an object assembled from parts.
    assert head["ETag"].strip('"').endswith(f"-{-(-size // PART)}"), head["ETag"]
    assert head["ContentLength"] == size
    assert sum(sent) == size
    assert open_uploads(s3_env, bucket, full) == []

    target = tmp_path / "restored" / "deep" / "model.safetensors"  # parents are created
    started = time.monotonic()
    store.get_file("runs/r1/checkpoints/iter-3/model.safetensors", target)
    download_s = time.monotonic() - started
    assert target.stat().st_size == size and sha256_of(target) == expected
    # The download went to a temporary file that was renamed into place: nothing else is left behind.
    assert [p.name for p in target.parent.iterdir()] == ["model.safetensors"]
    print(f"48 MiB multipart: upload {upload_s:.2f}s, download {download_s:.2f}s")


def test_put_file_streams_instead_of_reading_the_file_into_memory(s3_env: SeaweedFS, tmp_path: Path) -> None:
    import tracemalloc

    store = multipart_store(f"s3://{s3_env.create_bucket()}", max_concurrency=2)
    source = tmp_path / "big.bin"
    write_random_file(source, 40 * MiB)
    tracemalloc.start()
    try:
        store.put_file("big.bin", source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak Python allocation while uploading 40 MiB: {peak / MiB:.1f} MiB")
    # Parts are read from the file as they are sent; a whole-file read would peak above 40 MiB.
    assert peak < 20 * MiB, f"peak Python allocation {peak / MiB:.1f} MiB while uploading 40 MiB"


def test_local_store_streams_files_both_ways(tmp_path: Path) -> None:
    import tracemalloc

    store = LocalStore(tmp_path / "store")
    source, back = tmp_path / "big.bin", tmp_path / "back" / "big.bin"
    write_random_file(source, 40 * MiB)
    tracemalloc.start()
    try:
        store.put_file("ckpt/big.bin", source)
        store.get_file("ckpt/big.bin", back)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak Python allocation {peak / MiB:.1f} MiB while copying 40 MiB"
    assert back.read_bytes() == source.read_bytes()


def test_small_files_go_up_in_one_put(s3_env: SeaweedFS, tmp_path: Path) -> None:
    bucket = s3_env.create_bucket()
    store = multipart_store(f"s3://{bucket}")
    source = tmp_path / "config.json"
    source.write_bytes(b'{"layers": 2}')
    store.put_file("config.json", source)
    assert "-" not in s3_env.client.head_object(Bucket=bucket, Key="config.json")["ETag"]
    assert store.get_bytes("config.json") == b'{"layers": 2}'


def make_checkpoint_folder(root: Path) -> dict[str, bytes | str]:
    """A checkpoint-like folder: one weight file big enough for two parts, nested small files, an empty one.
    Returns relative path -> bytes (small files) or SHA-256 (the big one)."""
    contents: dict[str, bytes | str] = {
        "config.json": b'{"hidden": 64}',
        "tokenizer/vocab.txt": "\n".join(f"tok{i}" for i in range(500)).encode(),
        "tokenizer/special/tokens.json": b"[]",
        "EMPTY": b"",
    }
    for name, data in contents.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    contents["weights/model-00001.bin"] = write_random_file(root / "weights/model-00001.bin", PART + 3 * MiB)
    return contents


def assert_same_folder(folder: Path, contents: dict[str, bytes | str]) -> None:
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert found == sorted(contents)
    for name, expected in contents.items():
        if isinstance(expected, str):
            assert sha256_of(folder / name) == expected
        else:
            assert (folder / name).read_bytes() == expected


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_checkpoint_folder_round_trip(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "s3":
        server: SeaweedFS = request.getfixturevalue("s3_env")
        store: Store = multipart_store(f"s3://{server.create_bucket()}/runs")
    else:
        store = open_store(str(tmp_path / "store"))
    source = tmp_path / "ckpt"
    contents = make_checkpoint_folder(source)
    stored = store.put_dir("r1/iter-3", source)
    assert stored == sorted(contents)
    store.put_bytes("r1/iter-30/other", b"a string-prefix sibling, not part of the folder")
    assert store.list("r1/iter-3/") == [f"r1/iter-3/{name}" for name in sorted(contents)]

    restored = tmp_path / "restored"
    assert store.get_dir("r1/iter-3", restored) == sorted(contents)
    assert_same_folder(restored, contents)
    # Through a child view (what a runner holds) the same folder comes back too.
    again = tmp_path / "again"
    assert store.child("r1").get_dir("iter-3", again) == sorted(contents)
    assert_same_folder(again, contents)
    assert store.get_dir("r1/iter-4", tmp_path / "none") == []
    with pytest.raises(KeyError):
        store.get_file("r1/iter-3/missing.bin", tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()


# --- 2. listing -----------------------------------------------------------------------------------------------

def test_listing_nested_keys_string_prefix_dirs_and_pagination(s3_env: SeaweedFS) -> None:
    store = open_store(f"s3://{s3_env.create_bucket()}/exp")
    run1 = [f"run-1/iter-{i // 100:03d}/rec-{i % 100:03d}.json" for i in range(1040)]
    run10 = [f"run-10/iter-000/rec-{i:03d}.json" for i in range(40)]
    other = ["run-1.json", "run-2/manifest.json", "run-1x/manifest.json"]
    keys = run1 + run10 + other
    assert len(keys) > 1000
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:  # botocore's default connection pool holds 10
        list(pool.map(lambda key: store.put_bytes(key, b"{}"), keys))
    put_s = time.monotonic() - started

    started = time.monotonic()
    assert store.list() == sorted(keys)  # 1083 keys: two pages
    assert store.list("run-1/") == sorted(run1)  # 1040 keys: two pages, and no run-10/ key
    list_s = time.monotonic() - started
    assert store.list("run-10/") == sorted(run10)
    assert store.list("run-1") == sorted(run1 + run10 + ["run-1.json", "run-1x/manifest.json"])
    assert store.list("run-1/iter-010/") == sorted(run1[1000:])
    assert store.list("run-1/iter-01") == sorted(run1[1000:])
    assert store.list("run-2/") == ["run-2/manifest.json"]
    assert store.list("run-3/") == []
    assert store.child("run-1").list("iter-000/rec-00") == [f"iter-000/rec-00{i}.json" for i in range(10)]
    assert len(store.child("run-1").list()) == 1040
    print(f"{len(keys)} PUTs in {put_s:.2f}s; two paginated listings in {list_s:.2f}s")


# --- 3. interrupted uploads -----------------------------------------------------------------------------------

class Interrupted(Exception):
    """Raised from a progress callback to cut an upload short inside this process."""


def test_upload_interrupted_in_process_leaves_old_object_and_retry_completes(s3_env: SeaweedFS,
                                                                              tmp_path: Path) -> None:
    bucket = s3_env.create_bucket()
    store = multipart_store(f"s3://{bucket}", max_concurrency=1)
    store.put_bytes("ckpt/model.bin", b"previous checkpoint")
    source = tmp_path / "model.bin"
    expected = write_random_file(source, 5 * PART)
    sent = 0

    def interrupt_after_two_parts(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 2 * PART:
            raise Interrupted(f"stopped after {sent} bytes")

    with pytest.raises(Interrupted):
        store.put_file("ckpt/model.bin", source, interrupt_after_two_parts)
    # Readers still see the old object whole, and boto3 aborted its own upload on the way out.
    assert store.get_bytes("ckpt/model.bin") == b"previous checkpoint"
    assert open_uploads(s3_env, bucket, "ckpt/model.bin") == []

    store.put_file("ckpt/model.bin", source)
    store.get_file("ckpt/model.bin", tmp_path / "back.bin")
    assert sha256_of(tmp_path / "back.bin") == expected


UPLOADER = textwrap.dedent("""
    import os, signal, sys
    from w4s.store.s3 import S3Store

    bucket, key, path, part = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = S3Store(bucket, multipart_threshold=part, multipart_chunksize=part, max_concurrency=1)
    sent = 0

    def die_mid_upload(n):
        # One part at a time: once the third part is being sent, the first two are stored on the server.
        global sent
        sent += n
        if sent > 2 * part + part // 2:
            os.kill(os.getpid(), signal.SIGKILL)

    store.put_file(key, path, die_mid_upload)
    sys.exit("upload finished: the kill never happened")
""")


def test_upload_killed_mid_way_is_invisible_and_retry_aborts_the_stale_upload(s3_env: SeaweedFS,
                                                                              tmp_path: Path) -> None:
    bucket = s3_env.create_bucket()
    key = "ckpt/model.bin"
    store = multipart_store(f"s3://{bucket}")
    source = tmp_path / "model.bin"
    expected = write_random_file(source, 5 * PART)
    # Open uploads that the retry must leave alone: another key, and a key that merely starts with this one.
    client = s3_env.client
    unrelated = {name: client.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
                 for name in ("ckpt/other.bin", f"{key}.bak")}

    proc = subprocess.run([sys.executable, "-c", UPLOADER, bucket, key, str(source), str(PART)],
                          cwd=REPO_ROOT, env=os.environ.copy(), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode(errors="replace")[-2000:]

    # The killed writer left an open upload holding its parts, and no visible object.
    stale = open_uploads(s3_env, bucket, key)
    assert len(stale) == 1
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=stale[0]).get("Parts", [])
    assert len(parts) >= 2
    assert not store.exists(key) and store.list("ckpt/") == []
    with pytest.raises(KeyError):
        store.get_bytes(key)

    # The retry uploads from scratch, completes, and aborts the stale upload of the same key only.
    store.put_file(key, source)
    assert open_uploads(s3_env, bucket, key) == []
    for name, upload_id in unrelated.items():
        assert open_uploads(s3_env, bucket, name) == [upload_id]
    store.get_file(key, tmp_path / "back.bin")
    assert sha256_of(tmp_path / "back.bin") == expected


# --- 4. credentials from the environment ----------------------------------------------------------------------

@pytest.mark.parametrize("endpoint_var", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "W4S_S3_ENDPOINT_URL"])
def test_static_credentials_and_endpoint_from_the_environment(endpoint_var: str, s3_env: SeaweedFS,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("W4S_S3_ENDPOINT_URL")
    monkeypatch.setenv(endpoint_var, s3_env.endpoint_url)
    store = open_store(f"s3://{s3_env.create_bucket()}/p")
    assert isinstance(store, S3Store) and store.endpoint_url == s3_env.endpoint_url
    store.put_text("hello.txt", endpoint_var)
    assert store.get_text("hello.txt") == endpoint_var


class ScriptedSTS:
    """A loopback HTTP server that plays AWS STS for AssumeRoleWithWebIdentity.

    It records each request's form fields and answers with ``credentials`` (the SeaweedFS keys) or, when
    ``refuse`` is set, with the error STS gives for a token it does not trust.
    """

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.requests: list[dict[str, str]] = []
        self.refuse = False
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                sts.requests.append(form)
                if sts.refuse:
                    status, body = 400, (
                        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                        "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                        "<Message>Incorrect token audience</Message></Error>"
                        "<RequestId>scripted</RequestId></ErrorResponse>")
                else:
                    status, body = 200, (
                        '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                        "<AssumeRoleWithWebIdentityResult><Credentials>"
                        f"<AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{secret_key}</SecretAccessKey>"
                        # Empty: SeaweedFS refuses its static keys when a session token comes with
                        # them (InvalidAccessKeyId), and botocore sends no token header for an empty one.
                        "<SessionToken></SessionToken>"
                        "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
                        f"<SubjectFromWebIdentityToken>system:serviceaccount:w4s:runner</SubjectFromWebIdentityToken>"
                        f"<AssumedRoleUser><Arn>{form.get('RoleArn', '')}/{form.get('RoleSessionName', '')}</Arn>"
                        "<AssumedRoleId>AROASCRIPTED:w4s</AssumedRoleId></AssumedRoleUser>"
                        "</AssumeRoleWithWebIdentityResult>"
                        "<ResponseMetadata><RequestId>scripted</RequestId></ResponseMetadata>"
                        "</AssumeRoleWithWebIdentityResponse>")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedSTS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


ROLE_ARN = "arn:aws:iam::123456789012:role/w4s-runner"


@pytest.fixture
def irsa_env(s3_env: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedSTS, str]]:
    """An IRSA pod's environment: no keys, a role ARN and a projected token file, STS at a scripted server.

    Shared config files point nowhere and instance metadata is off, so the only way to credentials is the
    web-identity provider in boto3's chain.
    """
    token = "eyJhbGciOiJSUzI1NiJ9.scripted-service-account-token." + secrets.token_hex(8)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "w4s-runner")
    with ScriptedSTS(s3_env.access_key, s3_env.secret_key) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        yield sts, token


def test_irsa_web_identity_via_scripted_sts_reaches_seaweedfs(irsa_env: tuple[ScriptedSTS, str],
                                                              s3_env: SeaweedFS, tmp_path: Path) -> None:
    # SeaweedFS 4.48 only implements STS behind an OIDC-provider IAM config; a scripted STS stands in for
    # AWS's, while the S3 requests signed with the credentials it hands out go to the real SeaweedFS.
    sts, token = irsa_env
    store = multipart_store(f"s3://{s3_env.create_bucket()}/irsa")
    store.put_text("manifest.json", "{}")
    source = tmp_path / "w.bin"
    expected = write_random_file(source, PART + MiB)  # multipart too: the transfer threads share the creds
    store.put_file("w.bin", source)
    store.get_file("w.bin", tmp_path / "back.bin")
    assert sha256_of(tmp_path / "back.bin") == expected
    assert store.get_text("manifest.json") == "{}" and store.list() == ["manifest.json", "w.bin"]
    assert len(sts.requests) == 1, "credentials are fetched once and cached until they expire"
    request = sts.requests[0]
    assert request["Action"] == "AssumeRoleWithWebIdentity"
    assert request["RoleArn"] == ROLE_ARN and request["RoleSessionName"] == "w4s-runner"
    assert request["WebIdentityToken"] == token


def test_irsa_token_refused_by_scripted_sts_is_a_clear_store_error(irsa_env: tuple[ScriptedSTS, str],
                                                                   s3_env: SeaweedFS) -> None:
    sts, token = irsa_env
    sts.refuse = True
    bucket = s3_env.create_bucket()
    store = open_store(f"s3://{bucket}")
    with pytest.raises(StoreError) as info:
        store.put_bytes("k", b"x")
    assert_clean_store_error(info.value, mentions=[f"s3://{bucket}/k", "InvalidIdentityToken", "AWS_ROLE_ARN",
                                                   "AWS_WEB_IDENTITY_TOKEN_FILE"], secrets_=[token])
    assert sts.requests and sts.requests[0]["WebIdentityToken"] == token


# --- 5. errors ------------------------------------------------------------------------------------------------

def test_missing_bucket_is_a_clear_store_error_for_file_transfers(s3_env: SeaweedFS, tmp_path: Path) -> None:
    store = multipart_store("s3://w4s-no-such-bucket/runs")
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x")
    write_random_file(big, PART + MiB)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_bytes(b"x")
    calls = {
        "upload": lambda: store.put_file("ckpt/small", small),
        "upload ": lambda: store.put_file("ckpt/big", big),  # multipart: fails at CreateMultipartUpload
        "upload  ": lambda: store.put_dir("ckpt", tmp_path / "dir"),
        "download": lambda: store.get_file("ckpt/small", tmp_path / "out"),
        "list": lambda: store.get_dir("ckpt", tmp_path / "out-dir"),
    }
    for action, call in calls.items():
        with pytest.raises(StoreError) as info:
            call()
        assert_clean_store_error(info.value, mentions=[
            "bucket 'w4s-no-such-bucket' does not exist", s3_env.endpoint_url, "s3://w4s-no-such-bucket/runs/",
            "create it", f"trying to {action.strip()}"])
    assert not (tmp_path / "out").exists()


def test_bad_credentials_are_a_clear_store_error_for_file_transfers(s3_env: SeaweedFS, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_env.create_bucket()
    s3_env.client.put_object(Bucket=bucket, Key="ckpt/small", Body=b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    store = multipart_store(f"s3://{bucket}")
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x")
    write_random_file(big, PART + MiB)
    for call in (lambda: store.put_file("ckpt/small", small), lambda: store.put_file("ckpt/big", big),
                 lambda: store.get_file("ckpt/small", tmp_path / "out"),
                 lambda: store.get_dir("ckpt", tmp_path / "out-dir")):
        with pytest.raises(StoreError) as info:
            call()
        assert_clean_store_error(info.value, mentions=["access denied", f"s3://{bucket}/", "check the credentials"],
                                 secrets_=["wrong-secret-value", s3_env.secret_key])


def test_missing_local_file_is_a_store_error(s3_env: SeaweedFS, tmp_path: Path) -> None:
    store = multipart_store(f"s3://{s3_env.create_bucket()}")
    with pytest.raises(StoreError, match="not a readable file"):
        store.put_file("k", tmp_path / "nope")
    with pytest.raises(StoreError, match="not a directory"):
        store.put_dir("k", tmp_path / "nope")
