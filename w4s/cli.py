"""The ``w4s`` command line: ``w4s optimize`` runs or resumes a run, ``w4s show`` prints one; ``w4s eval``,
``w4s score`` and ``w4s benchmarks`` evaluate a given workflow, score a predictions file and list or export the
benchmarks; ``w4s sandbox exec`` runs one workflow on one task in the sandbox; ``w4s gateway`` serves the LLM
gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from w4s.baselines import BASELINES
from w4s.benchmarks import benchmark_rows
from w4s.benchmarks.scorefile import read_predictions, score_predictions
from w4s.benchmarks.sources import load_task
from w4s.benchmarks.splits import split_for
from w4s.console import ConsoleReporter, records_table, summary_table
from w4s.devcluster import cli as devcluster_cli
from w4s.errors import W4SError
from w4s.evalrun import SPLITS, evaluate_workflow, split_samples
from w4s.gateway.service import serve_gateway
from w4s.records import RunResult
from w4s.reporting import Fanout
from w4s.rlao import cli as rlao_cli
from w4s.runner import run_optimization
from w4s.runstore import RunStore
from w4s.sandbox.exec import exec_workflow
from w4s.spec import OptimizationSpec, load_spec_file, merge, parse_spec
from w4s.statusreport import StatusReporter
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


def _given_flags(args: argparse.Namespace, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Spec keys for the flags of ``pairs`` (spec key, argparse dest) that this command has and the user gave."""
    return {key: getattr(args, dest) for key, dest in pairs if getattr(args, dest, None) is not None}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    task = _given_flags(args, (("benchmark", "benchmark"), ("source", "source"), ("dataset", "dataset"),
                               ("dataDir", "data_dir")))
    if task:
        o["task"] = task
    splits = _given_flags(args, (("validationSize", "validation_size"), ("publicSize", "public_size"),
                                 ("testSize", "test_size"), ("seed", "split_seed")))
    if splits:
        o["splits"] = splits
    o.update(_given_flags(args, (("iterations", "iterations"), ("mode", "mode"), ("candidates", "candidates"),
                                 ("seed", "seed"))))
    if getattr(args, "executor", None):
        o["executors"] = [parse_endpoint(args.executor, "--executor")]
    if getattr(args, "meta_agent", None):
        o["metaAgent"] = parse_endpoint(args.meta_agent, "--meta-agent")
    if getattr(args, "meta_agent_checkpoint", None):
        o.setdefault("metaAgent", {})["checkpoint"] = str(Path(args.meta_agent_checkpoint).resolve())
    if getattr(args, "budget_usd", None) is not None:
        o["budget"] = {"maxCostUsd": args.budget_usd}
    sandbox = _given_flags(args, (("concurrency", "concurrency"), ("backend", "backend"),
                                  ("sampleTimeoutSeconds", "timeout"), ("workerMemoryMb", "memory"),
                                  ("maxLlmCallsPerSample", "max_llm_calls")))
    if sandbox:
        o["sandbox"] = sandbox
    if getattr(args, "run_dir", None):
        o["store"] = str(Path(args.run_dir).resolve())
    return o


def _spec_from_args(args: argparse.Namespace) -> OptimizationSpec:
    config = getattr(args, "config", None)
    merged = merge(load_spec_file(config) if config else {}, _overrides(args))
    spec = parse_spec(merged, source=config or "command line")
    local = {"any": spec.uses_embedded, "executors": any(e.provider == "embedded" for e in spec.executors)}
    if local.get(getattr(args, "embedded_defaults", ""), False):
        merged = merge(_embedded_defaults(spec, merged), merged)
        spec = parse_spec(merged, source=config or "command line")
    return spec


# Local CPU inference runs tens of tokens per second and the llama.cpp server answers one request at a time:
# keep the embedded default's splits small and its concurrency low unless the user set them.
EMBEDDED_VALIDATION_SIZE = 24
EMBEDDED_CONCURRENCY = 2


def _given(section: dict[str, Any], camel: str, snake: str) -> bool:
    return camel in section or snake in section


def _embedded_defaults(spec: Any, merged: dict[str, Any]) -> dict[str, Any]:
    splits, sandbox = merged.get("splits") or {}, merged.get("sandbox") or {}
    defaults: dict[str, Any] = {}
    validation = spec.splits.validation_size
    if validation is None:
        validation = defaults.setdefault("splits", {})["validationSize"] = EMBEDDED_VALIDATION_SIZE
    if not _given(splits, "testSize", "test_size"):
        defaults.setdefault("splits", {})["testSize"] = validation
    if not _given(sandbox, "concurrency", "concurrency"):
        defaults["sandbox"] = {"concurrency": EMBEDDED_CONCURRENCY}
    if defaults:
        Console(stderr=True).print(f"[dim]embedded models on CPU: using {defaults} (set them to override)[/dim]")
    return defaults


def cmd_optimize(args: argparse.Namespace, console: Console) -> int:
    spec = _spec_from_args(args)
    reporter = ConsoleReporter(console, spec.iterations, spec.candidates_per_iteration)
    try:
        result = asyncio.run(run_optimization(spec, reporter, log=lambda m: console.print(f"[dim]{m}[/dim]"),
                                              metrics_port=args.metrics_port))
    finally:
        reporter.close()
    console.print(summary_table(result))
    console.print(f"artifacts: {spec.store}")
    return 0 if result.status == "complete" else 3


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    """The runner Job's command: no embedded defaults, and progress reported to the resource's status."""
    spec = _spec_from_args(args)
    console_reporter = ConsoleReporter(console, spec.iterations, spec.candidates_per_iteration)
    status = StatusReporter(args.status_resource, spec.store or "", spec.iterations) \
        if args.status_resource else None

    async def run() -> RunResult:
        reporter = Fanout(console_reporter, status) if status else console_reporter
        try:
            result = await run_optimization(spec, reporter, log=lambda m: console.print(f"[dim]{m}[/dim]"),
                                            metrics_port=args.metrics_port)
        except W4SError as err:
            if status:
                status.fail(str(err))
                await status.close()
            raise
        if status:
            await status.close(result, f"{open_store(spec.store or '').uri.rstrip('/')}/best_workflow.py")
        return result

    try:
        result = asyncio.run(run())
    finally:
        console_reporter.close()
    console.print(summary_table(result))
    return 0 if result.status == "complete" else 3


def cmd_store(args: argparse.Namespace, console: Console) -> int:
    """Copy everything under a store URI into a local directory (the meta-agent server's weights)."""
    store = open_store(args.uri)
    keys = store.list("")
    if not keys:
        raise W4SError(f"{args.uri}: nothing stored there")
    target = Path(args.dir)
    for key in keys:
        store.get_file(key, target / key)  # streamed: model weights are gigabytes
    console.print(f"copied {len(keys)} objects from {store.uri} to {target}")
    return 0


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


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    spec = _spec_from_args(args)
    err = Console(stderr=True, soft_wrap=True)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if done == total or time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            err.print(f"[dim]{done}/{total} tasks[/dim]", highlight=False)

    report = asyncio.run(evaluate_workflow(spec, args.workflow, args.split, args.limit, progress,
                                           log=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False)))
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    table = Table(title=f"{report.workflow} on {report.benchmark} ({report.split}, {report.source})")
    for column in ("tasks", "score", "errors", "cost ($)", "time (s)"):
        table.add_column(column, justify="right")
    table.add_row(str(report.n), f"{report.score:.4f}", str(report.errors), f"{report.cost_usd:.4f}",
                  f"{report.seconds:.1f}")
    console.print(table)
    return 0


def cmd_sandbox(args: argparse.Namespace, console: Console) -> int:
    spec = _spec_from_args(args)
    path = Path(args.workflow)
    if not path.is_file():
        raise W4SError(f"--workflow: no such file {args.workflow!r}")
    err = Console(stderr=True, soft_wrap=True)
    result = asyncio.run(exec_workflow(spec, path.read_text(encoding="utf-8"), args.task,
                                       log=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False)))
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


def cmd_gateway(args: argparse.Namespace, console: Console) -> int:
    spec = _spec_from_args(args)
    asyncio.run(serve_gateway(spec, args.listen, log=lambda m: console.print(f"[dim]{m}[/dim]"),
                              metrics_port=args.metrics_port))
    return 0


def cmd_score(args: argparse.Namespace, console: Console) -> int:
    spec = _spec_from_args(args)
    task = load_task(spec.task)
    report = asyncio.run(score_predictions(task.benchmark, task.samples, read_predictions(args.predictions)))
    print(json.dumps(report))
    return 0


def cmd_benchmarks(args: argparse.Namespace, console: Console) -> int:
    if args.action == "export":
        if not args.benchmark:
            raise W4SError("w4s benchmarks export: --benchmark is required")
        spec = _spec_from_args(args)
        task = load_task(spec.task)
        splits = split_for(task.samples, spec.splits, task.benchmark.sizes)
        for sample in split_samples(splits, args.split) if args.split != "all" else task.samples:
            print(json.dumps({"id": sample.id, "question": sample.question, "answer": sample.answer},
                             ensure_ascii=False))
        return 0
    rows = benchmark_rows(getattr(args, "data_dir", None))
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title="benchmarks (split sizes: paper, Table 4)")
    for column in ("name", "benchmark", "answer", "validation / test", "offline copy", "hub"):
        table.add_column(column)
    for r in rows:
        offline = r["offline_source"] or "none: hub or task.dataset"
        if r["offline_source"] and not r["offline_available"]:
            offline += " [red](not found: set W4S_DATA_DIR)[/red]"
        table.add_row(r["name"], r["title"], r["answer_kind"], f"{r['validation']} / {r['test']}", offline,
                      r["hub"] or "-")
    console.print(table)
    return 0


def _optimize_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `w4s optimize` and `w4s collect` share (collect is optimize with mode collect)."""
    parser.add_argument("--config", help="YAML spec (or a WorkflowOptimization manifest)")
    parser.add_argument("--benchmark", help="benchmark name (default gsm8k)")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--validation-size", type=int, help="validation tasks: private (scored) + public")
    parser.add_argument("--public-size", type=int, help="of those, public tasks for case studies (default: 1/4)")
    parser.add_argument("--test-size", type=int, help="test tasks for the final evaluation (0 = none)")
    parser.add_argument("--candidates", type=int, help="candidates per iteration (collect mode; default 5)")
    parser.add_argument("--executor", help="PROVIDER:MODEL[@BASE_URL], e.g. openai:gpt-4o-mini")
    parser.add_argument("--meta-agent", help="PROVIDER:MODEL[@BASE_URL]")
    parser.add_argument("--meta-agent-checkpoint", metavar="DIR", help="serve this trained checkpoint as the "
                        "(embedded) meta-agent, converted to GGUF on first use; needs the train and serve extras")
    parser.add_argument("--run-dir", help="directory of the run; an existing run there is resumed")
    parser.add_argument("--budget-usd", help="stop cleanly once this many dollars are spent")
    parser.add_argument("--concurrency", type=int, help="tasks evaluated at once")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port while running")
    parser.set_defaults(embedded_defaults="any")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w4s", description="Weak-for-Strong Harnessing (W4S)")
    sub = parser.add_subparsers(dest="command", required=True)
    opt = sub.add_parser("optimize", help="run (or resume) a workflow optimization",
                         description="Run or resume a W4S optimization. With no --executor and no --meta-agent, "
                                     "small local models are served on this machine (the embedded default).")
    _optimize_flags(opt)
    opt.add_argument("--mode", choices=("optimize", "collect"))
    col = sub.add_parser("collect", help="collect RLAO trajectories (best-of-m candidates per iteration)",
                         description="Run or resume a data-collection run (mode collect): every iteration samples "
                                     "--candidates workflows (default 5), the best forms the next state, and every "
                                     "candidate is recorded with its state, action, feedback and reward for "
                                     "`w4s rlao build`. Same flags as optimize.")
    _optimize_flags(col)
    col.set_defaults(mode="collect")
    run = sub.add_parser("run", help="run (or resume) an optimization from a config, as the runner Job does",
                         description="Run or resume the optimization a config describes, with no embedded "
                                     "defaults; with --status-resource, report progress to that "
                                     "WorkflowOptimization's status (the operator's runner Job).")
    run.add_argument("--config", required=True, help="YAML spec or WorkflowOptimization manifest")
    run.add_argument("--status-resource", help="NAMESPACE/NAME of the WorkflowOptimization to report to")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port while running")
    run.set_defaults(embedded_defaults="")
    st = sub.add_parser("store", help="copy objects out of a store")
    st_sub = st.add_subparsers(dest="action", required=True)
    get = st_sub.add_parser("get", help="copy everything under URI into DIR")
    get.add_argument("uri", help="s3://bucket/prefix, file:// URI or directory")
    get.add_argument("dir")
    show = sub.add_parser("show", help="print a run's history and best workflow")
    show.add_argument("run", help="run directory or store URI")

    ev = sub.add_parser("eval", help="run one workflow (a file or a baseline) on a benchmark split",
                        description="Evaluate a workflow on a split and print score, cost and time. Baselines: "
                                    + ", ".join(BASELINES) + ".")
    _task_flags(ev, benchmark_required=True)
    ev.add_argument("--workflow", required=True, help="a .py file defining workflow(agent, task), or a baseline")
    ev.add_argument("--split", default="validation", choices=SPLITS)
    ev.add_argument("--limit", type=int, help="only the first N tasks of the split (in the seeded order)")
    ev.add_argument("--executor", help="PROVIDER:MODEL[@BASE_URL] (default: the embedded local model)")
    ev.add_argument("--budget-usd", help="stop once this many dollars are spent")
    ev.add_argument("--concurrency", type=int, help="tasks evaluated at once")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(embedded_defaults="executors")

    sc = sub.add_parser("score", help="score {id, answer} predictions against a benchmark's gold answers")
    _task_flags(sc, benchmark_required=True)
    sc.add_argument("--predictions", required=True, help="JSONL file of {\"id\", \"answer\"} records")

    bm = sub.add_parser("benchmarks", help="list the benchmarks, or export a split as JSONL",
                        description="List the benchmarks, their default splits and sources; `export` prints a "
                                    "split as JSONL {id, question, answer}.")
    bm.add_argument("action", nargs="?", choices=("list", "export"), default="list")
    _task_flags(bm, benchmark_required=False)
    bm.add_argument("--split", default="validation", choices=(*SPLITS, "all"))
    bm.add_argument("--json", action="store_true", help="print the list as JSON")
    sb = sub.add_parser("sandbox", help="run one workflow on one task in the sandbox (audit the isolation)")
    sb_sub = sb.add_subparsers(dest="action", required=True)
    ex = sb_sub.add_parser("exec", help="print {ok, answer, error, wall_s} as JSON",
                           description="Run one workflow on one task in the configured sandbox and print a JSON "
                                       "result; exit code 1 when the workflow failed.")
    ex.add_argument("--workflow", required=True, help="a .py file defining workflow(agent, task)")
    ex.add_argument("--task", required=True, help="the task text the workflow receives")
    ex.add_argument("--timeout", help="sample wall clock in seconds (sandbox.sampleTimeoutSeconds)")
    ex.add_argument("--memory", type=int, help="memory of the sample's process in MB (sandbox.workerMemoryMb)")
    _endpoint_flags(ex)
    ex.set_defaults(embedded_defaults="executors")

    gw = sub.add_parser("gateway", help="serve the LLM gateway (the only holder of provider keys)",
                        description="Serve the executors of a spec to sandboxes. Needs $W4S_GATEWAY_ADMIN_TOKEN.")
    gw.add_argument("--listen", required=True, help="unix:/path/to.sock or HOST:PORT")
    gw.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    _endpoint_flags(gw)
    gw.set_defaults(embedded_defaults="executors")
    devcluster_cli.add_parser(sub)
    rlao_cli.add_parser(sub)
    return parser


def _endpoint_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML spec (its executors, sandbox and budget sections are used)")
    parser.add_argument("--executor", help="PROVIDER:MODEL[@BASE_URL] (default: the embedded local model)")
    parser.add_argument("--backend", choices=("auto", "gvisor", "process"), help="sandbox.backend")
    parser.add_argument("--max-llm-calls", type=int, help="sandbox.maxLlmCallsPerSample")
    parser.add_argument("--budget-usd", help="stop once this many dollars are spent")


def _task_flags(parser: argparse.ArgumentParser, benchmark_required: bool) -> None:
    parser.add_argument("--config", help="YAML spec (its task and splits sections are used)")
    parser.add_argument("--benchmark", required=benchmark_required, help="benchmark name (`w4s benchmarks`)")
    parser.add_argument("--source", choices=("auto", "offline", "hub"), help="where the samples come from")
    parser.add_argument("--dataset", help="JSONL file or s3://bucket/key with your own samples")
    parser.add_argument("--data-dir", help="directory with benchmark files no package ships ($W4S_DATA_DIR)")
    parser.add_argument("--seed", type=int, dest="split_seed", help="split seed (default 0)")
    parser.add_argument("--validation-size", type=int, help="validation tasks, private + public")
    parser.add_argument("--public-size", type=int, help="of those, public tasks (case studies)")
    parser.add_argument("--test-size", type=int, help="test tasks")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)
    try:
        commands = {"optimize": cmd_optimize, "collect": cmd_optimize, "run": cmd_run, "store": cmd_store,
                    "show": cmd_show, "eval": cmd_eval, "score": cmd_score, "benchmarks": cmd_benchmarks,
                    "sandbox": cmd_sandbox, "gateway": cmd_gateway, "dev": devcluster_cli.cmd_dev,
                    "rlao": rlao_cli.cmd_rlao}
        return commands[args.command](args, console)
    except W4SError as err:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
