"""Sandbox overhead: what running a sample in a sandbox worker costs, per backend, with no LLM calls at all.

    .venv/bin/python bench/sandbox.py [--backends gvisor,process] [--samples 200] [--gap-ms 20]
        [--exec-samples 50] [--concurrency 8] [--samples-per-worker 8] [--cold-starts 3] [--target-ms 20]

Every number is measured through the real path an evaluation takes, ``Sandbox.run_workflow`` (gateway ticket,
pool, JSON-lines pipe to the worker, a pre-forked child that drops to its own uid, runs the workflow and reports
back), on the trivial workflow ``def workflow(agent, task): return {"answer": task}``, so the time measured is
the latency a sample pays on top of its own work (its LLM calls and computation), not the work itself.

For each backend (``gvisor``: a runsc container per worker; ``process``: plain, unsandboxed processes) the table
shows:

* cold start: for each of ``--cold-starts`` fresh sandboxes, the time from pool creation to ``pool.warm()``
  done, and the worker's own start time as the pool records it (``pool.start_seconds``); the median is shown.
  This is what the first evaluation of a run waits for, once.
* first sample right after ``warm()``: the worker reports ready before forking its spare children, so the
  first sample may pay for a fork.
* warm overhead with a gap: sequential samples with a short idle gap (``--gap-ms``, default 20 ms) between
  them. The worker forks its spare children only while idle (a fork costs ~20 ms under gVisor's ptrace
  platform), so the gap lets it refill them; this is the steady-state per-sample overhead and is what the
  target ``p50 warm overhead < --target-ms`` (gVisor only) is checked against.
* warm overhead back-to-back: the same with no gap, so spares run out and samples wait for forks: the cost when
  a worker is kept saturated.
* execute_code round trip: a workflow that calls ``agent.execute_code("def solution(): return 1")`` (one more
  limited child process inside the sample), sequential with the same gap.
* throughput: a burst of ``--samples`` trivial samples at concurrency ``--concurrency``, in samples/s.

The "in sample" column is the worker's own clock (job handed to a child until its result arrived); the rest of a
round trip is the pool, the pipe and the event loop. The machine is shared and small (see the header: cores,
load average), so compare runs made on the same machine at about the same time. The executor client points at
an unused URL and is never called. Exits non-zero on errors (a sample that fails, a backend that cannot start),
not on a missed target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import sandbox_for  # noqa: E402
from machine import machine_lines  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from w4s.sandbox.pool import JobResult  # noqa: E402
from w4s.sandbox.session import Sandbox  # noqa: E402
from w4s.spec import ExecutorSpec, SandboxSpec  # noqa: E402

TRIVIAL = 'def workflow(agent, task):\n    return {"answer": task}\n'
EXECUTE_CODE = 'def workflow(agent, task):\n    return {"answer": agent.execute_code("def solution(): return 1")}\n'
UNUSED_EXECUTOR = ExecutorSpec(name="default", provider="openai-compatible", model="none",
                               base_url="http://127.0.0.1:9/v1", price={"inputPerMtok": "0", "outputPerMtok": "0"},
                               max_retries=0)
WARMUP_SAMPLES = 10
SETTLE_S = 0.5  # idle time before each series, so the worker has its spares again


@dataclass
class Series:
    """Round trips (seconds) of one measurement and the worker's own wall clock for each."""

    round_trips: list[float] = field(default_factory=list)
    inside: list[float] = field(default_factory=list)


@dataclass
class BackendResult:
    description: str
    workers: int
    per_worker: int
    spares: int
    warm_s: list[float]
    start_s: list[float]
    first: Series
    gap: Series
    back_to_back: Series
    execute_code: Series
    burst_n: int
    burst_s: float


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def runsc_version() -> str:
    try:
        out = subprocess.run(["runsc", "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error.__class__.__name__})"
    return (out.stdout.strip().splitlines() or ["unknown"])[0]



async def run_one(sandbox: Sandbox, code: str, index: int) -> JobResult:
    result, _ = await sandbox.run_workflow(code, f"bench-{index}", str(index), {})
    if not result.ok:
        raise RuntimeError(f"sample {index} failed in the {sandbox.description} sandbox: {result.error_text}")
    return result


async def sequential(sandbox: Sandbox, code: str, n: int, gap_s: float) -> Series:
    series = Series()
    await asyncio.sleep(SETTLE_S)
    for i in range(n):
        started = time.perf_counter()
        result = await run_one(sandbox, code, i)
        series.round_trips.append(time.perf_counter() - started)
        series.inside.append(result.wall_s)
        if gap_s:
            await asyncio.sleep(gap_s)
    return series


async def burst(sandbox: Sandbox, n: int, concurrency: int) -> float:
    await asyncio.sleep(SETTLE_S)
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await run_one(sandbox, TRIVIAL, i)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(n):
            group.create_task(one(i))
    return time.perf_counter() - started


async def cold_start(spec: SandboxSpec) -> tuple[float, list[float], Series]:
    """One fresh sandbox: pool creation to warm() done, the pool's record of each worker's start, and the first
    sample sent right after warm()."""
    async with sandbox_for([UNUSED_EXECUTOR], spec, cache=False) as sandbox:
        assert sandbox.pool is not None
        started = time.perf_counter()  # the pool is the last thing Sandbox.__aenter__ creates
        await sandbox.pool.warm()
        warm = time.perf_counter() - started
        first_started = time.perf_counter()
        result = await run_one(sandbox, TRIVIAL, 0)
        first = Series([time.perf_counter() - first_started], [result.wall_s])
        return warm, list(sandbox.pool.start_seconds), first


async def measure(backend: str, args: argparse.Namespace) -> BackendResult:
    spec = SandboxSpec(backend=backend, concurrency=args.concurrency, samples_per_worker=args.samples_per_worker)
    warm_s: list[float] = []
    start_s: list[float] = []
    first = Series()
    for _ in range(args.cold_starts):
        warm, starts, one = await cold_start(spec)
        warm_s.append(warm)
        start_s += starts
        first.round_trips += one.round_trips
        first.inside += one.inside
    async with sandbox_for([UNUSED_EXECUTOR], spec, cache=False) as sandbox:
        assert sandbox.pool is not None
        await sandbox.pool.warm()
        await sequential(sandbox, TRIVIAL, WARMUP_SAMPLES, args.gap_ms / 1000)
        gap = await sequential(sandbox, TRIVIAL, args.samples, args.gap_ms / 1000)
        back_to_back = await sequential(sandbox, TRIVIAL, args.samples, 0.0)
        execute_code = await sequential(sandbox, EXECUTE_CODE, args.exec_samples, args.gap_ms / 1000)
        burst_s = await burst(sandbox, args.samples, args.concurrency)
        return BackendResult(sandbox.description, sandbox.pool.size, sandbox.pool.per_worker,
                             sandbox.pool.backend.spares, warm_s, start_s, first, gap, back_to_back, execute_code,
                             args.samples, burst_s)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else ms(seconds)


def series_row(name: str, series: Series) -> list[str]:
    values = series.round_trips
    return [name, str(len(values)), ms(statistics.median(values)), ms(percentile(values, 95)), ms(max(values)),
            ms(statistics.median(series.inside))]


def table(backend: str, result: BackendResult, args: argparse.Namespace) -> Table:
    title = (f"{backend}: {result.description}; {result.workers} worker(s) x {result.per_worker} samples, "
             f"{result.spares} pre-forked spares per worker")
    out = Table(title=title, title_justify="left")
    out.add_column("measurement")
    out.add_column("n", justify="right")
    for name in ("p50", "p95", "max", "in sample p50"):
        out.add_column(name, justify="right")
    out.add_column("note")
    out.add_row("cold start: pool creation -> warm() done", str(len(result.warm_s)),
                duration(statistics.median(result.warm_s)), "", duration(max(result.warm_s)), "",
                "median of fresh pools")
    out.add_row("cold start: pool.start_seconds", str(len(result.start_s)),
                duration(statistics.median(result.start_s)), "", duration(max(result.start_s)), "",
                "each worker's own start")
    out.add_row(*series_row("first sample right after warm()", result.first), "one per fresh pool")
    out.add_row(*series_row(f"warm overhead, {args.gap_ms:g} ms gap", result.gap), "spares refilled between samples")
    out.add_row(*series_row("warm overhead, back-to-back", result.back_to_back), "no gap: spares run out")
    out.add_row(*series_row(f"execute_code round trip, {args.gap_ms:g} ms gap", result.execute_code),
                "workflow calls agent.execute_code once")
    out.add_row(f"throughput, burst at concurrency {args.concurrency}", str(result.burst_n),
                f"{result.burst_n / result.burst_s:.1f}/s", "", "", "", f"{result.burst_n} samples in "
                f"{result.burst_s:.2f} s")
    p50 = statistics.median(result.gap.round_trips)
    if backend == "gvisor":
        verdict = "[green]PASS[/green]" if p50 * 1000 < args.target_ms else "[red]FAIL[/red]"
    else:
        verdict = "n/a (target is for gvisor)"
    out.add_row(f"target: p50 warm overhead < {args.target_ms:g} ms", "", ms(p50), "", "", "", verdict)
    return out


async def run_all(args: argparse.Namespace, console: Console) -> None:
    for backend in args.backends:
        result = await measure(backend, args)
        console.print(table(backend, result, args))
        console.print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backends", default="gvisor,process", help="comma-separated: gvisor, process")
    parser.add_argument("--samples", type=int, default=200,
                        help="samples per warm series, and the size of the throughput burst")
    parser.add_argument("--exec-samples", type=int, default=50, help="samples of the execute_code round trip")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="idle gap between sequential samples")
    parser.add_argument("--concurrency", type=int, default=8, help="sandbox concurrency and burst concurrency")
    parser.add_argument("--samples-per-worker", type=int, default=8, help="samples one worker runs at once")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh pools started for the cold start")
    parser.add_argument("--target-ms", type=float, default=20.0, help="target for the p50 warm overhead (gvisor)")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - {"gvisor", "process"})
    if unknown or not args.backends:
        parser.error(f"--backends: unknown backend(s) {unknown}; choose from gvisor, process")
    if min(args.samples, args.exec_samples, args.concurrency, args.samples_per_worker, args.cold_starts) < 1:
        parser.error("--samples, --exec-samples, --concurrency, --samples-per-worker and --cold-starts must be >= 1")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    for line in machine_lines((f"runsc: {runsc_version()}",)):
        console.print(line, highlight=False)
    console.print()
    try:
        asyncio.run(run_all(args, console))  # on Ctrl-C, asyncio cancels it and every sandbox closes on the way out
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # report it and exit non-zero
        print(f"error: {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
