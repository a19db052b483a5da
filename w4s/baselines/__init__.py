"""The paper's hand-designed baselines as ordinary workflows, and the example workflow W0 (``cot``).

A baseline is rendered for a benchmark's answer kind (number, math, choice, text, code) into the complete source
of ``def workflow(agent, task: str) -> dict``: standard library and helper API only, so it runs in a worker like
any workflow the meta-agent writes, and reads like one. The kind appears only as constants at the top (ROLE,
ANSWER_INSTRUCTIONS, debate roles, experts) and in ``final_answer``, which turns the executor's 'answer' field
into what the scorer expects (the number; the LaTeX expression; the option letter; the span; the code of the
entry point named by the task's last line "Write the function `NAME` in Python.").

The designs follow ADAS's baseline agents. LLM calls per task (one call = one request to the executor, whatever
its ``num_of_response``; each malformed JSON reply adds up to ``sandbox.jsonRetries`` re-asks, not counted here):

| baseline | design | calls | calls (code) |
| --- | --- | --- | --- |
| `vanilla` | one call, the answer only | 1 | 1 |
| `cot` | reason step by step, then answer (W0) | 1 | 1-3 |
| `cot-sc` | 5 CoT samples in one request, majority vote (code: the executor picks one) | 1 | 2 |
| `self-refine` | answer, then up to 5 rounds of critique + refinement | 2-11 | 2-11 |
| `llm-debate` | 3 roles x 2 rounds, then a final decision | 7 | 7 |
| `quality-diversity` | an answer, 3 attempts unlike the previous ones, a final decision | 5 | 5 |
| `dynamic-role` | a router picks an expert for the answer kind, the expert answers | 2 | 2 |

- CoT-SC samples at temperature 0.8 (n=5) and votes over normalised answers (12 and 12.0 are one vote). Programs
  are rarely equal, so for code an extra call lets the executor pick the best sample (W4S appendix D.2); the
  rendered code keeps both, switched by its AGGREGATION constant.
- Self-Refine stops as soon as the critic is sure the answer is correct; for code the public tests must pass too.
  They run through ``agent.test_on_public_test(..., test_loop=0)``, which calls no LLM.
- Code CoT runs the public tests and lets the executor repair a failing solution at most twice
  (``test_on_public_test(..., test_loop=2)``), one call per repair.
- LLM Debate's second round shows each agent its own and the other two agents' first-round answers.
"""

from __future__ import annotations

from w4s.baselines.designs import DESIGNS, Design, assemble
from w4s.baselines.kinds import KINDS
from w4s.benchmarks.base import Benchmark

_BY_NAME: dict[str, Design] = {design.name: design for design in DESIGNS}

BASELINES: tuple[str, ...] = tuple(_BY_NAME)


def baseline_names() -> tuple[str, ...]:
    """The baselines in the paper's order: vanilla, cot, cot-sc, self-refine, llm-debate, quality-diversity,
    dynamic-role."""
    return BASELINES


def get_baseline(name: str) -> Design:
    """A baseline's design (``description`` for listings, ``call_bounds(is_code)``); ValueError names the known
    ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}") from None


def render_baseline(name: str, benchmark: Benchmark | type[Benchmark]) -> str:
    """The complete workflow source of baseline ``name`` for ``benchmark``'s answer kind."""
    design = get_baseline(name)
    kind_name = benchmark.answer_kind
    kind = KINDS.get(kind_name)
    if kind is None:
        raise ValueError(f"{benchmark.name}: unknown answer kind {kind_name!r}; known: {', '.join(KINDS)}")
    return assemble(design, kind_name, kind)


__all__ = ["BASELINES", "Design", "baseline_names", "get_baseline", "render_baseline"]
