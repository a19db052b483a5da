"""The hand-designed baselines: every one renders to plain, compilable standard-library code for every answer kind,
and runs end to end in real workers through the Evaluator against the scripted server (a stand-in for remote
LLM APIs), making the number of LLM calls its documentation states."""

from __future__ import annotations

import ast
import asyncio
import builtins
import itertools
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, get_args

import pytest
from harness import sandbox_for
from scripted_llm import Call, ScriptedLLM

import w4s.baselines
from w4s.baselines import BASELINES, baseline_names, get_baseline, render_baseline
from w4s.benchmarks.base import AnswerKind, Benchmark, Sample, Score, SplitSizes
from w4s.evaluation import Evaluation, Evaluator, SampleResult
from w4s.spec import ExecutorSpec, SandboxSpec

KINDS: tuple[str, ...] = get_args(AnswerKind)
FREE = {"inputPerMtok": "0", "outputPerMtok": "0"}
KEYS = re.compile(r"ONLY using the keys (\[[^\]]*\])")
ROLE = re.compile(r"You are a helpful (.+?)\. Reply in JSON")


# -- stand-in benchmarks, one per answer kind --------------------------------------------------------------------


class _StandIn(Benchmark):
    """A benchmark of one answer kind whose scorer is exact match (code: the answer passes the sample's tests)."""

    title = "stand-in"
    task_description = "tests"
    sizes = SplitSizes(1, 0)

    async def score(self, prediction: Any, sample: Sample) -> Score:
        if self.answer_kind != "code":
            return Score.of(str(prediction) == sample.answer, f"expected {sample.answer!r}, got {prediction!r}")
        namespace: dict[str, Any] = {}
        try:  # the scripted server's own code, so running it here is safe
            exec(str(prediction), namespace)
            for test in sample.meta["tests"]:
                exec(test, namespace)
        except Exception as err:
            return Score.zero(f"{type(err).__name__}: {err}")
        return Score(1.0)


def stand_in(kind: str) -> Benchmark:
    return type(f"StandIn_{kind}", (_StandIn,), {"name": f"stand-in-{kind}", "answer_kind": kind})()


ADD_TASK = 'def add(a, b):\n    """Return the sum of a and b."""\n\nWrite the function `add` in Python.'


def fenced(body: str) -> str:
    return f"Here it is:\n```python\n{body}\n```"


ADD = "def add(a, b):\n    return a + b"
WRONG_ADD = "def add(a, b):\n    return a - b"

# Per kind: the sample, and what a scripted executor writes in 'answer' (so final_answer has work to do).
CASES: dict[str, tuple[Sample, Any]] = {
    "number": (Sample("n-1", "A shop sells 1,200 pens on Monday and 34 on Tuesday. How many pens in all?", "1234"),
               "The answer is 1,234."),
    "math": (Sample("m-1", "What is $\\frac{2}{4}$ in lowest terms?", "\\frac{1}{2}"), "$\\boxed{\\frac{1}{2}}$"),
    "choice": (Sample("c-1", "What is the capital of France?\nA. London\nB. Berlin\nC. Paris\nD. Rome", "C"),
               "(C) Paris"),
    "text": (Sample("t-1", "Passage: Denver played Carolina.\nQuestion: Which teams played?", "Denver and Carolina"),
             ["Denver", "Carolina"]),
    "code": (Sample("k-1", ADD_TASK, ADD, public_tests=("assert add(1, 2) == 3",), entry_point="add",
                    meta={"tests": ["assert add(2, 5) == 7", "assert add(-1, 1) == 0"]}), fenced(ADD)),
}


# -- a scripted executor that answers according to the request ---------------------------------------------------


def requested_keys(call: Call) -> list[str]:
    system = call.messages[0]["content"]
    found = KEYS.search(system)
    assert found, f"not a JSON-format request: {system[:200]!r}"
    return ast.literal_eval(found.group(1))


def role_of(call: Call) -> str:
    found = ROLE.search(call.messages[0]["content"])
    return found.group(1) if found else ""


def prompt_of(call: Call) -> str:
    return call.messages[-1]["content"]


class Executor:
    """Replies with a JSON object holding exactly the requested keys.

    'answer' is the case's raw answer unless ``answers`` scripts the successive answer-giving calls; a critic's
    'correct' follows ``verdicts`` (then repeats the last); the router picks the second expert it is offered;
    'best' is ``best``; a public-test repair returns ``repaired``. 'reasoning' names the role and the call number,
    so that tests can follow what each prompt shows.
    """

    def __init__(self, raw: Any, *, answers: Sequence[Any] = (), samples: Sequence[Any] = (),
                 verdicts: Sequence[bool] = (True,), best: str = "1", repaired: str = fenced(ADD)) -> None:
        self.raw = raw
        self.answers = list(answers)
        self.samples = list(samples)
        self.verdicts = list(verdicts)
        self.best = best
        self.repaired = repaired
        self.counts: Counter[str] = Counter()

    def __call__(self, call: Call) -> str | list[str]:
        keys = requested_keys(call)
        if call.n > 1:
            assert len(self.samples) == call.n, "script one answer per sample"
            return [json.dumps(self.reply(call, keys, answer)) for answer in self.samples]
        return json.dumps(self.reply(call, keys, None))

    def reply(self, call: Call, keys: list[str], sample_answer: Any) -> dict[str, Any]:
        kind = ",".join(keys)
        self.counts[kind] += 1
        n = self.counts[kind]
        values: dict[str, Callable[[], Any]] = {
            "reasoning": lambda: f"reasoning {n} of {role_of(call)}",
            "answer": lambda: sample_answer if sample_answer is not None else self.answer(n),
            "feedback": lambda: f"feedback {n}",
            "correct": lambda: self.verdicts[min(n, len(self.verdicts)) - 1],
            "choice": lambda: self.expert(call),
            "best": lambda: self.best,
            "reflection": lambda: "the sign is wrong",
            "code": lambda: self.repaired,
        }
        return {key: values[key]() for key in keys}

    def answer(self, n: int) -> Any:
        return self.answers[min(n, len(self.answers)) - 1] if self.answers else self.raw

    @staticmethod
    def expert(call: Call) -> str:
        offered = re.search(r"from: (.+?)\. Put", call.messages[0]["content"])
        assert offered, "the router must be offered the experts"
        return f"I pick the {offered.group(1).split(', ')[1]}."


# -- running workflows through the real worker pool and Evaluator ------------------------------------------------


@pytest.fixture(autouse=True)
def scripted_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor is an OpenAI endpoint (native ``n``: CoT-SC's 5 samples are one request) on the scripted
    server, which wants some key."""
    monkeypatch.setenv("W4S_SCRIPTED_KEY", "scripted")


def sandbox() -> SandboxSpec:
    return SandboxSpec(concurrency=4, sample_timeout_seconds="60", execute_code_timeout_seconds="10")


async def evaluate_many(server: ScriptedLLM, jobs: Sequence[tuple[Benchmark, str, Sample]]) -> list[Evaluation]:
    """Evaluate (benchmark, code, sample) jobs concurrently in one worker pool with one scripted executor."""
    spec = ExecutorSpec(name="default", provider="openai", model="scripted-executor", base_url=server.base_url,
                        api_key_env="W4S_SCRIPTED_KEY", price=FREE, max_retries=0)
    async with sandbox_for([spec], sandbox()) as box:
        return list(await asyncio.gather(*(Evaluator(box, bench).evaluate(code, [sample])
                                           for bench, code, sample in jobs)))


def run_one(name: str, kind: str, executor: Executor) -> tuple[SampleResult, list[Call]]:
    """Run baseline ``name`` on the ``kind`` case; the result and the executor calls, in order."""
    bench = stand_in(kind)
    sample = CASES[kind][0]
    with ScriptedLLM(executor) as server:
        (evaluation,) = asyncio.run(evaluate_many(server, [(bench, render_baseline(name, bench), sample)]))
        calls = [exchange.call for exchange in server.calls]
    (result,) = evaluation.results
    assert result.error is None, result.error
    assert result.llm_calls == len(calls)
    low, high = get_baseline(name).call_bounds(kind == "code")
    assert low <= result.llm_calls <= high
    return result, calls


# -- rendering ---------------------------------------------------------------------------------------------------


def unbound_names(source: str) -> set[str]:
    """Names the code reads that nothing in it binds and that are not builtins (a missing import, a typo)."""
    tree = ast.parse(source)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
            bound.update(a.arg for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs])
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound}


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    return modules


def test_baselines_are_the_papers_seven_in_order() -> None:
    assert BASELINES == baseline_names() == ("vanilla", "cot", "cot-sc", "self-refine", "llm-debate",
                                             "quality-diversity", "dynamic-role")
    assert all(get_baseline(name).description for name in BASELINES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_renders_plain_standard_library_code(name: str, kind: str) -> None:
    source = render_baseline(name, stand_in(kind))
    compile(source, f"<{name}/{kind}>", "exec")
    tree = ast.parse(source)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "workflow" in functions and "final_answer" in functions
    assert [a.arg for a in next(n for n in tree.body if getattr(n, "name", "") == "workflow").args.args] == \
        ["agent", "task"]
    assert unbound_names(source) == set()
    assert imported_modules(source) <= set(sys.stdlib_module_names)
    assert all(len(line) <= 120 for line in source.splitlines())
    low, high = get_baseline(name).call_bounds(kind == "code")
    assert f"LLM calls per task: {low if low == high else f'{low} to {high}'} " in " ".join(source.split())


def test_the_code_kind_and_only_it_finds_the_entry_point() -> None:
    for kind in KINDS:
        source = render_baseline("cot", stand_in(kind))
        assert ("def entry_point(" in source) == (kind == "code")
    namespace: dict[str, Any] = {}
    exec(render_baseline("vanilla", stand_in("code")), namespace)
    assert namespace["entry_point"](ADD_TASK) == "add"
    assert namespace["entry_point"]("def helper(x):\n    pass\n\ndef main(y):\n    pass") == "helper"


def test_cot_sc_aggregation_is_a_constant_at_the_top() -> None:
    assert 'AGGREGATION = "vote"' in render_baseline("cot-sc", stand_in("number"))
    assert 'AGGREGATION = "ensemble"' in render_baseline("cot-sc", stand_in("code"))


def test_example_workflow_w0_is_the_cot_baseline() -> None:
    for kind in KINDS:
        bench = stand_in(kind)
        assert bench.example_workflow == render_baseline("cot", bench)


def test_unknown_baseline_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown baseline 'tot'.*vanilla, cot, cot-sc, self-refine"):
        render_baseline("tot", stand_in("number"))
    odd = stand_in("number")
    odd.answer_kind = "essay"  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown answer kind 'essay'"):
        render_baseline("cot", odd)


def test_docstring_table_states_the_call_bounds() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| [^|]+ \| ([0-9-]+) \| ([0-9-]+) \|$", w4s.baselines.__doc__ or "",
                      re.MULTILINE)
    assert [row[0] for row in rows] == list(BASELINES)

    def bounds(text: str) -> tuple[int, int]:
        low, _, high = text.partition("-")
        return int(low), int(high or low)

    for name, calls, code_calls in rows:
        assert bounds(calls) == get_baseline(name).call_bounds(False), name
        assert bounds(code_calls) == get_baseline(name).call_bounds(True), name


# -- end to end through workers and the Evaluator (scripted server) ----------------------------------------------

HAPPY_CALLS = {"vanilla": 1, "cot": 1, "cot-sc": 1, "self-refine": 2, "llm-debate": 7, "quality-diversity": 5,
               "dynamic-role": 2}


def test_every_baseline_answers_every_kind_end_to_end_scripted_llm() -> None:
    """Every baseline, every kind: correct normalised answers, and the documented calls when all goes well."""
    jobs = [(stand_in(kind), name, kind) for kind in KINDS for name in BASELINES]
    raw_by_question = {case[0].question: case[1] for case in CASES.values()}

    def executor(call: Call) -> str | list[str]:
        raw = next(r for q, r in raw_by_question.items() if q in call.messages[-1]["content"])
        return Executor(raw, samples=[raw] * call.n)(call)

    with ScriptedLLM(executor) as server:
        evaluations = asyncio.run(evaluate_many(
            server, [(bench, render_baseline(name, bench), CASES[kind][0]) for bench, name, kind in jobs]))
    for (_, name, kind), evaluation in zip(jobs, evaluations, strict=True):
        (result,) = evaluation.results
        assert result.error is None, (name, kind, result.error)
        assert result.score == 1.0, (name, kind, result.answer, result.score_reason)
        expected = HAPPY_CALLS[name] + (1 if (name, kind) == ("cot-sc", "code") else 0)
        assert result.llm_calls == expected, (name, kind)


def test_cot_sc_majority_vote_picks_the_most_frequent_answer_scripted_llm() -> None:
    # 12.0, 12 and 12.00 are one answer after normalisation: 3 votes against 2 for 7, which is ahead before it.
    executor = Executor("unused", samples=["7", "12.0", "The answer is 7", "12", "12.00"])
    result, calls = run_one("cot-sc", "number", executor)
    assert [(c.n, c.temperature) for c in calls] == [(5, 0.8)]
    assert result.answer == "12.0"  # the first of the winning group


def test_cot_sc_for_code_lets_the_executor_pick_the_best_sample_scripted_llm() -> None:
    candidates = [fenced(f"def add(a, b):\n    return a + b + {i - 3}") for i in range(5)]
    result, calls = run_one("cot-sc", "code", Executor("unused", samples=candidates, best="Solution 4"))
    assert [c.n for c in calls] == [5, 1]
    listing = prompt_of(calls[1])
    assert all(f"## Solution {i}" in listing for i in range(1, 6))
    assert result.answer == "def add(a, b):\n    return a + b + 0" and result.score == 1.0


def test_self_refine_stops_when_the_critic_says_correct_scripted_llm() -> None:
    executor = Executor("unused", answers=["5", "1234"], verdicts=[False, True])
    result, calls = run_one("self-refine", "number", executor)
    assert [requested_keys(c) for c in calls] == [["reasoning", "answer"], ["feedback", "correct"],
                                                  ["reasoning", "answer"], ["feedback", "correct"]]
    assert "feedback 1" in prompt_of(calls[2])  # the refinement sees the critique
    assert result.answer == "1234" and result.score == 1.0


def test_self_refine_runs_five_rounds_when_the_critic_never_agrees_scripted_llm() -> None:
    executor = Executor("unused", answers=[str(i) for i in range(1, 7)], verdicts=[False])
    result, calls = run_one("self-refine", "number", executor)
    assert len(calls) == 11
    critiques = [c for c in calls if requested_keys(c) == ["feedback", "correct"]]
    assert len(critiques) == 5
    assert "# Attempt 5" in prompt_of(calls[-1]) and "feedback 5" in prompt_of(calls[-1])
    assert result.answer == "6"  # the fifth refinement


def test_self_refine_for_code_refines_until_the_public_tests_pass_scripted_llm() -> None:
    # The critic always approves, but the first program fails the public test, so it is refined once.
    executor = Executor("unused", answers=[fenced(WRONG_ADD), fenced(ADD)], verdicts=[True])
    result, calls = run_one("self-refine", "code", executor)
    assert len(calls) == 4
    assert "Public tests: failed" in prompt_of(calls[1]) and "Public tests: passed" in prompt_of(calls[3])
    assert result.answer == ADD and result.score == 1.0


def test_cot_for_code_repairs_a_solution_that_fails_the_public_tests_scripted_llm() -> None:
    result, calls = run_one("cot", "code", Executor(fenced(WRONG_ADD), repaired=fenced(ADD)))
    assert [requested_keys(c) for c in calls] == [["reasoning", "answer"], ["reflection", "code"]]
    tree = ast.parse(result.answer)
    assert [node.name for node in tree.body if isinstance(node, ast.FunctionDef)] == ["add"]
    assert result.score == 1.0


def test_llm_debate_makes_three_roles_argue_for_two_rounds_scripted_llm() -> None:
    result, calls = run_one("llm-debate", "number", Executor("1234"))
    roles = ["Math Professor", "Grade School Teacher", "Math Enthusiast"]
    assert len(calls) == 7
    assert [role_of(c) for c in calls[:6]] == roles + roles
    first_round = [f"reasoning {j + 1} of {role}" for j, role in enumerate(roles)]
    for i, call in enumerate(calls[3:6]):  # round 2: its own first answer, then the other two agents' answers
        own, others = prompt_of(call).split("# Other agents' solutions")
        assert first_round[i] in own and first_round[i] not in others
        assert all(first_round[j] in others for j in range(3) if j != i)
    final = prompt_of(calls[6])
    assert all(f"reasoning {4 + i} of {role}" in final for i, role in enumerate(roles))  # the second round's
    assert result.answer == "1234"


def test_quality_diversity_shows_every_previous_attempt_scripted_llm() -> None:
    result, calls = run_one("quality-diversity", "number", Executor("1234"))
    assert len(calls) == 5
    for k, call in enumerate(calls[1:4], start=1):
        prompt = prompt_of(call)
        assert all(f"## Attempt {i}" in prompt for i in range(1, k + 1)) and f"## Attempt {k + 1}" not in prompt
    assert all(f"## Solution {i}" in prompt_of(calls[4]) for i in range(1, 5))
    assert result.answer == "1234"


def test_dynamic_role_lets_the_chosen_expert_answer_scripted_llm() -> None:
    result, calls = run_one("dynamic-role", "choice", Executor("(C) Paris"))
    assert [role_of(c) for c in calls] == ["router", "Chemistry Expert"]  # the second expert offered
    assert result.answer == "C"


@pytest.mark.parametrize(("reply", "letter"), [("A good answer is C", "C"), ("The answer is (B) Berlin", "B"),
                                               ("Paris, so option C", "C")])
def test_choice_answers_are_read_from_the_marker_not_the_first_capital_scripted_llm(reply: str, letter: str) -> None:
    result, _ = run_one("vanilla", "choice", Executor(reply))
    assert result.answer == letter


def test_no_baseline_makes_more_calls_than_documented_when_nothing_is_accepted_scripted_llm() -> None:
    """Critics that never agree and failing public tests: the upper bounds hold for every baseline."""
    for name, kind in itertools.product(BASELINES, ("number", "code")):
        raw = fenced(WRONG_ADD) if kind == "code" else "1"
        executor = Executor(raw, samples=[raw] * 5, verdicts=[False], repaired=fenced(WRONG_ADD))
        result, _ = run_one(name, kind, executor)
        assert result.llm_calls == get_baseline(name).call_bounds(kind == "code")[1], (name, kind)
