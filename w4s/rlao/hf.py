"""Embedded GGUF models as transformers objects: the tokenizer for building RLAO data, dense weights for training.

The embedded meta-agent exists only as a quantized GGUF (that is what llama.cpp serves). transformers can read
a GGUF, but converting it takes tens of seconds, so each conversion is done once and cached as an ordinary
Hugging Face folder under ``cache_root()/hf/<model>-<sha256 prefix>/``; the digest prefix keeps a re-pinned
model from reusing a stale conversion. Folders appear by an atomic rename, so a present folder is complete.

torch and transformers are imported inside the functions: the core library must import without the ``train``
extra, and a missing extra is a W4SError that says how to install it.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from w4s.artifacts import cache_root
from w4s.embedded.models import EMBEDDED_MODELS, EmbeddedModel
from w4s.embedded.provision import ensure_model
from w4s.errors import W4SError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

INSTALL_HINT = "pip install 'w4s[train]'"


def require(module: str) -> ModuleType:
    """Import a module of the ``train`` extra, or say how to install it (instead of a bare ImportError)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise W4SError(f"the RLAO tools need {module!r}, which is part of the training extra: "
                       f"{INSTALL_HINT} ({exc})") from exc


def conversion_dir(model: EmbeddedModel) -> Path:
    """Where the conversions of ``model``'s GGUF live (``tokenizer/`` and ``model/`` below it)."""
    return cache_root() / "hf" / f"{model.name}-{model.sha256[:12]}"


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer (with its chat template) of an embedded model name or of a local Hugging Face folder.

    An embedded model's tokenizer is converted from its GGUF on first use (~30 s) and loaded from the cache
    afterwards (<1 s). Its ``name_or_path`` is set to the model name, so dataset summaries name the model
    rather than a cache path.
    """
    transformers = require("transformers")
    model = EMBEDDED_MODELS.get(name_or_path)
    folder = _tokenizer_folder(model) if model else _local_folder(name_or_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    if model:
        tokenizer.name_or_path = model.name
    return tokenizer


def materialize_model(name_or_path: str) -> Path:
    """A folder of dense safetensors weights plus tokenizer that transformers can train and save.

    A local folder is returned as is. An embedded model is converted once from its GGUF: transformers loads GGUF
    weights dequantized; they are stored as bfloat16 (the dtype the Qwen2.5 weights were released in, half the
    size of float32) with the tokenizer, so the folder can be uploaded to a store as a training base model.
    """
    model = EMBEDDED_MODELS.get(name_or_path)
    if model is None:
        return _local_folder(name_or_path)
    return build_once(conversion_dir(model) / "model", lambda staged: _convert_model(model, staged))


def _local_folder(path: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise W4SError(f"{path!r} is neither an embedded model ({known}) nor a local Hugging Face model folder")
    return folder


def _tokenizer_folder(model: EmbeddedModel) -> Path:
    return build_once(conversion_dir(model) / "tokenizer", lambda staged: _convert_tokenizer(model, staged))


def _convert_tokenizer(model: EmbeddedModel, staged: Path) -> None:
    transformers = require("transformers")
    path = ensure_model(model.name)
    special_ids = _gguf_special_ids(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for role, token_id in special_ids.items():
        setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))
    tokenizer.save_pretrained(str(staged))


def _gguf_special_ids(path: Path) -> dict[str, int]:
    """The GGUF's own bos / eos / pad token ids, which transformers 4.57's converters get wrong.

    They swap bos and eos for Llama-style vocabularies (SmolLM2 came out with eos ``<|im_start|>``) and keep
    the class default for Qwen2 (eos ``<|endoftext|>`` where the GGUF, like the original release, says
    ``<|im_end|>``). The eos token is what a server stops at and what a trainer may append, so it must be the
    one llama.cpp has been stopping at. Parsing the GGUF's header takes ~10 s, paid once per conversion.
    """
    reader = require("gguf").GGUFReader(str(path))
    ids = {}
    for role in ("bos", "eos", "pad"):
        field = reader.fields.get(f"tokenizer.ggml.{'padding' if role == 'pad' else role}_token_id")
        if field is not None:
            ids[role] = int(field.parts[field.data[0]][0])
    return ids


def _convert_model(model: EmbeddedModel, staged: Path) -> None:
    torch = require("torch")
    transformers = require("transformers")
    require("gguf")
    path = ensure_model(model.name)
    weights = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    _mark_dense(weights)
    weights.to(torch.bfloat16).save_pretrained(str(staged))
    load_tokenizer(model.name).save_pretrained(str(staged))


def _mark_dense(weights: PreTrainedModel) -> None:
    """Make sure nothing marks the dequantized model as quantized.

    A quantized model (``hf_quantizer`` set, ``is_quantized`` true, a ``quantization_config`` in its config) is
    refused by Trainer for full fine-tuning and saved with that config, which would make every later load try to
    quantize again. transformers 4.57 leaves all three unset for GGUF weights (they are plain dequantized
    tensors); clearing them keeps another version of the pinned range from carrying them into the folder.
    """
    weights.hf_quantizer = None
    weights.is_quantized = False
    if hasattr(weights.config, "quantization_config"):
        del weights.config.quantization_config


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first if missing: built in a scratch folder beside it, then renamed.

    Readers therefore never see a half-written folder; when two processes convert at once, the first rename
    wins and the other's copy is discarded.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as scratch:
        staged = Path(scratch) / target.name
        build(staged)
        try:
            os.rename(staged, target)
        except OSError:
            if not target.is_dir():
                raise
    return target
