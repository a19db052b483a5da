"""Evaluation overhead: how close does evaluating one workflow come to the latency floor?

One workflow makes 3 sequential LLM calls per sample; 128 samples; a scripted OpenAI-compatible endpoint (its
own process, so it does not share the runner's GIL) answers each call after 200 ms; concurrency 32. The floor
is ceil(128 / 32) x 3 x 0.2 s = 2.4 s: any time above it is the runner's overhead (sandbox workers, the pipe
protocol, the gateway on its unix socket, HTTP, budget accounting). Everything runs through the real Evaluator,
Sandbox (gateway and warm worker pool; gVisor where runsc is installed, see --backend) and LLM client.

    python bench/eval_overhead.py [--samples 128] [--concurrency 32] [--latency 0.2] [--calls 3] [--repeats 3]
        [--backend auto|gvisor|process]

Prints a table; the last line is ``ratio_to_floor=X`` for the best warm-pool run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import ExactMatch, sandbox_for  # noqa: E402
from scripted_llm import Call, start_process  # noqa: E402

from w4s.benchmarks.base import Sample  # noqa: E402
from w4s.evaluation import Evaluator  # noqa: E402
from w4s.llm.ledger import Ledger  # noqa: E402
from w4s.spec import ExecutorSpec, SandboxSpec  # noqa: E402

WORKFLOW = '''def workflow(agent, task: str) -> dict:
    draft = agent.call_llm([{"role": "user", "content": task}], temperature=0.0)[0]
    check = agent.call_llm([{"role": "user", "content": "check: " + draft}], temperature=0.0)[0]
    final = agent.call_llm([{"role": "user", "content": "final: " + check}], temperature=0.0)[0]
    return {"answer": agent.extract_answer_str(final)}
'''


def respond(call: Call) -> str:
    """Echo the first number of the task so that every sample is answered correctly."""
    text = call.messages[-1]["content"]
    return f"the answer is {''.join(ch for ch in text if ch.isdigit()) or '0'}"


async def measure(base_url: str, args: argparse.Namespace) -> tuple[list[tuple[str, float, float]], str]:
    samples = [Sample(id=f"s{i}", question=f"task {i}", answer=str(i)) for i in range(args.samples)]
    endpoint = ExecutorSpec(name="executor", provider="openai-compatible", model="scripted", base_url=base_url,
                            price={"input_per_mtok": "0", "output_per_mtok": "0"})
    ledger = Ledger()
    spec = SandboxSpec(concurrency=args.concurrency, backend=args.backend)
    rows = []
    async with sandbox_for([endpoint], spec, ledger, cache=False) as sandbox:  # every run makes its calls
        evaluator = Evaluator(sandbox, ExactMatch(samples))
        description = f"{sandbox.description}, {sandbox.pool.size} worker(s) x {sandbox.pool.per_worker}"
        for i in range(args.repeats + 1):
            started = time.perf_counter()
            result = await evaluator.evaluate(WORKFLOW, samples)
            wall = time.perf_counter() - started
            if result.score != 1.0:
                raise SystemExit(f"benchmark workflow failed: {[r.error for r in result.results if r.error][:3]}")
            rows.append(("cold pool (starts workers)" if i == 0 else f"warm pool, run {i}", wall, result.score))
    expected_calls = (args.repeats + 1) * args.samples * args.calls
    if ledger.by_role["executor"].calls != expected_calls:
        raise SystemExit(f"expected {expected_calls} LLM calls, ledger counted {ledger.by_role['executor'].calls}")
    return rows, description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--calls", type=int, default=3, help="LLM calls per sample (fixed by the workflow)")
    parser.add_argument("--repeats", type=int, default=3, help="warm-pool runs after the cold one")
    parser.add_argument("--backend", choices=("auto", "gvisor", "process"), default="auto",
                        help="sandbox backend (auto: gvisor where runsc is installed)")
    args = parser.parse_args()
    base_url, stop = start_process("eval_overhead:respond" if __name__ == "__main__" else f"{__name__}:respond",
                                   latency_s=args.latency)
    try:
        rows, description = asyncio.run(measure(base_url, args))
    finally:
        stop()
    floor = math.ceil(args.samples / args.concurrency) * args.calls * args.latency
    print(f"{'run':<28} {'wall (s)':>9} {'floor (s)':>9} {'ratio':>7} {'score':>6}")
    for name, wall, score in rows:
        print(f"{name:<28} {wall:>9.3f} {floor:>9.3f} {wall / floor:>7.3f} {score:>6.2f}")
    warm = [wall for name, wall, _ in rows[1:]]
    print(f"samples={args.samples} concurrency={args.concurrency} latency={args.latency}s calls/sample={args.calls} "
          f"warm median={statistics.median(warm):.3f}s")
    print(f"sandbox: {description}")
    print(f"ratio_to_floor={min(warm) / floor:.3f}")


if __name__ == "__main__":
    main()
