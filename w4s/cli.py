"""The ``w4s`` command line: ``w4s optimize`` runs or resumes a run, ``w4s show`` prints one."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from w4s.console import ConsoleReporter, records_table, summary_table
from w4s.errors import W4SError
from w4s.runner import run_optimization
from w4s.runstore import RunStore
from w4s.spec import load_spec_file, merge, parse_spec
from w4s.store import open_store

_PROVIDERS = ("openai", "anthropic", "openai-compatible", "embedded")


def parse_endpoint(text: str, flag: str) -> dict[str, Any]:
    """``PROVIDER:MODEL[@BASE_URL]``, e.g. ``openai:gpt-4o-mini`` or ``openai-compatible:qwen@http://h:8000/v1``."""
    provider, sep, rest = text.partition(":")
    if not sep or provider not in _PROVIDERS or not rest:
        raise W4SError(f"{flag}: expected PROVIDER:MODEL[@BASE_URL] with PROVIDER one of "
                       f"{', '.join(_PROVIDERS)}; got {text!r}")
    model, at, base_url = rest.partition("@")
    out: dict[str, Any] = {"provider": provider, "model": model}
    if at:
        out["baseUrl"] = base_url
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if args.benchmark:
        o["task"] = {"benchmark": args.benchmark}
    splits = {k: v for k, v in (("validationSize", args.validation_size), ("publicSize", args.public_size),
                                ("testSize", args.test_size)) if v is not None}
    if splits:
        o["splits"] = splits
    for key, value in (("iterations", args.iterations), ("mode", args.mode), ("candidates", args.candidates),
                       ("seed", args.seed)):
        if value is not None:
            o[key] = value
    if args.executor:
        o["executors"] = [parse_endpoint(args.executor, "--executor")]
    if args.meta_agent:
        o["metaAgent"] = parse_endpoint(args.meta_agent, "--meta-agent")
    if args.budget_usd is not None:
        o["budget"] = {"maxCostUsd": args.budget_usd}
    if args.concurrency is not None:
        o["sandbox"] = {"concurrency": args.concurrency}
    if args.run_dir:
        o["store"] = str(Path(args.run_dir).resolve())
    return o


# Local CPU inference runs tens of tokens per second and the llama.cpp server answers one request at a time:
# keep the embedded default's splits small and its concurrency low unless the user set them.
EMBEDDED_PUBLIC_SIZE = 8
EMBEDDED_CONCURRENCY = 2


def _given(section: dict[str, Any], camel: str, snake: str) -> bool:
    return camel in section or snake in section


def _embedded_defaults(spec: Any, merged: dict[str, Any], console: Console) -> dict[str, Any]:
    splits, sandbox = merged.get("splits") or {}, merged.get("sandbox") or {}
    defaults: dict[str, Any] = {}
    if not _given(splits, "publicSize", "public_size"):
        defaults.setdefault("splits", {})["publicSize"] = EMBEDDED_PUBLIC_SIZE
    if not _given(splits, "testSize", "test_size"):
        defaults.setdefault("splits", {})["testSize"] = spec.splits.validation_size
    if not _given(sandbox, "concurrency", "concurrency"):
        defaults["sandbox"] = {"concurrency": EMBEDDED_CONCURRENCY}
    if defaults:
        console.print(f"[dim]embedded models on CPU: using {defaults} (set them to override)[/dim]")
    return defaults


def cmd_optimize(args: argparse.Namespace, console: Console) -> int:
    base = load_spec_file(args.config) if args.config else {}
    merged = merge(base, _overrides(args))
    spec = parse_spec(merged, source=args.config or "command line")
    if spec.uses_embedded:
        merged = merge(_embedded_defaults(spec, merged, console), merged)
        spec = parse_spec(merged, source=args.config or "command line")
    reporter = ConsoleReporter(console, spec.iterations, spec.candidates_per_iteration)
    try:
        result = asyncio.run(run_optimization(spec, reporter, log=lambda m: console.print(f"[dim]{m}[/dim]")))
    finally:
        reporter.close()
    console.print(summary_table(result))
    console.print(f"artifacts: {spec.store}")
    return 0 if result.status == "complete" else 3


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    runs = RunStore(open_store(args.run))
    manifest = runs.read_manifest()
    if manifest is None:
        raise W4SError(f"{args.run} holds no w4s run (no manifest.json)")
    console.print(f"run [bold]{manifest.run_id}[/bold]: {manifest.status}"
                  + (f" ({manifest.reason})" if manifest.reason else "") + f", updated {manifest.updated}")
    if manifest.status == "running":
        console.print("(a run killed without a chance to clean up also reads 'running': if none is running, the same "
                      "`w4s optimize` command resumes it)")
    checkpoints = runs.checkpoints()
    if checkpoints:
        w0 = checkpoints[0].state.best
        console.print(f"example workflow W0: validation {w0.score:.4f}")
        skipped = [c.iteration for c in checkpoints if c.skipped]
        if skipped:
            console.print(f"skipped iterations: {', '.join(map(str, skipped))}")
    console.print(records_table(runs.read_records()))
    result = runs.read_result()
    if result is not None:
        console.print(summary_table(result))
        console.print("best workflow:")
        console.print(runs.store.get_text("best_workflow.py"), markup=False, highlight=False, soft_wrap=True)
    elif checkpoints:
        best = checkpoints[-1].state.best
        console.print(f"best workflow so far (validation {best.score:.4f}):")
        console.print(best.code, markup=False, highlight=False, soft_wrap=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w4s", description="Weak-for-Strong Harnessing (W4S)")
    sub = parser.add_subparsers(dest="command", required=True)
    opt = sub.add_parser("optimize", help="run (or resume) a workflow optimization",
                         description="Run or resume a W4S optimization. With no --executor and no --meta-agent, "
                                     "small local models are served on this machine (the embedded default).")
    opt.add_argument("--config", help="YAML spec (or a WorkflowOptimization manifest)")
    opt.add_argument("--benchmark", help="benchmark name (default gsm8k)")
    opt.add_argument("--iterations", type=int)
    opt.add_argument("--validation-size", type=int, help="private validation tasks that score a workflow")
    opt.add_argument("--public-size", type=int, help="public validation tasks for case studies")
    opt.add_argument("--test-size", type=int, help="test tasks for the final evaluation (0 = none)")
    opt.add_argument("--mode", choices=("optimize", "collect"))
    opt.add_argument("--candidates", type=int, help="candidates per iteration (collect mode)")
    opt.add_argument("--executor", help="PROVIDER:MODEL[@BASE_URL], e.g. openai:gpt-4o-mini")
    opt.add_argument("--meta-agent", help="PROVIDER:MODEL[@BASE_URL]")
    opt.add_argument("--run-dir", help="directory of the run; an existing run there is resumed")
    opt.add_argument("--budget-usd", help="stop cleanly once this many dollars are spent")
    opt.add_argument("--concurrency", type=int, help="tasks evaluated at once")
    opt.add_argument("--seed", type=int)
    show = sub.add_parser("show", help="print a run's history and best workflow")
    show.add_argument("run", help="run directory or store URI")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)
    try:
        if args.command == "optimize":
            return cmd_optimize(args, console)
        return cmd_show(args, console)
    except W4SError as err:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
