"""The baselines' scores on a sample of each offline benchmark, with an embedded local model as the executor.

One command produces the table in docs/baselines.md (and a JSON file with every answer):

    .venv/bin/python bench/baselines_table.py [--limit 2] [--executor-model qwen2.5-coder-0.5b-instruct]
        [--max-tokens 384] [--benchmarks gsm8k,math,...] [--baselines cot,cot-sc,...] [--out docs/baselines.md]

Every cell is the mean score of one baseline on the first ``--limit`` tasks of the benchmark's validation split
(seed 0, the benchmark's default sizes), run through the same worker pool, executor client and scorer as
``w4s eval``. A 2-core CPU runs a 0.5B model at a few tokens per second, so the defaults keep the sample tiny:
the table shows that every baseline runs end to end on every offline benchmark and what it costs in time, not a
ranking. Raise ``--limit`` (and use a real executor with ``--executor``) for numbers worth comparing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from w4s.baselines import BASELINES  # noqa: E402
from w4s.benchmarks import BENCHMARKS, get_benchmark  # noqa: E402
from w4s.benchmarks.sources import load_task  # noqa: E402
from w4s.evalrun import EvalSession  # noqa: E402
from w4s.spec import parse_spec  # noqa: E402


def offline_benchmarks(data_dir: str | None) -> list[str]:
    return [name for name in BENCHMARKS if get_benchmark(name, data_dir).offline_available()]


def render(cells: dict[tuple[str, str], dict[str, Any]], benchmarks: list[str], baselines: list[str],
           header: str) -> str:
    lines = [header, "", "| baseline | " + " | ".join(benchmarks) + " | time (s) |",
             "|---" * (len(benchmarks) + 2) + "|"]
    for baseline in baselines:
        row = [cells[(baseline, b)] for b in benchmarks]
        seconds = sum(c["seconds"] for c in row)
        lines.append(f"| {baseline} | " + " | ".join(f"{c['score']:.2f}" + (f" ({c['errors']} err)" if c["errors"]
                                                                               else "") for c in row)
                     + f" | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2, help="tasks per benchmark (first N of validation)")
    parser.add_argument("--executor-model", default="qwen2.5-coder-0.5b-instruct",
                        help="embedded model that executes the workflows")
    parser.add_argument("--max-tokens", type=int, default=384, help="completion limit per executor call")
    parser.add_argument("--benchmarks", help="comma-separated (default: every benchmark with an offline copy)")
    parser.add_argument("--baselines", help="comma-separated (default: all)")
    parser.add_argument("--data-dir", help="benchmark files no package ships (default: $W4S_DATA_DIR)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "baselines.md"))
    args = parser.parse_args()
    benchmarks = args.benchmarks.split(",") if args.benchmarks else offline_benchmarks(args.data_dir)
    baselines = args.baselines.split(",") if args.baselines else list(BASELINES)
    spec = parse_spec({"executors": [{"provider": "embedded", "model": args.executor_model,
                                      "maxTokens": args.max_tokens}],
                       "sandbox": {"concurrency": 2, "sampleTimeoutSeconds": "1800"}})
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    started = time.monotonic()
    async with EvalSession(spec, log=lambda m: print(m, file=sys.stderr)) as session:
        for name in benchmarks:
            task = load_task(spec.task.model_copy(update={"benchmark": name, "data_dir": args.data_dir,
                                                          "source": "offline"}))
            try:
                for baseline in baselines:
                    report = await session.evaluate(task, baseline, "validation", args.limit)
                    cells[(baseline, name)] = report.to_json()
                    print(f"{name:10s} {baseline:18s} score {report.score:.2f} errors {report.errors} "
                          f"{report.seconds:6.1f} s", file=sys.stderr, flush=True)
            finally:
                await task.benchmark.aclose()
    total = time.monotonic() - started
    header = (f"# Baselines on the offline benchmarks\n\nProduced by `python bench/baselines_table.py --limit "
              f"{args.limit} --executor-model {args.executor_model} --max-tokens {args.max_tokens}` on "
              f"{time.strftime('%Y-%m-%d')} in {total / 60:.0f} min (2-core CPU, no GPU). Each cell: mean score on "
              f"the first {args.limit} validation tasks (seed 0); 'err' counts tasks where the workflow failed "
              f"(e.g. the executor's reply was not the requested JSON). Cost is $0 (local model).")
    table = render(cells, benchmarks, baselines, header)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({f"{b}/{n}": c for (b, n), c in cells.items()}, indent=1))
    print(table)


if __name__ == "__main__":
    asyncio.run(main())
