"""``w4s rlao build``: trajectory records -> a tokenized, label-masked, weighted RLAO dataset in a store.

Building the dataset is a separate step from training so that what the trainer will see (how many examples,
how many were dropped and why, the reward mix) can be checked, and the same dataset reused, before any GPU
time is spent.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from w4s.errors import W4SError
from w4s.rlao.dataset import ALGORITHMS, DatasetSummary, build_examples, read_records, write_dataset


def add_parser(subparsers: Any) -> None:
    """Add ``rlao build`` to the ``w4s`` command's subparsers."""
    rlao = subparsers.add_parser("rlao", help="RLAO: train the meta-agent offline on collected trajectories")
    actions = rlao.add_subparsers(dest="rlao_command", required=True)
    build = actions.add_parser(
        "build", help="turn trajectory records into a training dataset",
        description="Tokenize every candidate record (state + action) with the meta-agent's chat template, label "
                    "only the final action and its end-of-turn token, weigh it exp(reward / tau), and write "
                    "examples.jsonl + summary.json to --out. Needs the training extra: pip install 'w4s[train]'.")
    build.add_argument("--trajectories", nargs="+", required=True, metavar="URI",
                       help="run directories or .jsonl record files (local path, file:// or s3://)")
    build.add_argument("--out", required=True, metavar="URI", help="where the dataset goes (directory or s3://)")
    build.add_argument("--tokenizer", required=True, metavar="NAME_OR_DIR",
                       help="an embedded model name (e.g. qwen2.5-coder-0.5b-instruct) or a Hugging Face folder")
    build.add_argument("--tau", type=float, default=0.4, help="RWR temperature: weight exp(reward / tau)")
    build.add_argument("--algorithm", choices=ALGORITHMS, default="rwr", help="sft: every weight 1 (the ablation)")
    build.add_argument("--score-floor", type=_floor, default=0.05, metavar="SCORE|none",
                       help="drop candidates whose validation score is at or below this (default 0.05)")
    build.add_argument("--max-seq-length", type=int, default=8192, help="drop longer examples (never cut them)")


def _floor(text: str) -> float | None:
    """``none`` turns the floor off: keeping zero-score candidates is a legitimate ablation."""
    return None if text.lower() == "none" else float(text)


def cmd_rlao(args: argparse.Namespace, console: Console) -> int:
    """Dispatch ``w4s rlao <action>``; a table of actions so later ones (training) slot in beside ``build``."""
    return {"build": cmd_build}[args.rlao_command](args, console)


def cmd_build(args: argparse.Namespace, console: Console) -> int:
    """Read, build, show, then write: the table is printed even when everything was dropped, to say why."""
    # Imported here: transformers is an optional extra and slow to import; `w4s --help` must not need it.
    from w4s.rlao.hf import load_tokenizer

    records = read_records(args.trajectories)
    console.print(f"[dim]{len(records)} records from {len(args.trajectories)} source(s); loading tokenizer "
                  f"{args.tokenizer} (converted from its GGUF on first use)[/dim]", highlight=False)
    tokenizer = load_tokenizer(args.tokenizer)
    examples, summary = build_examples(records, tokenizer, tau=args.tau, algorithm=args.algorithm,
                                       score_floor=args.score_floor, max_seq_length=args.max_seq_length)
    console.print(summary_table(summary, len(records)))
    console.print(histogram_table(summary))
    if not examples:
        raise W4SError(f"all {len(records)} records were dropped ({summary.dropped_below_floor} at or below the "
                       f"score floor, {summary.dropped_too_long} too long): nothing to write to {args.out}")
    write_dataset(args.out, examples, summary)
    console.print(f"wrote {summary.examples} examples to {args.out}", highlight=False)
    return 0


def summary_table(summary: DatasetSummary, records: int) -> Table:
    """Counts first, drops next to them: a dataset much smaller than its records should be explained at once."""
    table = Table(title="RLAO dataset")
    table.add_column("")
    table.add_column("value", justify="right")
    floor = "dropped: no score floor" if summary.score_floor is None else \
        f"dropped: validation score <= {summary.score_floor:g}"
    for name, value in (("records read", records), ("examples", summary.examples), ("tokens", summary.tokens),
                        ("action tokens (trained)", summary.action_tokens), ("longest example", summary.longest),
                        (floor, summary.dropped_below_floor),
                        (f"dropped: longer than {summary.max_seq_length} tokens", summary.dropped_too_long),
                        ("tokenizer", summary.tokenizer), ("algorithm", _algorithm(summary))):
        table.add_row(name, str(value))
    return table


def _algorithm(summary: DatasetSummary) -> str:
    return f"rwr (tau {summary.tau:g})" if summary.algorithm == "rwr" else summary.algorithm


def histogram_table(summary: DatasetSummary) -> Table:
    """Rewards with their weights: the reward mix decides how much each kind of action pulls on the policy."""
    table = Table(title="rewards")
    for column in ("reward", "examples", "weight"):
        table.add_column(column, justify="right")
    for reward, count in summary.reward_histogram.items():
        weight = math.exp(float(reward) / summary.tau) if summary.algorithm == "rwr" else 1.0
        table.add_row(reward, str(count), f"{weight:.2f}")
    return table
