"""A trained checkpoint served as the meta-agent by the embedded engine: checkpoint folder -> GGUF (llama.cpp's own
converter, the base GGUF's tokenizer spliced back in), cached, and served by the real llama.cpp server.

The checkpoints are real: SmolLM2 135M materialized from its embedded GGUF, with one weight changed (a full
fine-tune) or with a rank-4 LoRA adapter of random nonzero weights, so each test can find its change in the
served file. They use the user's cache (models, converter) like the other embedded tests, and remove the GGUF
files they create.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from w4s.cli import _spec_from_args, build_parser
from w4s.crdgen import crd_for
from w4s.embedded.llama_server import LlamaServer
from w4s.embedded.provision import ensure_model
from w4s.endpoints import Endpoints
from w4s.errors import SpecError, W4SError
from w4s.rlao import gguf_export
from w4s.rlao.gguf_export import MANIFEST_FILE, checkpoint_gguf, gguf_path, read_checkpoint
from w4s.spec import parse_spec

SMOL = "smollm2-135m-instruct"
V_PROJ = "blk.0.attn_v.weight"  # layer 0's value projection: the converter does not permute it, unlike q and k


def _write_checkpoint(folder: Path, model: Any, base: Path, base_model: str = SMOL) -> Path:
    """What the trainer writes: weights (or an adapter), the base's tokenizer, and the manifest."""
    import transformers

    model.save_pretrained(str(folder))
    transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(folder))
    (folder / MANIFEST_FILE).write_text(json.dumps({"baseModel": base_model}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def base() -> Path:
    from w4s.rlao.hf import materialize_model

    return materialize_model(SMOL)


@pytest.fixture(scope="module")
def full_checkpoint(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    with torch.no_grad():
        model.model.layers[0].self_attn.v_proj.weight[0, 0] = 0.5  # exact in bfloat16 and float16
    return _write_checkpoint(tmp_path_factory.mktemp("full"), model, base)


@contextmanager
def _fresh_conversion(folder: Path) -> Iterator[tuple[Path, list[str]]]:
    """Convert ``folder`` from scratch (a file left by an interrupted run is removed first), then remove it."""
    target = gguf_path(read_checkpoint(folder))
    target.unlink(missing_ok=True)
    lines: list[str] = []
    try:
        yield checkpoint_gguf(folder, progress=lines.append), lines
    finally:
        target.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def full_gguf(full_checkpoint: Path) -> Iterator[tuple[Path, list[str]]]:
    with _fresh_conversion(full_checkpoint) as converted:
        yield converted


def _tensor(path: Path, name: str) -> np.ndarray:
    import gguf

    return next(t for t in gguf.GGUFReader(path).tensors if t.name == name).data.astype(np.float32)


def _tokenizer_fields(path: Path) -> dict[str, Any]:
    import gguf

    fields = gguf.GGUFReader(path).fields.values()
    return {f.name: f.contents() for f in fields if f.name.startswith("tokenizer.")}


def test_checkpoint_converts_with_the_base_tokenizer_and_is_cached(
        full_checkpoint: Path, full_gguf: tuple[Path, list[str]]) -> None:
    path, lines = full_gguf
    assert path == gguf_path(read_checkpoint(full_checkpoint)) and path.is_file()
    assert any(line.startswith(f"converting checkpoint {full_checkpoint}") for line in lines), lines
    assert _tensor(path, V_PROJ)[0, 0] == 0.5  # the checkpoint's weights, not the base's
    spliced = _tokenizer_fields(path)
    assert spliced == _tokenizer_fields(ensure_model(SMOL))
    assert spliced["tokenizer.ggml.model"] == "gpt2"  # the converter alone would write the wrong vocab type

    again: list[str] = []
    started = time.monotonic()
    assert checkpoint_gguf(full_checkpoint, progress=again.append) == path
    assert time.monotonic() - started < 5 and not again


def test_converted_checkpoint_answers_a_chat_completion(full_gguf: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, _ = full_gguf
    with LlamaServer(path, "smol-checkpoint", n_ctx=2048, log_path=tmp_path / "server.log") as server:
        reply = httpx.post(f"{server.base_url}/chat/completions", timeout=120, json={
            "model": server.model, "temperature": 0.0, "max_tokens": 16,
            "messages": [{"role": "user", "content": "What is the capital of France? Answer with one word."}]})
    assert reply.status_code == 200, reply.text
    assert "Paris" in reply.json()["choices"][0]["message"]["content"]


def test_lora_adapter_checkpoint_is_merged_then_converted(base: Path, tmp_path: Path) -> None:
    import peft
    import torch
    import transformers
    from safetensors.torch import load_file

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base))
    adapted = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["v_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in adapted.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: an untrained adapter would change nothing
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.05)
    # The base named by its folder, as a training on a store copy of it would: the tokenizer's GGUF is found anyway.
    folder = _write_checkpoint(tmp_path / "lora", adapted, base, base_model=str(base))
    assert read_checkpoint(folder).adapter

    with _fresh_conversion(folder) as (path, _):
        adapter = load_file(str(folder / "adapter_model.safetensors"))
        prefix = "base_model.model.model.layers.0.self_attn.v_proj"
        delta = 2.0 * adapter[f"{prefix}.lora_B.weight"] @ adapter[f"{prefix}.lora_A.weight"]  # alpha / r = 2
        original = load_file(str(base / "model.safetensors"))["model.layers.0.self_attn.v_proj.weight"].float()
        served = _tensor(path, V_PROJ)
        assert np.abs(served - (original + delta).numpy()).max() < 1e-3  # float16 rounding only
        assert np.abs(served - original.numpy()).max() > 1e-2
        assert _tokenizer_fields(path) == _tokenizer_fields(ensure_model(SMOL))


@pytest.mark.parametrize(("files", "error"), [
    (None, "no such folder"),
    ({"config.json": "{}", "model.safetensors": ""}, f"not a w4s checkpoint: {MANIFEST_FILE}"),
    ({MANIFEST_FILE: '{"base": "x"}', "model.safetensors": ""}, "not a w4s checkpoint"),
    ({MANIFEST_FILE: json.dumps({"baseModel": SMOL}), "tokenizer.json": "{}"}, "holds no model weights"),
    ({MANIFEST_FILE: json.dumps({"baseModel": SMOL}), "adapter_config.json": "{}"}, "holds no model weights"),
])
def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path: Path, files: dict[str, str] | None,
                                                      error: str) -> None:
    folder = tmp_path / "checkpoint"
    for name, text in (files or {}).items():
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(W4SError, match=error):
        checkpoint_gguf(folder)


def _unknown_architecture(folder: Path) -> Path:
    """A well-formed checkpoint of an architecture llama.cpp's converter does not know."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["W4SToyForCausalLM"], "model_type": "w4s-toy"}))
    save_file({"weight": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / MANIFEST_FILE).write_text(json.dumps({"baseModel": str(folder)}))
    return folder


def test_a_failed_conversion_reports_the_converter_log(tmp_path: Path) -> None:
    folder = _unknown_architecture(tmp_path / "toy")
    with pytest.raises(W4SError, match=r"converting .* to GGUF failed \(exit status 1\); last lines of") as info:
        checkpoint_gguf(folder)
    assert "W4SToyForCausalLM" in str(info.value)
    assert not gguf_path(read_checkpoint(folder)).exists()


def test_a_missing_train_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _unknown_architecture(tmp_path / "toy")
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "sentencepiece" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(gguf_export.importlib.util, "find_spec", find_spec)
    with pytest.raises(W4SError, match=r"needs sentencepiece, part of the training extra: pip install 'w4s\[train\]'"):
        checkpoint_gguf(folder)


def test_the_flag_sets_a_local_checkpoint_and_the_crd_never_has_it(tmp_path: Path) -> None:
    for command in ("optimize", "collect"):
        args = build_parser().parse_args([command, "--meta-agent-checkpoint", "ckpt", "--run-dir", str(tmp_path)])
        meta = _spec_from_args(args).meta_agent
        assert (meta.provider, meta.checkpoint) == ("embedded", str(Path("ckpt").resolve()))
    # A run's manifest records a checkpoint that is set; nothing else (the CRD's defaults included) mentions it.
    assert parse_spec({"metaAgent": {"checkpoint": "/c"}}).model_dump(by_alias=True)["metaAgent"]["checkpoint"] == "/c"
    assert "checkpoint" not in parse_spec({}).model_dump(by_alias=True)["metaAgent"]
    root = crd_for("WorkflowOptimization")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    meta_schema = root["properties"]["spec"]["properties"]["metaAgent"]
    assert "checkpoint" not in meta_schema["properties"] and "checkpoint" not in json.dumps(meta_schema["default"])


@pytest.mark.parametrize(("meta", "error"), [
    ({"provider": "openai", "model": "gpt-4o-mini", "checkpoint": "/c"}, "checkpoint needs provider 'embedded'"),
    ({"checkpoint": "/c", "weightsUri": "s3://b/w"}, "at most one of fromTraining, weightsUri and checkpoint"),
    ({"checkpoint": "/c", "fromTraining": "rwr"}, "at most one of fromTraining, weightsUri and checkpoint"),
])
def test_checkpoint_is_embedded_and_alone(meta: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError, match=error):
        parse_spec({"metaAgent": meta})


def test_a_bad_checkpoint_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(W4SError, match="no such folder"):
        Endpoints.check(parse_spec({"metaAgent": {"checkpoint": str(tmp_path / "missing")}}))
