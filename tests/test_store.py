"""The artifact store: one behavioural suite run against a local directory and a real S3 gateway (SeaweedFS)."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from servers import AWS_ENV_TO_CLEAR, SeaweedFS, free_port, use_s3

from w4s.errors import StoreError
from w4s.store import LocalStore, Store, open_store
from w4s.store.base import TEMP_PREFIX
from w4s.store.s3 import S3Store


@pytest.fixture(scope="session")
def shared_bucket(s3_endpoint: SeaweedFS) -> str:
    """One bucket for the prefixed-store tests: each gets its own prefix, which is cheaper than a bucket (the
    first write to a new SeaweedFS bucket allocates a volume) and checks that prefixes isolate stores."""
    return s3_endpoint.create_bucket()


@pytest.fixture(params=["local", "s3-bucket-root", "s3-prefixed"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server: SeaweedFS = request.getfixturevalue("s3_endpoint")
    use_s3(monkeypatch, server)
    if request.param == "s3-bucket-root":
        return open_store(f"s3://{server.create_bucket()}")
    return open_store(f"s3://{request.getfixturevalue('shared_bucket')}/team/{secrets.token_hex(4)}")


# --- behaviour shared by every backend ------------------------------------------------------------------------

def test_put_get_round_trip(store: Store) -> None:
    payload = bytes(range(256)) * 3
    store.put_bytes("runs/r1/checkpoint.bin", payload)
    store.put_bytes("empty", b"")
    assert store.get_bytes("runs/r1/checkpoint.bin") == payload
    assert store.get_bytes("empty") == b""


def test_put_replaces(store: Store) -> None:
    store.put_bytes("manifest.json", b"old, and longer than the new value")
    store.put_bytes("manifest.json", b"new")
    assert store.get_bytes("manifest.json") == b"new"
    assert store.list() == ["manifest.json"]


def test_missing_key_raises_key_error(store: Store) -> None:
    store.put_bytes("a/b", b"x")
    for key in ("nope", "a/c", "a"):  # "a" only prefixes a key: it is not an object
        with pytest.raises(KeyError) as info:
            store.get_bytes(key)
        assert info.value.args == (key,)


def test_exists(store: Store) -> None:
    assert not store.exists("a/b")
    store.put_bytes("a/b", b"x")
    assert store.exists("a/b")
    assert not store.exists("a")
    assert not store.exists("a/b2")


def test_list_is_sorted_and_filters_by_string_prefix(store: Store) -> None:
    keys = ["b", "a/2", "a/10", "a/1", "ab", "a/sub/x", "é/unicode"]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert store.list() == sorted(keys)
    assert store.list("a/") == ["a/1", "a/10", "a/2", "a/sub/x"]
    assert store.list("a") == ["a/1", "a/10", "a/2", "a/sub/x", "ab"]
    assert store.list("a/1") == ["a/1", "a/10"]
    assert store.list("a/sub/") == ["a/sub/x"]
    assert store.list("zzz") == []
    assert store.list("missing/dir/") == []


def test_delete(store: Store) -> None:
    store.put_bytes("a/b", b"x")
    store.put_bytes("a/c", b"y")
    store.delete("a/b")
    assert not store.exists("a/b")
    assert store.list() == ["a/c"]
    store.delete("a/b")  # deleting again is fine
    store.delete("never/there")
    with pytest.raises(KeyError):
        store.get_bytes("a/b")


def test_text_and_json_round_trip(store: Store) -> None:
    store.put_text("notes.txt", "naïve — ✓\nline 2")
    assert store.get_text("notes.txt") == "naïve — ✓\nline 2"
    value = {"z": [1, 2.5, None, True], "a": {"nested": "ü"}, "score": "0.75"}
    store.put_json("state.json", value)
    assert store.get_json("state.json") == value
    # Sorted keys, 2-space indent, non-ASCII kept as is: the same value always gives the same bytes.
    assert store.get_text("state.json") == json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_corrupt_json_and_text_raise_store_error(store: Store) -> None:
    store.put_bytes("bad.json", b"{not json")
    store.put_bytes("bad.txt", b"\xff\xfe")
    with pytest.raises(StoreError, match=r"bad\.json"):
        store.get_json("bad.json")
    with pytest.raises(StoreError, match=r"bad\.txt"):
        store.get_text("bad.txt")


def test_child_view(store: Store) -> None:
    run = store.child("runs/7")
    assert run.uri == store.uri.rstrip("/") + "/runs/7"
    run.put_json("manifest.json", {"iteration": 3})
    run.put_text("workflows/w1.py", "def workflow(agent, task): ...")
    store.put_bytes("runs/70/other", b"not in the child")  # string-prefix sibling must not leak in
    store.put_bytes("runs/7x", b"nor this")
    assert store.get_json("runs/7/manifest.json") == {"iteration": 3}
    assert run.list() == ["manifest.json", "workflows/w1.py"]
    assert run.list("work") == ["workflows/w1.py"]
    assert run.exists("manifest.json") and not run.exists("other")
    with pytest.raises(KeyError) as info:
        run.get_bytes("other")
    assert info.value.args == ("other",)
    nested = run.child("workflows")
    assert nested.list() == ["w1.py"]
    nested.delete("w1.py")
    assert run.list() == ["manifest.json"]
    # The child's URI opens the same place: a runner handed runs/<id> can reopen it after a crash.
    assert open_store(run.uri).get_json("manifest.json") == {"iteration": 3}


BAD_KEYS = ["", "/abs", "/", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b", "a//b", "a/", "a\\b",
            "..\\x", "x\x00y", f"a/{TEMP_PREFIX}1.b"]


def test_invalid_keys_are_rejected(store: Store) -> None:
    for key in BAD_KEYS:
        for call in (lambda k=key: store.put_bytes(k, b"x"), lambda k=key: store.get_bytes(k),
                     lambda k=key: store.exists(k), lambda k=key: store.delete(k), lambda k=key: store.child(k)):
            with pytest.raises(StoreError, match="invalid store key") as info:
                call()
            assert repr(key) in str(info.value)
    assert store.list() == []


def test_invalid_list_prefixes_are_rejected(store: Store) -> None:
    for prefix in ("/abs", "../", "a/../", "a//", "a\\"):
        with pytest.raises(StoreError, match="invalid store prefix"):
            store.list(prefix)


def test_child_rejects_traversal_through_its_keys(store: Store) -> None:
    run = store.child("runs/1")
    with pytest.raises(StoreError):
        run.put_bytes("../2/manifest.json", b"x")
    with pytest.raises(StoreError):
        run.list("../")
    assert store.list() == []


# --- local backend --------------------------------------------------------------------------------------------

def test_open_store_local_forms(tmp_path: Path) -> None:
    created = tmp_path / "new" / "dir"
    plain = open_store(str(created))
    assert isinstance(plain, LocalStore) and created.is_dir()
    assert plain.uri == created.resolve().as_uri()
    spaced = tmp_path / "with space"
    via_uri = open_store(spaced.as_uri())  # percent-encoded space
    assert via_uri.uri == spaced.resolve().as_uri() and spaced.is_dir()
    assert open_store(f"file://localhost{tmp_path}").uri == tmp_path.resolve().as_uri()


def test_open_store_rejects_unknown_uris() -> None:
    with pytest.raises(StoreError, match=r"unsupported store URI 'ftp://host/x'.*file://.*s3://"):
        open_store("ftp://host/x")
    with pytest.raises(StoreError, match="no bucket"):
        open_store("s3:///prefix")
    with pytest.raises(StoreError, match="names host"):
        open_store("file://otherhost/data")


def test_local_writes_leave_no_temp_files_and_ignore_stray_ones(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.put_bytes("a/b", b"x" * 10_000)
    store.put_bytes("a/b", b"y")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    # A writer that crashed between create and rename leaves a temp file: it must not show up as a key.
    (tmp_path / "a" / f"{TEMP_PREFIX}dead.b").write_bytes(b"half")
    assert store.list() == ["a/b"]


def test_local_readers_never_see_a_partial_write(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    versions = [b"A" * 4_000_000, b"B" * 3_000_000]
    store.put_bytes("big", versions[0])
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            store.put_bytes("big", versions[i % 2])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        reads = 0
        while time.monotonic() < deadline:
            assert store.get_bytes("big") in versions
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert reads > 10


def test_local_symlink_cannot_escape_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s3cr3t")
    store = open_store(str(root))
    os.symlink(outside, root / "link")
    with pytest.raises(StoreError, match="outside the store root"):
        store.get_bytes("link/secret")
    with pytest.raises(StoreError, match="outside the store root"):
        store.put_bytes("link/planted", b"x")
    assert not (outside / "planted").exists()
    assert store.list() == [] and store.list("link/") == []


def test_local_key_under_an_existing_object_is_a_store_error(tmp_path: Path) -> None:
    # A directory and a file cannot share a name on disk (S3 itself would allow both).
    store = open_store(str(tmp_path))
    store.put_bytes("a/b", b"x")
    with pytest.raises(StoreError, match="'a/b/c'"):
        store.put_bytes("a/b/c", b"y")
    assert store.list() == ["a/b"]


# --- S3 backend -----------------------------------------------------------------------------------------------

def test_s3_uri_and_pagination(s3_endpoint: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, s3_endpoint)
    bucket = s3_endpoint.create_bucket()
    store = open_store(f"s3://{bucket}/p/q/")
    assert isinstance(store, S3Store) and store.uri == f"s3://{bucket}/p/q"
    keys = [f"k/{i:04d}" for i in range(1005)]  # more than one 1000-key page
    client = s3_endpoint.client
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=f"p/q/{key}", Body=b""), keys))
    client.put_object(Bucket=bucket, Key="p/q/folder/", Body=b"")  # console-style folder marker
    assert store.list("k/") == keys


def test_s3_missing_bucket_is_a_store_error_naming_it(s3_endpoint: SeaweedFS,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, s3_endpoint)
    store = open_store("s3://w4s-no-such-bucket/runs")
    for call in (lambda: store.put_bytes("k", b"x"), lambda: store.get_bytes("k"), lambda: store.list(),
                 lambda: store.delete("k")):
        with pytest.raises(StoreError, match="bucket 'w4s-no-such-bucket' does not exist") as info:
            call()
        assert s3_endpoint.endpoint_url in str(info.value)


def test_s3_bad_credentials_are_a_store_error_without_the_secret(s3_endpoint: SeaweedFS,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, s3_endpoint)
    bucket = s3_endpoint.create_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    store = open_store(f"s3://{bucket}")
    with pytest.raises(StoreError, match="access denied") as info:
        store.put_bytes("k", b"x")
    assert bucket in str(info.value)
    assert "wrong-secret-value" not in str(info.value) and s3_endpoint.secret_key not in str(info.value)


def test_s3_unreachable_endpoint_is_a_bounded_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("W4S_S3_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unreachable-secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    store = open_store("s3://some-bucket/x")
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.get_bytes("k")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert dead in message and "some-bucket" in message and "unreachable-secret" not in message


def test_s3_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*AWS_ENV_TO_CLEAR, "AWS_REGION", "W4S_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://standard.example:9000")
    store = open_store("s3://b")
    assert isinstance(store, S3Store)
    client = store._client
    assert store.endpoint_url == "http://standard.example:9000"
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    monkeypatch.setenv("W4S_S3_ENDPOINT_URL", "http://ours.example:8333")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    store = open_store("s3://b")
    assert store.endpoint_url == "http://ours.example:8333"
    assert store._client.meta.region_name == "eu-west-1"
    for bad in ("many", "0"):
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", bad)
        with pytest.raises(StoreError, match="AWS_MAX_ATTEMPTS"):
            open_store("s3://b")


def test_s3_server_started_quickly(s3_endpoint: SeaweedFS) -> None:
    # Start-up is paid once per session; this guards against a flag change that makes it slow.
    print(f"SeaweedFS S3 gateway ready in {s3_endpoint.start_seconds:.2f}s at {s3_endpoint.endpoint_url}")
    assert s3_endpoint.start_seconds < 30
