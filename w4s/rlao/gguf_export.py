"""A trained meta-agent checkpoint as a GGUF file, so the embedded engine (llama.cpp) can serve it.

A checkpoint is a folder with dense safetensors weights or a LoRA adapter (``adapter_config.json`` +
``adapter_model.safetensors``), tokenizer files, and ``w4s-manifest.json`` naming its base model. A LoRA adapter
is first merged into its base. The dense folder is then converted by llama.cpp's own ``convert_hf_to_gguf.py``:
the installed llama-cpp-python wheel does not ship it, so it is taken once from the sdist of the very version
that serves the file (converter and server must agree on the format) and cached per version.

The tokenizer of an embedded base model was made by transformers from that model's GGUF, and the converter
writes such a tokenizer back with the wrong vocabulary type (SmolLM2: llama.cpp then fails on the first
request). So every ``tokenizer.*`` field of the converted file is replaced by that GGUF's, when there is one.

Conversions are cached under ``cache_root()/checkpoints/`` by a digest of the checkpoint's files, the
llama-cpp-python version and the recipe below, and appear by an atomic rename, so a present file is complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from w4s.artifacts import cache_root
from w4s.embedded.llama_server import server_env
from w4s.embedded.models import EMBEDDED_MODELS
from w4s.embedded.provision import GGUF_MAGIC, ensure_model
from w4s.errors import ArtifactError, W4SError
from w4s.rlao.hf import INSTALL_HINT, build_once, materialize_model, require

if TYPE_CHECKING:
    from gguf import GGUFWriter
    from gguf.gguf_reader import ReaderField

MANIFEST_FILE = "w4s-manifest.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs besides the vendored gguf-py: checked up front so that a missing extra is one clear
# error rather than an ImportError deep in a subprocess log.
_CONVERTER_MODULES = ("torch", "numpy", "transformers", "sentencepiece", "safetensors", "gguf")
# Part of every cache key: change it whenever the steps below change what ends up in the file.
RECIPE = "f16+base-tokenizer/1"
OUTTYPE = "f16"
_TOKENIZER_PREFIX = "tokenizer."
_LOG_TAIL_LINES = 30

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder as read from its manifest and files."""

    folder: Path
    base_model: str  # an embedded model name, or a path / store URI of a Hugging Face folder
    adapter: bool  # a LoRA adapter on base_model rather than dense weights


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Check that ``path`` is a checkpoint (cheap: no weights are read) and say what kind it is."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise W4SError(f"meta-agent checkpoint {path}: no such folder")
    manifest = folder / MANIFEST_FILE
    try:
        base = json.loads(manifest.read_text(encoding="utf-8"))["baseModel"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise W4SError(f"{folder} is not a w4s checkpoint: {MANIFEST_FILE} naming its baseModel is missing or "
                       f"unreadable ({exc!r})") from None
    if not isinstance(base, str) or not base:
        raise W4SError(f"{manifest}: baseModel must be a non-empty string, got {base!r}")
    adapter = all((folder / name).is_file() for name in ADAPTER_FILES)
    weights = [p for p in folder.glob("*.safetensors") if p.name not in ADAPTER_FILES]
    dense = (folder / "config.json").is_file() and bool(weights)
    if not (adapter or dense):
        raise W4SError(f"{folder} holds no model weights: expected config.json with *.safetensors, or a LoRA "
                       f"adapter ({' + '.join(ADAPTER_FILES)})")
    return Checkpoint(folder, base, adapter)


def checkpoint_gguf(path: str | Path, progress: Progress | None = None) -> Path:
    """The GGUF file of the checkpoint at ``path``: converted on first use, from the cache afterwards."""
    checkpoint = read_checkpoint(path)
    target = gguf_path(checkpoint)
    if target.is_file():
        return target
    report = progress or (lambda _line: None)
    _require_modules(*_CONVERTER_MODULES, *(("peft",) if checkpoint.adapter else ()))
    converter = converter_dir(report)
    report(f"converting checkpoint {checkpoint.folder} to GGUF ({OUTTYPE}) -> {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=target.parent) as scratch:
        work = Path(scratch)
        dense = _merged(checkpoint, work / "merged") if checkpoint.adapter else checkpoint.folder
        converted = work / "converted.gguf"
        log = cache_root() / "logs" / f"convert-{target.stem}.log"
        _convert(converter, _converter_input(dense, work / "input"), checkpoint.folder.name, converted, log)
        source = _tokenizer_source(checkpoint, dense, report)
        if source is not None:
            spliced = work / "spliced.gguf"
            _splice_tokenizer(converted, source, spliced)
            converted = spliced
        os.replace(converted, target)
    return target


def gguf_path(checkpoint: Checkpoint) -> Path:
    """Where the conversion of ``checkpoint`` is cached (reading its files: seconds per GB)."""
    digest = hashlib.sha256(f"{RECIPE}\0{_llama_cpp_version()}\0".encode())
    for relative, file in _files(checkpoint.folder):
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return cache_root() / "checkpoints" / f"{digest.hexdigest()[:32]}.gguf"


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every file below ``folder`` in a fixed order, with its path relative to it."""
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        yield file.relative_to(folder).as_posix(), file


def _require_modules(*names: str) -> None:
    """Check (without importing them: torch takes seconds) that the modules of the train extra are there."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise W4SError(f"converting a checkpoint to GGUF needs {', '.join(missing)}, part of the training extra: "
                       f"{INSTALL_HINT}")


def _llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise W4SError("serving a checkpoint needs llama-cpp-python (its version picks the GGUF converter): "
                       "pip install 'w4s[serve]'") from None


def converter_dir(progress: Progress | None = None) -> Path:
    """A folder with llama.cpp's ``convert_hf_to_gguf.py``, ``conversion/`` and ``gguf-py/`` for the installed
    llama-cpp-python, fetched once from its sdist (76 MB, of which 2 MB are kept)."""
    version = _llama_cpp_version()
    target = cache_root() / "llama-convert" / version
    if not target.is_dir():
        (progress or (lambda _line: None))(f"fetching llama.cpp's GGUF converter (llama-cpp-python {version} sdist)")
    return build_once(target, lambda staged: _fetch_converter(version, staged))


def _fetch_converter(version: str, staged: Path) -> None:
    requirement = f"llama-cpp-python=={version}"
    # ``staged``'s parent is build_once's scratch folder, removed afterwards: the sdist is downloaded there.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "--disable-pip-version-check",
           "--quiet", "-d", str(staged.parent), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sdists = list(staged.parent.glob("*.tar.gz"))
    if proc.returncode != 0 or len(sdists) != 1:
        raise ArtifactError(f"could not download the sdist of {requirement}: {proc.stderr.strip()[-2000:]}")
    with tarfile.open(sdists[0]) as tar:
        scripts = [m.name for m in tar.getmembers() if m.name.endswith(f"/vendor/llama.cpp/{CONVERTER}")]
        if len(scripts) != 1:
            raise ArtifactError(f"{sdists[0].name} holds no vendor/llama.cpp/{CONVERTER}")
        root = scripts[0].removesuffix(CONVERTER)
        wanted = (f"{root}{CONVERTER}", f"{root}conversion/", f"{root}gguf-py/")
        members = [m for m in tar.getmembers() if m.name.startswith(wanted)]
        tar.extractall(staged.parent / "sdist", members=members, filter="data")
    os.rename(staged.parent / "sdist" / root, staged)


def _converter_input(dense: Path, staged: Path) -> Path:
    """``dense``, or a view of it without a ``tokenizer.model`` that is really a GGUF file.

    transformers keeps the GGUF it read a tokenizer from as that tokenizer's ``tokenizer.model``, and saves it
    along (an embedded base's tokenizer, hence its checkpoints'); the converter takes any ``tokenizer.model`` for
    a SentencePiece model and stops on it. Without it, it reads ``tokenizer.json``.
    """
    spm = dense / "tokenizer.model"
    if not _is_gguf(spm):
        return dense
    staged.mkdir()
    for entry in dense.iterdir():
        if entry != spm:
            (staged / entry.name).symlink_to(entry)
    return staged


def _is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as stream:
        return stream.read(len(GGUF_MAGIC)) == GGUF_MAGIC


def _convert(converter: Path, dense: Path, name: str, out: Path, log: Path) -> None:
    """Run the converter in a child process (its imports and memory go away with it); its log is kept.

    It gets the model server's environment: no provider keys, and no NO_LOCAL_GGUF, which would make it use the
    installed gguf package instead of the gguf-py it was written with.
    """
    cmd = [sys.executable, str(converter / CONVERTER), str(dense), "--outfile", str(out), "--outtype", OUTTYPE,
           "--model-name", name]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        code = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=server_env(), check=False).returncode
    if code != 0 or not out.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
        raise W4SError(f"converting {dense} to GGUF failed (exit status {code}); last lines of {log}:\n{tail}")


def _merged(checkpoint: Checkpoint, staged: Path) -> Path:
    """The adapter merged into its base, saved as a dense folder with the checkpoint's tokenizer.

    The base is loaded in float32: merged into bfloat16 weights, a small trained update would mostly round away.
    """
    peft = require("peft")
    transformers = require("transformers")
    try:
        base_folder = materialize_model(checkpoint.base_model)
    except W4SError as exc:
        raise W4SError(f"{checkpoint.folder} is a LoRA adapter on {checkpoint.base_model!r}, which is not available "
                       f"here ({exc}); copy it to a folder (w4s store get URI DIR) and set baseModel in "
                       f"{MANIFEST_FILE} to that folder") from None
    base = transformers.AutoModelForCausalLM.from_pretrained(str(base_folder))
    merged = peft.PeftModel.from_pretrained(base, str(checkpoint.folder)).merge_and_unload()
    merged.save_pretrained(str(staged))
    transformers.AutoTokenizer.from_pretrained(str(checkpoint.folder)).save_pretrained(str(staged))
    return staged


def _tokenizer_source(checkpoint: Checkpoint, dense: Path, progress: Progress) -> Path | None:
    """The GGUF the checkpoint's tokenizer was converted from, if any: the embedded base model's, or the one that
    transformers kept as ``tokenizer.model`` (a base given as a folder or URI that was made from an embedded one)."""
    if checkpoint.base_model in EMBEDDED_MODELS:
        return ensure_model(checkpoint.base_model, progress=progress)
    kept = dense / "tokenizer.model"
    return kept if _is_gguf(kept) else None


def _splice_tokenizer(converted: Path, base: Path, out: Path) -> None:
    """Write ``converted`` to ``out`` with every ``tokenizer.*`` field taken from the ``base`` GGUF instead."""
    gguf = require("gguf")
    model, original = gguf.GGUFReader(converted), gguf.GGUFReader(base)
    tokens = _TOKENIZER_PREFIX + "ggml.tokens"
    if len(model.fields[tokens].data) != len(original.fields[tokens].data):
        raise W4SError(f"the checkpoint's vocabulary ({len(model.fields[tokens].data)} tokens) differs from its base "
                       f"model's ({len(original.fields[tokens].data)}): cannot serve it with the base's tokenizer")
    arch = model.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(out, arch, endianess=model.endianess)
    for field in model.fields.values():
        if not field.name.startswith(_TOKENIZER_PREFIX):
            _copy_field(gguf, writer, field)
    for field in original.fields.values():
        if field.name.startswith(_TOKENIZER_PREFIX):
            _copy_field(gguf, writer, field)
    for tensor in model.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                               tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in model.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=model.endianess)
    writer.close()


def _copy_field(gguf: ModuleType, writer: GGUFWriter, field: ReaderField) -> None:
    """Copy one metadata field; the architecture and the reader's virtual ``GGUF.*`` fields are the writer's own."""
    if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
        return
    kind = field.types[0]
    sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)
