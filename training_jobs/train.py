"""``python -m training_jobs.train``: RLAO training of the meta-agent (RWR, or the SFT ablation).

The MetaAgentTraining Job runs it under ``accelerate launch`` (operator/w4s_operator/children.py) with
``--config /etc/w4s/training.yaml --status-resource NS/NAME``; on a laptop it runs as plain Python on the CPU.
Steps: read the config, fetch the base model, build the weighted dataset from the trajectory records, train
with the paper's hyper-parameters (lr 1e-5, 4 epochs, cosine, per-device batch 1, accumulation 16), upload a
checkpoint every ``saveSteps`` and the final export, and report progress and the result to the status.

A restarted Job never redoes finished steps: it resumes from the newest complete checkpoint in the output
(weights, optimizer, scheduler, data order), and when the final export of this same training is already
there it only reports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from peft import LoraConfig
from transformers import AutoConfig, AutoModelForCausalLM
from trl import SFTConfig

from training_jobs import checkpoints
from training_jobs.config import TrainingConfig, load_config
from training_jobs.status import StatusCallback, TrainingStatus
from training_jobs.trainer import RWRCollator, RWRTrainer, to_dataset
from w4s.errors import W4SError
from w4s.rlao.dataset import build_examples, read_records
from w4s.rlao.hf import load_tokenizer, materialize_model
from w4s.store import Store, open_store

log = logging.getLogger("w4s.train")


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the final export's URI, the step reached, the step it resumed from (None: it did not)."""

    final_uri: str
    step: int
    resumed_from: int | None
    skipped: bool  # the final export of this training was already there: nothing was trained


def training_args(config: TrainingConfig, work_dir: Path, max_steps: int | None, on_gpu: bool) -> SFTConfig:
    """The paper's hyper-parameters (via the spec's defaults) as Trainer arguments.

    GPU: bf16 autocast over fp32 master weights and gradient checkpointing. CPU: plain fp32. Warm-up applies to
    every scheduler, constant included. ``group_by_length`` only when a batch holds several examples: at the
    paper's batch of 1 there is no padding to save, and it would order each epoch longest-first.
    """
    hp = config.hyperparameters
    scheduler = "constant_with_warmup" if hp.scheduler == "constant" else hp.scheduler
    return SFTConfig(
        output_dir=str(work_dir / "checkpoints"),
        learning_rate=float(hp.learning_rate), num_train_epochs=hp.epochs, max_steps=max_steps or -1,
        lr_scheduler_type=scheduler, warmup_ratio=float(hp.warmup_ratio),
        per_device_train_batch_size=hp.per_device_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        seed=hp.seed, data_seed=hp.seed,
        bf16=on_gpu, use_cpu=not on_gpu, gradient_checkpointing=on_gpu,
        group_by_length=hp.per_device_batch_size > 1,
        # every saveSteps, else at each epoch's end; either way also where training stops (max steps)
        save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
        save_total_limit=1,
        logging_steps=1, logging_first_step=True, disable_tqdm=True, report_to="none",
        remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
    )


def base_model_folder(base_model: str, work_dir: Path) -> Path:
    """A local transformers folder for the base model: an s3:// folder is downloaded (once per pod), a file://
    folder or local path is used in place, an embedded model name is converted from its GGUF."""
    if base_model.startswith("file://"):
        return Path(unquote(urlparse(base_model).path))
    if not base_model.startswith("s3://"):
        return materialize_model(base_model)
    local = work_dir / "base-model"
    marker = local / ".w4s-downloaded"
    if not marker.exists():
        parent, _, name = base_model.rstrip("/").rpartition("/")
        if parent.endswith(":/"):
            raise W4SError(f"baseModel {base_model!r}: expected a folder inside a bucket (s3://bucket/model)")
        checkpoints.download(open_store(parent), name, local)
        marker.touch()
    return local


def lora_config(config: TrainingConfig) -> LoraConfig | None:
    if config.lora is None:
        return None
    return LoraConfig(r=config.lora.rank, lora_alpha=config.lora.alpha, lora_dropout=float(config.lora.dropout),
                      target_modules=list(config.lora.target_modules), task_type="CAUSAL_LM")


def run(config: TrainingConfig, work_dir: Path, *, max_steps: int | None = None,
        status: TrainingStatus | None = None) -> Outcome:
    """Train (or resume, or recognise as done) the training that ``config`` describes."""
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        # Denormal floats (tiny gradients squared in Adam's second moment, dequantized weights) take a slow path
        # in x86 fp32 arithmetic; flushed to zero they cost nothing, and no value that small matters to training.
        torch.set_flush_denormal(True)
        os.environ["ACCELERATE_MIXED_PRECISION"] = "no"  # accelerate launch's bf16 is for GPUs
    args = training_args(config, work_dir, max_steps, on_gpu)
    store = open_store(config.output)
    with args.main_process_first(local=True, desc="base model"):
        model_dir = base_model_folder(config.base_model, work_dir)
    tokenizer = load_tokenizer(str(model_dir))
    hp = config.hyperparameters
    floor = None if hp.score_floor is None else float(hp.score_floor)
    examples, summary = build_examples(read_records(config.record_uris()), tokenizer, tau=float(hp.tau),
                                       algorithm=config.algorithm, score_floor=floor,
                                       max_seq_length=hp.max_seq_length)
    if not examples:
        raise W4SError(f"no training examples in {', '.join(config.record_uris())}: {summary}")
    manifest = checkpoints.base_manifest(
        summary=summary, digest=checkpoints.dataset_hash(examples), base_model=config.base_model,
        algorithm=config.algorithm, hyperparameters=hp.model_dump(mode="json", by_alias=True),
        lora=config.lora.model_dump(mode="json", by_alias=True) if config.lora else None, max_steps=max_steps)
    log.info("%d examples, %d tokens (%d in actions), dataset %s", summary.examples, summary.tokens,
             summary.action_tokens, manifest["datasetSha256"][:12])
    report = status.report if status else None
    if done := checkpoints.is_finished(store, manifest):
        log.info("the final export of this training is already in %s: nothing to do", store.uri)
        uri = f"{store.uri.rstrip('/')}/{checkpoints.FINAL}"
        if report:  # the attempt that wrote it may have died before saying so
            report({"step": done["step"], "totalSteps": done["step"], "progress": f"{done['step']}/{done['step']}",
                    "checkpointUri": uri})
        return Outcome(uri, done["step"], None, skipped=True)

    trainer = RWRTrainer(
        model=AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32),
        args=args, data_collator=RWRCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                             else tokenizer.eos_token_id),
        train_dataset=to_dataset(examples), processing_class=tokenizer, peft_config=lora_config(config),
        callbacks=[checkpoints.CheckpointUploader(store, manifest, report)] + ([StatusCallback(status)]
                                                                              if status else []))
    resume = _fetch_checkpoint(store, manifest, trainer, work_dir)
    trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)

    final = work_dir / checkpoints.FINAL
    checkpoints.export_model(trainer, final, _base_dtype(model_dir))
    uri = f"{store.uri.rstrip('/')}/{checkpoints.FINAL}"
    if trainer.is_world_process_zero():
        uri = checkpoints.upload(store, checkpoints.FINAL, final,
                                 {**manifest, "kind": "final", "step": trainer.state.global_step})
        if report:
            report({"checkpointUri": uri})
    trainer.accelerator.wait_for_everyone()
    return Outcome(uri, trainer.state.global_step, resume[0] if resume else None, skipped=False)


def _base_dtype(model_dir: Path) -> torch.dtype:
    """The dtype the base model was released in (the final export's), float32 when its config says none."""
    dtype = AutoConfig.from_pretrained(str(model_dir)).dtype
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, dtype or "float32")


def _fetch_checkpoint(store: Store, manifest: dict[str, Any], trainer: RWRTrainer,
                      work_dir: Path) -> tuple[int, Path] | None:
    """(step, local folder) of the newest complete checkpoint of this training in the store, downloaded once
    per node; None when there is none."""
    latest = checkpoints.latest_checkpoint(store)
    if latest is None:
        return None
    step, prefix = latest
    checkpoints.check_same_training(store.get_json(f"{prefix}/{checkpoints.MANIFEST}"), manifest,
                                    f"{store.uri}/{prefix}")
    local = work_dir / "checkpoints" / f"checkpoint-{step}"
    if trainer.accelerator.is_local_main_process:
        checkpoints.download(store, prefix, local)
    trainer.accelerator.wait_for_everyone()
    log.info("resuming from step %d (%s/%s)", step, store.uri, prefix)
    return step, local


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training_jobs.train",
                                     description="RLAO training of the meta-agent: RWR, or the SFT ablation.")
    parser.add_argument("--config", type=Path, required=True, help="training.yaml: the MetaAgentTraining spec "
                        "plus trajectoryUris and output")
    parser.add_argument("--status-resource", help="NAMESPACE/NAME of the MetaAgentTraining to report to")
    parser.add_argument("--output", help="store URI or directory for checkpoints (replaces the config's)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (tests, benches)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "w4s-train",
                        help="local scratch for the base model and checkpoints (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    status = None
    if args.status_resource and os.environ.get("RANK", "0") == "0":  # process 0 alone reports (accelerate sets RANK)
        status = TrainingStatus(args.status_resource)
    try:
        config = load_config(args.config, args.output)
        outcome = run(config, args.work_dir, max_steps=args.max_steps, status=status)
    except (W4SError, torch.OutOfMemoryError) as err:
        # Permanent: a retry would fail the same way. Anything else propagates, and the Job's retry resumes.
        log.error("training failed: %s", err)
        if status:
            status.finish({"status": "failed", "reason": f"{type(err).__name__}: {err}"[:1024]})
        return 2
    except BaseException:
        if status:
            status.finish(None)
        raise
    log.info("final model: %s (step %d)", outcome.final_uri, outcome.step)
    if status:
        status.finish({"status": "completed", "reason": f"{outcome.step} steps; model at {outcome.final_uri}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
