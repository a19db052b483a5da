"""Training throughput: the RWR trainer against plain TRL SFTTrainer, tokens/s and peak memory side by side.

    .venv/bin/python bench/train_throughput.py [--model smollm2-135m-instruct|qwen2.5-7b-random] [--steps N]
        [--seq-len T] [--batch B] [--accumulation A] [--weights fp32|bf16] [--avg-tokens 6000]
        [--trainers rwr,sft] [--timeout 1800]

Why (issue 6): the RWR trainer (training_jobs/trainer.py) replaces SFTTrainer's collator and loss. It must not
cost throughput or memory against the stock trainer it derives from, and on a GPU the paper's run (212
trajectories x 4 epochs of Qwen2.5-7B) has to fit in under 15 minutes on one H100.

What is measured: the same model, the same synthetic examples and the same Trainer arguments (those of
``training_jobs.train.training_args``: fp32 on the CPU; bf16 autocast and gradient checkpointing on a GPU; logging
every step; checkpoint saving off, since the bench measures steps, not uploads) go through

- ``rwr``: ``RWRTrainer`` with ``RWRCollator`` and the weighted action-only loss of ``training_jobs/loss.py``
  (logits only at the positions that predict a labelled token);
- ``sft``: plain ``trl.SFTTrainer`` with its default collator (``DataCollatorForLanguageModeling``) and loss
  (the model's own cross-entropy over the full logits, plus TRL's entropy and token-accuracy metrics), on the same
  pre-tokenized examples carrying the same ``labels`` column: completion-only loss on the same tokens.

Each trainer runs in its own subprocess, one after the other, so peak memory belongs to that trainer alone: peak
RSS (``resource.getrusage`` maxrss: the process's high-water mark, imports and model included) and, on a GPU,
``torch.cuda.max_memory_allocated`` over the whole run. Each runs 1 warm-up optimizer step and then ``--steps``
timed ones; a step's end is taken in ``on_step_end`` (after a CUDA synchronize on a GPU), so the timed span
covers data loading, forward, backward, optimizer and the per-step logging, as in a real run. tokens/s counts
every token of every sequence (state and action: all go through the model) and is taken at the median step
time, so that a step slowed by another process on a shared machine does not decide the comparison; the s/step
column shows the median with the fastest and slowest timed step (the mean is in the worker's JSON).

Data: N = (steps + 1) x batch x accumulation examples of exactly ``--seq-len`` random token ids (seed 0), the last
quarter labelled (the action), rewards drawn from the paper's {0, 0.5, 1} with weights exp(r / 0.4). No dataset
and no download: ``smollm2-135m-instruct`` (the default without a GPU) is the embedded model converted by
``w4s.rlao.hf.materialize_model`` (cached after the first conversion); ``qwen2.5-7b-random`` is the Qwen2.5-7B
architecture (a ``Qwen2Config`` with its dimensions, written below) with random weights built directly on the GPU
and a stand-in word-level tokenizer with Qwen's pad token at its id (the only thing the trainers read from it).
The 7B model is only sensible on a GPU; use it with ``--seq-len 8192`` (its default).

On a GPU the table adds MFU = 6 x params x tokens/s / peak dense bf16 FLOP/s of the GPU (params: all of them,
embeddings included; 6N ignores attention and the recomputation of gradient checkpointing, and the RWR loss
skips the vocabulary projection on unlabelled positions, so it is an effective figure for comparing the two, not
a hardware count), omitted for GPUs not in ``PEAK_BF16``, and the projected time of the paper's training,
212 trajectories x 4 epochs x ``--avg-tokens`` tokens at the measured tokens/s, against the target (under 15
minutes on one H100). With ``--weights fp32`` (the default, as training_jobs.train loads the model) a 7B model
holds ~16 bytes a parameter of weights, gradients and Adam state; ``--weights bf16`` halves the weights and
gradients. A trainer that runs out of memory is reported as such in its row.

The machine is shared (see the header: cores, load average), so compare runs made at about the same time.
"""

from __future__ import annotations

import os
import sys

# This file's directory must not come first on the import path: its sibling operator.py would shadow the standard
# library's `operator`, which torch imports. Last, its sibling machine.py still imports.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from machine import machine_lines  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

SMOLLM = "smollm2-135m-instruct"
QWEN_7B = "qwen2.5-7b-random"
MODELS = (SMOLLM, QWEN_7B)
TRAINERS = {"rwr": "RWRTrainer (RWRCollator, RWR loss)", "sft": "SFTTrainer (TRL's collator and loss)"}
TAU = 0.4
REWARDS = (0.0, 0.5, 1.0)
# Qwen2.5-7B's architecture (its released config.json), random weights.
QWEN_7B_CONFIG = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                  "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                  "rope_theta": 1_000_000.0, "max_position_embeddings": 32768, "tie_word_embeddings": False,
                  "rms_norm_eps": 1e-6, "hidden_act": "silu", "use_sliding_window": False,
                  "bos_token_id": 151643, "eos_token_id": 151643}
QWEN_PAD = ("<|endoftext|>", 151643)
# Peak dense bf16 FLOP/s by GPU name: (substrings that must all be in torch.cuda.get_device_name(), peak).
PEAK_BF16 = ((("H200",), 989e12), (("H100", "SXM"), 989e12), (("H100", "HBM3"), 989e12), (("A100",), 312e12))
PAPER_TRAJECTORIES, PAPER_EPOCHS, TARGET_MINUTES = 212, 4, 15.0
GIB = 1024 ** 3


def peak_bf16(gpu_name: str) -> float | None:
    """The GPU's peak dense bf16 FLOP/s, or None when it is not in the table (H200 NVL and H100 PCIe/NVL are not)."""
    if "NVL" in gpu_name or "PCIe" in gpu_name:
        return None
    return next((peak for names, peak in PEAK_BF16 if all(n in gpu_name for n in names)), None)


# ---- worker: one trainer in its own process ---------------------------------------------------------------------


def synthetic_examples(count: int, seq_len: int, vocab: int, seed: int = 0) -> list[Any]:
    """``count`` TrainingExamples of ``seq_len`` random token ids, the last quarter labelled, random rewards."""
    from w4s.rlao.dataset import IGNORE_INDEX, TrainingExample

    rng = random.Random(seed)
    action = max(1, seq_len // 4)
    examples = []
    for i in range(count):
        ids = [rng.randrange(vocab) for _ in range(seq_len)]
        reward = rng.choice(REWARDS)
        examples.append(TrainingExample(input_ids=ids, labels=[IGNORE_INDEX] * (seq_len - action) + ids[-action:],
                                        weight=math.exp(reward / TAU), reward=reward, source=f"synthetic/{i}"))
    return examples


def stand_in_tokenizer() -> Any:
    """A word-level tokenizer with Qwen's pad token at Qwen's id (the trainers read nothing else from it) and
    placeholder tokens below it, so that its vocabulary has no holes."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    token, token_id = QWEN_PAD
    vocab = {f"<t{i}>": i for i in range(token_id)} | {token: token_id}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token=token)),
                                   pad_token=token, eos_token=token, unk_token=token)


def load_model(name: str, weights: str, on_gpu: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    dtype = torch.float32 if weights == "fp32" else torch.bfloat16
    if name == QWEN_7B:
        torch.manual_seed(0)
        with torch.device("cuda" if on_gpu else "cpu"):
            model = AutoModelForCausalLM.from_config(Qwen2Config(**QWEN_7B_CONFIG), dtype=dtype)
        return model, stand_in_tokenizer()
    from w4s.rlao.hf import load_tokenizer, materialize_model

    folder = materialize_model(name)
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype), load_tokenizer(str(folder))


def bench_args(args: argparse.Namespace, work_dir: Path, on_gpu: bool) -> Any:
    """training_jobs.train's Trainer arguments for this batch and accumulation, with checkpoint saving off."""
    from transformers.trainer_utils import SaveStrategy

    from training_jobs.config import TrainingConfig
    from training_jobs.train import training_args

    config = TrainingConfig.model_validate({
        "baseModel": args.model, "trajectories": [{"uri": "file:///synthetic"}], "output": str(work_dir / "out"),
        "hyperparameters": {"perDeviceBatchSize": args.batch, "gradientAccumulationSteps": args.accumulation,
                            "maxSeqLength": max(128, args.seq_len)}})
    targs = training_args(config, work_dir, args.steps + 1, on_gpu)
    targs.save_strategy = SaveStrategy.NO
    return targs


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Train ``args.worker`` for 1 + ``args.steps`` optimizer steps; return what the table needs."""
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu:  # as training_jobs.train does
        torch.set_flush_denormal(True)
        os.environ["ACCELERATE_MIXED_PRECISION"] = "no"
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from training_jobs.trainer import RWRCollator, RWRTrainer, to_dataset

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, *_: Any, **__: Any) -> None:
            if on_gpu:
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    result: dict[str, Any] = {"trainer": args.worker, "on_gpu": on_gpu,
                              "device": torch.cuda.get_device_name() if on_gpu
                              else f"cpu ({torch.get_num_threads()} threads)"}
    work_dir = Path(tempfile.mkdtemp(prefix=f"w4s-bench-train-{args.worker}-"))  # the Trainer's output_dir
    try:
        model, tokenizer = load_model(args.model, args.weights, on_gpu)
        result["params"] = sum(p.numel() for p in model.parameters())
        result["rss_loaded"] = rss_bytes()
        examples = synthetic_examples((args.steps + 1) * args.batch * args.accumulation, args.seq_len,
                                      model.config.vocab_size)
        targs = bench_args(args, work_dir, on_gpu)
        result["gradient_checkpointing"] = bool(targs.gradient_checkpointing)
        timer = StepTimer()
        if args.worker == "rwr":
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            trainer: Any = RWRTrainer(model=model, args=targs, data_collator=RWRCollator(pad),
                                      train_dataset=to_dataset(examples), processing_class=tokenizer,
                                      callbacks=[timer])
        else:
            dataset = Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                                         "labels": [e.labels for e in examples],
                                         "length": [len(e.input_ids) for e in examples]})
            trainer = SFTTrainer(model=model, args=targs, train_dataset=dataset, processing_class=tokenizer,
                                 callbacks=[timer])
        result["collator"] = type(trainer.data_collator).__name__
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        if len(timer.ends) != args.steps + 1:
            raise RuntimeError(f"expected {args.steps + 1} optimizer steps, timed {len(timer.ends)}")
        step_s = [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)]
        result["step_s"] = step_s
        result["tokens_per_step"] = args.batch * args.accumulation * args.seq_len
        result["tokens_per_s"] = result["tokens_per_step"] / statistics.median(step_s)
        result["tokens_per_s_mean"] = result["tokens_per_step"] * len(step_s) / sum(step_s)
        result["losses"] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    except torch.OutOfMemoryError as error:
        result["error"] = f"out of memory: {str(error).splitlines()[0][:200]}"
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    result["rss_peak"] = rss_bytes()
    if on_gpu:
        result["gpu_peak"] = torch.cuda.max_memory_allocated()
    return result


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ---- parent: run the trainers, print the table -------------------------------------------------------------


def run_trainer(name: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Run one trainer in a subprocess; its output goes to a log whose tail is shown if it fails."""
    with tempfile.TemporaryDirectory(prefix="w4s-bench-train-") as scratch:
        result_file, log_file = Path(scratch) / "result.json", Path(scratch) / "worker.log"
        command = [sys.executable, os.path.realpath(__file__), "--worker", name, "--result", str(result_file),
                   "--model", args.model, "--steps", str(args.steps), "--seq-len", str(args.seq_len),
                   "--batch", str(args.batch), "--accumulation", str(args.accumulation), "--weights", args.weights]
        console.print(f"{name}: {TRAINERS[name]} ...", highlight=False)
        started = time.monotonic()
        with log_file.open("w") as log:
            try:
                code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                      timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                code = None
        wall = time.monotonic() - started
        if code == 0 and result_file.exists():
            result = json.loads(result_file.read_text())
            result["wall_s"] = wall
            return result
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        why = f"timed out after {args.timeout:g} s" if code is None else f"exit status {code}"
        console.print(f"{name} failed ({why}); the end of its output:\n{tail}", highlight=False, markup=False)
        return {"trainer": name, "error": why, "wall_s": wall}


def gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"


def memory_cell(result: dict[str, Any]) -> str:
    rss = f"{gib(result.get('rss_peak'))} RSS"
    return f"{gib(result['gpu_peak'])} GPU ({rss})" if result.get("gpu_peak") is not None else rss


def dtype_cell(args: argparse.Namespace, on_gpu: bool) -> str:
    if on_gpu:
        return f"bf16 autocast, {args.weights} weights"
    return args.weights


def mfu(result: dict[str, Any]) -> float | None:
    peak = peak_bf16(result.get("device", "")) if result.get("on_gpu") else None
    if peak is None or "tokens_per_s" not in result:
        return None
    return 6 * result["params"] * result["tokens_per_s"] / peak


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    on_gpu = any(r.get("on_gpu") for r in results)
    show_mfu = any(mfu(r) is not None for r in results)
    checkpointing = any(r.get("gradient_checkpointing") for r in results)
    out = Table(title=f"training throughput: per-device batch {args.batch}, accumulation {args.accumulation}, "
                      f"1 warm-up step + {args.steps} timed, gradient checkpointing {'on' if checkpointing else 'off'}"
                      f", synthetic examples (last quarter labelled); tokens/s at the median step, s/step: median "
                      f"(fastest-slowest)", title_justify="left")
    for column in ("trainer", "model", "device", "dtype", "seq length", "steps", "tokens/s", "peak memory",
                   "s/step"):
        out.add_column(column, justify="right" if column in ("seq length", "steps", "tokens/s", "s/step") else "left")
    if show_mfu:
        out.add_column("MFU", justify="right")
    for result in results:
        name = TRAINERS[result["trainer"]]
        if "tokens_per_s" not in result:
            row = [name, args.model, result.get("device", "-"), dtype_cell(args, on_gpu), str(args.seq_len),
                   str(args.steps), "[red]failed[/red]", memory_cell(result)
                   if "rss_peak" in result else "-", "-"]
        else:
            steps = result["step_s"]
            row = [name, args.model, result["device"], dtype_cell(args, on_gpu), str(args.seq_len), str(len(steps)),
                   f"{result['tokens_per_s']:,.0f}", memory_cell(result),
                   f"{statistics.median(steps):.3f} ({min(steps):.3f}-{max(steps):.3f})"]
        if show_mfu:
            value = mfu(result)
            row.append("-" if value is None else f"{value:.1%}")
        out.add_row(*row)
    return out


def summary_lines(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    done = {r["trainer"]: r for r in results if "tokens_per_s" in r}
    lines = [f"{r['trainer']} failed: {r.get('error', 'no result')}" for r in results if "tokens_per_s" not in r]
    first = next(iter(done.values()), None)
    if first:
        lines.append(f"model: {first['params'] / 1e6:,.1f}M parameters; peak RSS after loading the model (before "
                     f"training): " + ", ".join(f"{k} {gib(r['rss_loaded'])}" for k, r in done.items()))
    if "rwr" in done and "sft" in done:
        rwr, sft = done["rwr"], done["sft"]
        ratio = f"RWR / SFT: tokens/s x{rwr['tokens_per_s'] / sft['tokens_per_s']:.2f}, peak RSS " \
                f"x{rwr['rss_peak'] / sft['rss_peak']:.2f}"
        if rwr.get("gpu_peak") and sft.get("gpu_peak"):
            ratio += f", peak GPU memory x{rwr['gpu_peak'] / sft['gpu_peak']:.2f}"
        lines.append(ratio)
    if any(r.get("on_gpu") for r in done.values()):
        total = PAPER_TRAJECTORIES * PAPER_EPOCHS * args.avg_tokens
        for name, result in done.items():
            minutes = total / result["tokens_per_s"] / 60
            verdict = "[green]PASS[/green]" if minutes < TARGET_MINUTES else "[red]FAIL[/red]"
            lines.append(f"projected paper training ({name}): {PAPER_TRAJECTORIES} trajectories x {PAPER_EPOCHS} "
                         f"epochs x {args.avg_tokens:,} tokens = {total / 1e6:.2f}M tokens at "
                         f"{result['tokens_per_s']:,.0f} tokens/s = {minutes:.1f} min on {result['device']} "
                         f"(target: under {TARGET_MINUTES:g} minutes on one H100) {verdict}")
    return lines


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "trl", "accelerate"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", choices=MODELS, help=f"default: {SMOLLM} without a GPU, {QWEN_7B} with one")
    parser.add_argument("--steps", type=int, help="timed optimizer steps after the warm-up one (default: 4 on the "
                        "CPU, 5 on a GPU)")
    parser.add_argument("--seq-len", type=int, help="tokens in every example (default: 8192 for the 7B model, "
                        "256 on the CPU, 2048 otherwise)")
    parser.add_argument("--batch", type=int, default=1, help="per-device batch size (the paper's: 1)")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="gradient accumulation: micro-batches per optimizer step (the paper's 16 is slow here)")
    parser.add_argument("--weights", choices=("fp32", "bf16"), default="fp32",
                        help="master weights' dtype (fp32: as training_jobs.train loads them)")
    parser.add_argument("--avg-tokens", type=int, default=6000,
                        help="average trajectory length for the projected paper training (GPU only)")
    parser.add_argument("--trainers", default="rwr,sft", help="which trainers to run, comma-separated: rwr, sft")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds each trainer may take")
    parser.add_argument("--worker", choices=tuple(TRAINERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    import torch

    on_gpu = torch.cuda.is_available()
    args.model = args.model or (QWEN_7B if on_gpu else SMOLLM)
    args.steps = args.steps or (5 if on_gpu else 4)
    args.seq_len = args.seq_len or (8192 if args.model == QWEN_7B else 2048 if on_gpu else 256)
    names = [n.strip() for n in args.trainers.split(",") if n.strip()]
    if not names or any(n not in TRAINERS for n in names):
        parser.error(f"--trainers: give some of {', '.join(TRAINERS)}")
    args.trainer_names = names
    if args.model == QWEN_7B and not on_gpu:
        parser.error(f"{QWEN_7B} needs a GPU (a 7B model with fp32 Adam state needs ~120 GB and days on a CPU)")
    if min(args.steps, args.seq_len, args.batch, args.accumulation, args.avg_tokens) < 1 or args.seq_len < 2:
        parser.error("--steps, --batch, --accumulation, --avg-tokens must be >= 1 and --seq-len >= 2")
    args.gpu = torch.cuda.get_device_name() if on_gpu else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        Path(args.result).write_text(json.dumps(run_worker(args)))
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=200)
    device = f"GPU: {args.gpu}" if args.gpu else "GPU: none (CPU training, fp32, as training_jobs.train does)"
    for line in machine_lines((device, versions())):
        console.print(line, highlight=False)
    console.print()
    results = [run_trainer(name, args, console) for name in args.trainer_names]
    console.print()
    console.print(table(results, args))
    for line in summary_lines(results, args):
        console.print(line, highlight=False)
    return 0 if all("tokens_per_s" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
