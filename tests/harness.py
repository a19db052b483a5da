"""Helpers to run the real loop against the scripted provider (a stand-in for remote LLM APIs)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from policies import EXECUTOR_MODEL, META_MODEL, Plan, Policy
from scripted_llm import ScriptedLLM

from w4s.benchmarks.base import Benchmark, Sample, Score, SplitSizes
from w4s.benchmarks.gsm import GSM8K
from w4s.benchmarks.splits import Splits, split_for
from w4s.llm.client import LLMClient
from w4s.llm.ledger import Ledger
from w4s.llm.pricing import resolve_price
from w4s.llm.providers import build_provider
from w4s.records import RunResult
from w4s.runner import run_optimization
from w4s.sandbox.session import Sandbox
from w4s.spec import ExecutorSpec, OptimizationSpec, SandboxSpec, merge, parse_spec

PRICE = {"inputPerMtok": "1", "outputPerMtok": "2"}


class ExactMatch(Benchmark):
    """A stand-in benchmark for plumbing tests and benches: the given samples; an answer is right when its text
    equals the gold answer."""

    name = "exact-match"
    title = "exact match"
    task_description = "tests"
    answer_kind = "text"
    sizes = SplitSizes(1, 0)

    def __init__(self, samples: Sequence[Sample]) -> None:
        super().__init__()
        self.samples = list(samples)

    def load_offline(self) -> list[Sample]:
        return self.samples

    async def score(self, prediction: Any, sample: Sample) -> Score:
        return Score.of(str(prediction) == sample.answer, f"expected {sample.answer!r}, got {prediction!r}")


@asynccontextmanager
async def sandbox_for(executors: Sequence[ExecutorSpec], spec: SandboxSpec, ledger: Ledger | None = None,
                      seed: int = 0, cache: bool = True) -> AsyncIterator[Sandbox]:
    """What an Evaluator needs besides a benchmark: the sandbox with its gateway in front of one client per
    executor (its role is the executor's name), all closed on exit."""
    ledger = ledger or Ledger()
    clients = {e.name: LLMClient(build_provider(e), resolve_price(e), ledger, e.name, e.max_retries)
               for e in executors}
    try:
        async with Sandbox(spec, clients, seed, log=lambda _: None, cache=cache) as sandbox:
            yield sandbox
    finally:
        for client in clients.values():
            await client.provider.aclose()


@functools.cache
def gsm8k_samples() -> tuple[Sample, ...]:
    return tuple(GSM8K().load_offline())


def splits_of(spec: OptimizationSpec) -> Splits:
    return split_for(list(gsm8k_samples()), spec.splits, GSM8K.sizes)


def wire_spec(base_url: str, run_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A spec pointing both roles at the scripted server; sizes chosen so SKILL tenths are whole tasks (20 private)."""
    base = {
        "task": {"benchmark": "gsm8k"},
        "splits": {"validationSize": 26, "publicSize": 6, "testSize": 10, "caseStudies": 3},
        "executors": [{"provider": "openai-compatible", "model": EXECUTOR_MODEL, "baseUrl": base_url,
                       "price": PRICE, "maxRetries": 2}],
        "metaAgent": {"provider": "openai-compatible", "model": META_MODEL, "baseUrl": base_url, "price": PRICE},
        "iterations": 4,
        "sandbox": {"concurrency": 4},
        "store": str(run_dir),
    }
    return merge(base, overrides)


@contextmanager
def scripted(steps: dict[tuple[int, int, int], tuple] | None = None, seed: int = 0, executor_price: str = "1",
             **spec_overrides: Any) -> Iterator[tuple[ScriptedLLM, OptimizationSpec]]:
    """A running scripted server with a policy for ``steps`` and a spec aimed at it (store: set by caller)."""
    plan = Plan(seed=seed, steps=steps or {})
    server = ScriptedLLM(lambda call: "", models=(META_MODEL, EXECUTOR_MODEL))
    with server:
        wire = wire_spec(server.base_url, Path("unset"), seed=seed, **spec_overrides)
        wire["executors"][0]["price"] = {"inputPerMtok": executor_price, "outputPerMtok": executor_price}
        spec = parse_spec(wire)
        splits = splits_of(spec)
        server.responder = Policy(splits, {s.question: s.answer for s in gsm8k_samples()}, plan)
        yield server, spec


def run(spec: OptimizationSpec, store: Path | str) -> RunResult:
    spec = spec.model_copy(update={"store": str(store)})
    return asyncio.run(run_optimization(spec, log=lambda _m: None))


def meta_calls(server: ScriptedLLM) -> list[Any]:
    return [e.call for e in server.calls if e.call.model == META_MODEL]


def executor_calls(server: ScriptedLLM) -> list[Any]:
    return [e.call for e in server.calls if e.call.model == EXECUTOR_MODEL]
