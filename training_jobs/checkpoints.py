"""Checkpoints in the output store: what they hold, how a restarted Job finds them, and the final export.

Layout under the output URI:

    checkpoints/step-00000040/   the Trainer's checkpoint (fp32 weights, optimizer, scheduler, RNG, trainer
                                 state, tokenizer): enough to continue exactly where it stopped
    final/                       the trained model for serving: safetensors in the base model's dtype, tokenizer,
                                 no optimizer state (it is what a meta-agent server downloads)

Every folder's ``w4s-manifest.json`` is stored LAST: a folder without one is an interrupted upload and is
ignored. Only the newest complete checkpoint is kept in the store; optimizer state for a 7B model is ~56 GB.
The manifest names what was trained (dataset hash, base model, algorithm, hyper-parameters, LoRA), so a
restarted Job resumes only a checkpoint of the same training and refuses to mix another one in.
"""

from __future__ import annotations

import array
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from accelerate.state import PartialState
from peft import PeftModel
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

import w4s
from w4s.errors import W4SError
from w4s.rlao.dataset import DatasetSummary, TrainingExample
from w4s.store import Store

MANIFEST = "w4s-manifest.json"
FINAL = "final"
_CHECKPOINT = re.compile(r"^checkpoints/step-(\d+)/" + re.escape(MANIFEST) + "$")
# What makes two runs the same training: a checkpoint is resumed, and a final export accepted, only on a match.
IDENTITY = ("datasetSha256", "baseModel", "algorithm", "hyperparameters", "lora")
LIBRARIES = ("torch", "transformers", "trl", "accelerate", "peft", "safetensors", "datasets")
Report = Callable[[dict[str, Any]], None]  # status fields to write, on process 0 (TrainingStatus.report)


def dataset_hash(examples: Sequence[TrainingExample]) -> str:
    """sha256 of exactly what is trained on, in order: token ids, labels and weights of every example."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(array.array("q", example.input_ids).tobytes())
        digest.update(array.array("q", example.labels).tobytes())
        digest.update(float(example.weight).hex().encode())
    return digest.hexdigest()


def git_revision() -> str | None:
    """The code's revision: ``W4S_REVISION`` (set in images), else the source checkout's HEAD, else None."""
    if revision := os.environ.get("W4S_REVISION"):
        return revision
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def base_manifest(*, summary: DatasetSummary, digest: str, base_model: str, algorithm: str,
                  hyperparameters: dict[str, Any], lora: dict[str, Any] | None,
                  max_steps: int | None) -> dict[str, Any]:
    """Everything a checkpoint's manifest says except its step and kind."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"datasetSha256": digest, "dataset": asdict(summary), "baseModel": base_model, "algorithm": algorithm,
            "hyperparameters": hyperparameters, "lora": lora, "maxSteps": max_steps,
            "w4sVersion": w4s.__version__, "gitRevision": git_revision(), "libraries": versions}


def check_same_training(found: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    """Refuse to continue from a checkpoint of another training (other data, model or settings)."""
    differ = [key for key in IDENTITY if found.get(key) != ours.get(key)]
    if differ:
        raise W4SError(f"{where} belongs to a different training ({', '.join(differ)} differ); give this training "
                       "a new output")


def is_finished(store: Store, ours: dict[str, Any]) -> dict[str, Any] | None:
    """The final export's manifest when this very training (same max steps too) already finished, else None."""
    key = f"{FINAL}/{MANIFEST}"
    if not store.exists(key):
        return None
    found = store.get_json(key)
    same = all(found.get(k) == ours.get(k) for k in (*IDENTITY, "maxSteps"))
    return found if same else None


def latest_checkpoint(store: Store) -> tuple[int, str] | None:
    """(step, prefix) of the newest checkpoint whose upload completed, or None."""
    found = [(int(m.group(1)), key.removesuffix(f"/{MANIFEST}"))
             for key in store.list("checkpoints/") if (m := _CHECKPOINT.match(key))]
    return max(found) if found else None


def download(store: Store, prefix: str, local: Path) -> None:
    """Replace ``local`` with the store's folder ``prefix`` (nothing stale from an earlier attempt survives)."""
    shutil.rmtree(local, ignore_errors=True)
    if not store.get_dir(prefix, local):
        raise W4SError(f"nothing stored under {store.uri}/{prefix}")


def upload(store: Store, prefix: str, local: Path, manifest: dict[str, Any]) -> str:
    """Upload a folder, then its manifest (the completion marker); return the folder's URI."""
    (local / MANIFEST).unlink(missing_ok=True)  # a resumed checkpoint's old copy must not go up before the rest
    store.put_dir(prefix, local)
    store.put_json(f"{prefix}/{MANIFEST}", manifest)
    return f"{store.uri.rstrip('/')}/{prefix}"


def prune_checkpoints(store: Store, keep: str) -> None:
    """Delete every stored checkpoint but ``keep``; the manifest goes first, so a crash half-way leaves an
    incomplete folder that nothing will resume from."""
    keys = [key for key in store.list("checkpoints/") if not key.startswith(f"{keep}/")]
    for key in sorted(keys, key=lambda k: not k.endswith(f"/{MANIFEST}")):
        store.delete(key)


class CheckpointUploader(TrainerCallback):
    """After each Trainer checkpoint: wait for every process to finish writing it, then (process 0) upload it
    with its manifest and drop the older one from the store."""

    def __init__(self, store: Store, manifest: dict[str, Any], report: Report | None = None) -> None:
        self.store = store
        self.manifest = manifest
        self.report = report

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        PartialState().wait_for_everyone()
        if state.is_world_process_zero:
            prefix = f"checkpoints/step-{state.global_step:08d}"
            local = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            uri = upload(self.store, prefix, local, {**self.manifest, "kind": "checkpoint",
                                                     "step": state.global_step})
            prune_checkpoints(self.store, prefix)
            if self.report:
                self.report({"checkpointUri": uri})
        PartialState().wait_for_everyone()


def export_model(trainer: Trainer, directory: Path, dtype: torch.dtype) -> None:
    """Write the trained model as a plain transformers folder (safetensors in ``dtype``, tokenizer).

    Training keeps fp32 master weights; the cast to the base model's dtype happens once, here, on the
    accumulated update (rounding it every step is what would swallow lr-1e-5 updates). LoRA adapters are
    merged, so the export is served like any model. Every process must call this: under FSDP the full state
    dict is gathered to process 0, which alone writes.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
        state = model.state_dict()
    else:
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # the FSDP root, when sharded
    if not trainer.is_world_process_zero():
        return
    cast: dict[tuple[int, torch.Size], torch.Tensor] = {}  # tied weights (one storage) stay one tensor
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tensor.shape)
        if key not in cast:
            cast[key] = tensor.detach().to("cpu", dtype)
        state[name] = cast[key]
    shutil.rmtree(directory, ignore_errors=True)
    model.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
    model.config.dtype = dtype  # save_pretrained wrote the fp32 parameters' dtype; a server loads this one
    model.config.save_pretrained(str(directory))
    trainer.processing_class.save_pretrained(str(directory))
