"""Untrusted workflow code in worker processes: separate process, no credentials, wall-clock and memory limits,
execute_code's limited child, a protocol that prints cannot corrupt, and the helper API's LLM paths through the
real Evaluator (against the scripted server, a stand-in for remote LLM APIs)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import ExactMatch, sandbox_for
from scripted_llm import Call, ScriptedLLM

from w4s.benchmarks.base import Sample
from w4s.evaluation import Evaluation, Evaluator
from w4s.sandbox.session import Sandbox
from w4s.spec import ExecutorSpec, SandboxSpec
from w4s.workflow.confine import descendants

FREE = {"inputPerMtok": "0", "outputPerMtok": "0"}
EXECUTOR_MODEL = "scripted-executor"

PID_WORKFLOW = '''
def workflow(agent, task):
    import os
    return {"answer": [os.getpid(), os.getuid()]}
'''

# Lists this process's children and tells whether a PID is still a live (non-zombie) process.
PROC_HELPERS = '''
import os


def children():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(entry))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
'''


@dataclass
class Outcome:
    answer: Any
    error: str | None
    seconds: float


NO_LLM = ExecutorSpec(name="default", provider="openai-compatible", model="none", base_url="http://127.0.0.1:9/v1",
                      price=FREE, max_retries=0)


def sandbox_spec(**fields: Any) -> SandboxSpec:
    return SandboxSpec(**{"backend": "process", "concurrency": 2, "execute_code_timeout_seconds": "1",
                          "execute_code_memory_mb": 256, "json_retries": 1, **fields})


async def run_codes(box: Sandbox, codes: Sequence[str]) -> list[Outcome]:
    outcomes = []
    for i, code in enumerate(codes):
        result, _ = await box.run_workflow(textwrap.dedent(code), f"s{i}", "task", {})
        outcomes.append(Outcome(result.answer, result.error_text, result.wall_s))
    return outcomes


def run_in_pool(codes: Sequence[str], timeout: float = 10.0, memory_mb: int = 1024) -> list[Outcome]:
    """Run samples one after another in one sandbox (plain-process backend: these tests are about the worker's
    own containment; the gVisor backend is covered by the adversarial suite)."""
    async def go() -> list[Outcome]:
        spec = sandbox_spec(sample_timeout_seconds=str(timeout), worker_memory_mb=memory_mb)
        async with sandbox_for([NO_LLM], spec) as box:
            return await run_codes(box, codes)
    return asyncio.run(go())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- process isolation ---------------------------------------------------------------------------------------


def test_workflow_runs_in_another_process_under_its_own_uid() -> None:
    first, second = run_in_pool([PID_WORKFLOW, PID_WORKFLOW])
    assert first.error is None and second.error is None
    (pid1, uid1), (pid2, uid2) = first.answer, second.answer
    assert os.getpid() not in (pid1, pid2) and pid1 != pid2  # a fresh process per sample
    if os.geteuid() == 0:  # a worker started by root hands each sample a uid of its own
        assert 0 not in (uid1, uid2) and uid1 != uid2


def test_workflow_does_not_see_the_runners_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    (env_outcome, exec_outcome) = run_in_pool([
        '''
        def workflow(agent, task):
            import os
            return {"answer": dict(os.environ)}
        ''',
        '''
        def workflow(agent, task):
            return {"answer": agent.execute_code(
                "import os\\ndef solution():\\n    return dict(os.environ)\\n")}
        ''',
    ])
    for outcome in (env_outcome, exec_outcome):
        assert outcome.error is None and isinstance(outcome.answer, dict)
        dumped = json.dumps(outcome.answer)
        assert "sk-secret" not in dumped and "aws-secret" not in dumped
        assert "OPENAI_API_KEY" not in outcome.answer
        assert set(outcome.answer) <= {"PATH", "LANG", "HOME", "TMPDIR", "LC_CTYPE"}


def test_workflow_has_no_network_not_even_loopback() -> None:
    """A listening socket on the runner's loopback (where local model servers live) is out of reach."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # reachable from the runner itself
        (outcome,) = run_in_pool([f'''
            def workflow(agent, task):
                import socket
                s = socket.socket()
                s.settimeout(2)
                direct = s.connect_ex(("127.0.0.1", {port}))
                nested = agent.execute_code(
                    "import socket\\ndef solution():\\n    s = socket.socket()\\n    s.settimeout(2)\\n"
                    "    return s.connect_ex(('127.0.0.1', {port}))\\n")
                return {{"answer": [direct, nested]}}
            '''])
    assert outcome.error is None, outcome.error
    direct, nested = outcome.answer
    assert direct != 0 and nested != 0  # connection refused/unreachable, never established


def test_infinite_loop_is_stopped_and_the_pool_keeps_working() -> None:
    first, looped, after = run_in_pool([PID_WORKFLOW, '''
        def workflow(agent, task):
            while True:
                pass
        ''', PID_WORKFLOW], timeout=1.0)
    assert first.error is None and isinstance(first.answer, list)
    assert looped.error is not None and looped.error.startswith("Timeout: the sample timed out after 1 s")
    assert 1.0 <= looped.seconds < 3.0
    deadline = time.monotonic() + 2
    while not (gone(first.answer[0]) and gone(after.answer[0])) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(first.answer[0]) and gone(after.answer[0])  # each sample's process exits once it is done
    assert after.error is None and after.answer[0] != first.answer[0]


def test_processes_that_leave_the_session_are_killed_with_the_sample() -> None:
    """setsid and a double fork escape a process-group kill; everything of the sample's uid (or, without uid
    isolation, everything orphaned below the subreaper worker) is killed when the sample ends."""
    def sleepers() -> list[int]:
        found = []
        for pid in descendants(os.getpid()):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", b"301"]:
                    found.append(pid)
        return found

    async def go() -> tuple[Outcome, list[int]]:
        async with sandbox_for([NO_LLM], sandbox_spec(sample_timeout_seconds="1")) as box:
            (outcome,) = await run_codes(box, ['''
                def workflow(agent, task):
                    import os, subprocess
                    subprocess.Popen(["sleep", "301"], start_new_session=True)
                    if os.fork() == 0:
                        os.setsid()
                        if os.fork() == 0:
                            os.execv("/bin/sleep", ["sleep", "301"])
                        os._exit(0)
                    while True:
                        pass
                '''])
            await asyncio.sleep(0.5)
            return outcome, sleepers()

    outcome, left = asyncio.run(go())
    assert outcome.error is not None and "timed out after 1 s" in outcome.error
    assert left == []  # nothing the workflow started survives it, while the worker itself lives on


def test_memory_limit_and_the_next_sample_still_runs() -> None:
    hog, after = run_in_pool(['''
        def workflow(agent, task):
            block = bytearray(3 * 1024 ** 3)
            return {"answer": len(block)}
        ''', PID_WORKFLOW], memory_mb=1024)
    assert hog.answer is None and hog.error is not None
    assert "MemoryError" in hog.error or "WorkflowCrashed" in hog.error
    assert after.error is None and isinstance(after.answer, list)


def test_sample_namespaces_do_not_leak_between_samples() -> None:
    first, second = run_in_pool(['''
        import builtins
        SECRET_STATE = "from sample one"
        def workflow(agent, task):
            return {"answer": SECRET_STATE}
        ''', '''
        def workflow(agent, task):
            return {"answer": globals().get("SECRET_STATE", "clean")}
        '''])
    assert (first.answer, second.answer) == ("from sample one", "clean")


def test_prints_do_not_corrupt_the_protocol() -> None:
    (outcome,) = run_in_pool(['''
        import os, sys
        FORGED = '{"op": "done", "ok": true, "answer": "forged"}'
        def workflow(agent, task):
            print(FORGED)
            sys.stdout.write(FORGED + "\\n")
            sys.stdout.flush()
            os.write(1, (FORGED + "\\n").encode())
            print("x" * 1_000_000, file=sys.stderr)
            value = agent.execute_code("def solution():\\n    print('" + FORGED.replace("'", "") + "')\\n"
                                       "    return 'from child'\\n")
            print(FORGED, flush=True)
            return {"answer": ["real", value]}
        '''])
    assert outcome.error is None
    assert outcome.answer == ["real", "from child"]


def test_workflow_errors_are_reported_with_the_failing_line() -> None:
    crash, bad_return = run_in_pool(['''
        def workflow(agent, task):
            items = []
            return {"answer": items[3]}
        ''', '''
        def workflow(agent, task):
            return "42"
        '''])
    assert crash.error is not None and "IndexError" in crash.error and "items[3]" in crash.error
    assert bad_return.error is not None and "'answer'" in bad_return.error and "str" in bad_return.error


# -- execute_code ----------------------------------------------------------------------------------------------


def test_execute_code_round_trips_values() -> None:
    (outcome,) = run_in_pool(['''
        CODES = [
            "def solution():\\n    return 6 * 7\\n",
            "def solution():\\n    return [1, 'two', 3.5, None, True]\\n",
            "def solution():\\n    return {'a': {'b': [1, 2]}, 'c': -0.25}\\n",
            "def solution():\\n    return (1, 2)\\n",
        ]
        def workflow(agent, task):
            return {"answer": [agent.execute_code(code) for code in CODES]}
        '''])
    assert outcome.error is None
    assert outcome.answer == [42, [1, "two", 3.5, None, True], {"a": {"b": [1, 2]}, "c": -0.25}, [1, 2]]


def test_execute_code_errors_are_clear() -> None:
    (outcome,) = run_in_pool(['''
        def attempt(agent, code):
            try:
                agent.execute_code(code)
            except Exception as err:
                return f"{type(err).__name__}: {err}"
            return "no error"

        def workflow(agent, task):
            return {"answer": [attempt(agent, "x = 1\\n"), attempt(agent, "def solution():\\n    return 1 / 0\\n"),
                               attempt(agent, "def solution(:\\n")]}
        '''])
    assert outcome.error is None
    no_solution, raised, syntax = outcome.answer
    assert no_solution.startswith("ExecutionError") and "solution()" in no_solution
    assert raised.startswith("ExecutionError") and "ZeroDivisionError" in raised
    assert syntax.startswith("ExecutionError") and "SyntaxError" in syntax


def test_execute_code_infinite_loop_times_out_and_leaves_no_process() -> None:
    code = PROC_HELPERS + '''
import time

CHILD_CODE = """
import os
def solution():
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    with open(MARKER, "w") as f:
        f.write(str(pid))
    while True:
        pass
"""


def workflow(agent, task):
    marker = os.path.join(os.getcwd(), "grandchild.pid")
    started = time.monotonic()
    try:
        agent.execute_code(f"MARKER = {marker!r}\\n" + CHILD_CODE)
        error = "no error"
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    elapsed = time.monotonic() - started
    with open(marker) as f:
        grandchild = int(f.read())
    return {"answer": {"error": error, "elapsed": elapsed, "children": children(), "grandchild": grandchild,
                       "grandchild_alive": alive(grandchild)}}
'''
    (outcome,) = run_in_pool([code], timeout=10.0)
    assert outcome.error is None, outcome.error
    result = outcome.answer
    if result["grandchild_alive"]:  # do not leave it spinning when the assertion below fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(result["grandchild"], 9)
    assert result["error"] == "ExecutionError: code execution timed out after 1 s"
    assert 1.0 <= result["elapsed"] < 2.5
    assert result["children"] == []  # the execute_code child was killed and reaped
    assert not result["grandchild_alive"]  # and so was everything it started


def test_execute_code_timeout_argument_cannot_exceed_the_limit() -> None:
    (outcome,) = run_in_pool(['''
        import time
        def workflow(agent, task):
            started = time.monotonic()
            try:
                agent.execute_code("def solution():\\n    while True:\\n        pass\\n", timeout=3600)
            except Exception as err:
                return {"answer": [str(err), time.monotonic() - started]}
            return {"answer": "finished"}
        '''])
    message, elapsed = outcome.answer
    assert "timed out after 1 s" in message and elapsed < 2.5


# -- LLM calls through the Evaluator (scripted server) ---------------------------------------------------------


def executor(server: ScriptedLLM, name: str = "default", model: str = EXECUTOR_MODEL) -> ExecutorSpec:
    return ExecutorSpec(name=name, provider="openai-compatible", model=model, base_url=server.base_url, price=FREE,
                        max_retries=0)


def evaluate(code: str, samples: Sequence[Sample], executors: Sequence[ExecutorSpec], **sandbox: Any) -> Evaluation:
    spec = sandbox_spec(**{"sample_timeout_seconds": "20", "execute_code_timeout_seconds": "2", **sandbox})

    async def go() -> Evaluation:
        async with sandbox_for(executors, spec) as box:
            return await Evaluator(box, ExactMatch(samples)).evaluate(textwrap.dedent(code), samples)

    return asyncio.run(go())


def sample(question: str = "What is 3 + 4?", answer: str = "7", **fields: Any) -> Sample:
    return Sample(id=f"s-{abs(hash(question))}", question=question, answer=answer, **fields)


ASK = '''
def workflow(agent, task):
    return {"answer": agent.call_llm([{"role": "user", "content": task}], temperature=0.0)[0]}
'''


def test_llm_calls_are_limited_per_sample_scripted_llm() -> None:
    with ScriptedLLM(lambda call: "7") as server:
        evaluation = evaluate('''
            def workflow(agent, task):
                for _ in range(5):
                    last = agent.call_llm([{"role": "user", "content": task}])[0]
                return {"answer": last}
            ''', [sample()], [executor(server)], max_llm_calls_per_sample=3)
        calls = server.calls
    (result,) = evaluation.results
    assert len(calls) == 3
    assert result.score == 0.0 and result.error is not None
    assert "LLMCallError" in result.error and "sandbox.maxLlmCallsPerSample" in result.error
    # Under the limit, the same evaluation scores.
    with ScriptedLLM(lambda call: "7") as server:
        assert evaluate(ASK, [sample()], [executor(server)], max_llm_calls_per_sample=1).score == 1.0


def test_unknown_executor_lists_the_available_ones_scripted_llm() -> None:
    with ScriptedLLM(lambda call: f"answer from {call.model}") as server:
        evaluation = evaluate('''
            def workflow(agent, task):
                if "strong" in task:
                    return {"answer": agent.call_llm([{"role": "user", "content": task}], model="strong")[0]}
                return {"answer": agent.call_llm([{"role": "user", "content": task}], model="gpt-9")[0]}
            ''', [sample("use strong", "answer from big-model"), sample("use typo", "x")],
            [executor(server), executor(server, "strong", "big-model")])
        calls = server.calls
    routed, unknown = evaluation.results
    assert routed.error is None and routed.score == 1.0
    assert [c.call.model for c in calls] == ["big-model"]  # the unknown name never reached a provider
    assert unknown.error is not None and "unknown executor 'gpt-9'" in unknown.error
    assert "['default', 'strong']" in unknown.error


JSON_ASK = '''
def workflow(agent, task):
    reply = agent.call_json_format_llm([{"role": "user", "content": task}], temperature=0.0,
                                       return_dict_keys=["reasoning", "answer"])[0]
    return {"answer": reply["answer"]}
'''


def replies(*texts: str) -> Callable[[Call], str]:
    """A responder that answers with ``texts`` in order, then repeats the last."""
    counter = itertools.count()
    return lambda call: texts[min(next(counter), len(texts) - 1)]


def test_json_format_reasks_on_malformed_reply_scripted_llm() -> None:
    good = '```json\n{"reasoning": "3 + 4", "answer": "7"}\n```'
    with ScriptedLLM(replies("The answer is 7, I think.", good)) as server:
        evaluation = evaluate(JSON_ASK, [sample()], [executor(server)])
        calls = [e.call for e in server.calls]
    (result,) = evaluation.results
    assert result.error is None and result.score == 1.0
    assert len(calls) == 2 and all(c.json_mode for c in calls)
    assert "JSON" in calls[0].messages[0]["content"] and "'reasoning', 'answer'" in calls[0].messages[0]["content"]
    # The re-ask shows the executor its unusable reply and names the keys again.
    assert calls[1].messages[-2] == {"role": "assistant", "content": "The answer is 7, I think."}
    assert calls[1].messages[-1]["role"] == "user" and "'reasoning', 'answer'" in calls[1].messages[-1]["content"]


def test_json_format_gives_up_after_the_retries_scripted_llm() -> None:
    with ScriptedLLM(replies('{"reasoning": "no answer key"}')) as server:
        evaluation = evaluate(JSON_ASK, [sample()], [executor(server)], json_retries=2)
        calls = server.calls
    (result,) = evaluation.results
    # The first reply and json_retries=2 re-asks; at temperature 0 the second re-ask repeats the first exactly,
    # so the gateway's cache answers it without a provider call.
    assert result.llm_calls == 3 and len(calls) == 2
    assert result.score == 0.0 and result.error is not None
    assert "JSONFormatError" in result.error and "after 3 tries" in result.error and "answer" in result.error


TESTS = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0")
REPAIR = '''
def workflow(agent, task):
    candidate = task.split("|", 1)[1]
    return {"answer": agent.test_on_public_test(task, candidate, "add", test_loop=2)}
'''


def repair_responder(call: Call) -> str:
    prompt = call.messages[-1]["content"]
    code = "def add(a, b):\n    return 0" if "HOPELESS" in prompt else "def add(a, b):\n    return a + b"
    return json.dumps({"reflection": "subtracts instead of adding", "code": f"```python\n{code}\n```"})


def test_public_tests_run_and_failures_are_repaired_by_the_executor_scripted_llm() -> None:
    samples = [sample("GOOD|def add(a, b):\n    return a + b", "x", public_tests=TESTS, entry_point="add"),
               sample("FIXABLE|def add(a, b):\n    return a - b", "x", public_tests=TESTS, entry_point="add"),
               sample("HOPELESS|def add(a, b):\n    return a * b", "x", public_tests=TESTS, entry_point="add"),
               sample("NOTESTS|def add(a, b):\n    return a", "x")]
    with ScriptedLLM(repair_responder) as server:
        evaluation = evaluate(REPAIR, samples, [executor(server)])
        calls = [e.call for e in server.calls]
    good, fixable, hopeless, no_tests = (r.answer for r in evaluation.results)
    assert all(r.error is None for r in evaluation.results), [r.error for r in evaluation.results]
    assert good == {"result": True, "solution": "def add(a, b):\n    return a + b", "feedback": "no error",
                    "count": 0}
    assert fixable["result"] is True and fixable["count"] == 1
    assert fixable["solution"] == "def add(a, b):\n    return a + b"
    assert hopeless["result"] is False and hopeless["count"] == 2
    assert "AssertionError" in hopeless["feedback"] and "assert add(1, 2) == 3" in hopeless["feedback"]
    assert no_tests["result"] is True and no_tests["count"] == 0
    # Repairs go to the executor: one for FIXABLE, test_loop=2 for HOPELESS, none for GOOD or NOTESTS.
    prompts = [c.messages[-1]["content"] for c in calls]
    assert len(calls) == 3 and all(c.model == EXECUTOR_MODEL and c.json_mode for c in calls)
    assert sum("FIXABLE" in p for p in prompts) == 1 and sum("HOPELESS" in p for p in prompts) == 2
    fix_prompt = next(p for p in prompts if "FIXABLE" in p)
    assert "return a - b" in fix_prompt and "assert add(1, 2) == 3" in fix_prompt
    assert "assert add(-1, 1) == 0" in fix_prompt  # every failing test is reported, not only the first


def test_workers_of_one_host_never_share_sample_uids() -> None:
    """Clean-up kills every process of a finished sample's uid: two workers handing out the same uids would
    kill each other's samples (plain processes share the host's uids; gVisor containers do not)."""
    async def go() -> list[Outcome]:
        spec = sandbox_spec(concurrency=2, samples_per_worker=1, sample_timeout_seconds="20")
        async with sandbox_for([NO_LLM], spec) as box:
            slow = box.run_workflow(textwrap.dedent('''
                def workflow(agent, task):
                    import os, time
                    time.sleep(2)
                    return {"answer": os.getuid()}
                '''), "slow", "task", {})
            fast = [box.run_workflow(textwrap.dedent(PID_WORKFLOW), f"fast{i}", "task", {}) for i in range(3)]
            results = await asyncio.gather(slow, *fast)
            return [Outcome(r.answer, r.error_text, r.wall_s) for r, _ in results]

    outcomes = asyncio.run(go())
    assert [o.error for o in outcomes] == [None] * 4


def test_closing_the_pool_leaves_no_worker_directory_behind() -> None:
    """Workers are killed with SIGKILL and cannot clear up; the backend removes their directories."""
    (outcome,) = run_in_pool(['''
        def workflow(agent, task):
            import os
            return {"answer": os.getcwd()}
        '''])
    assert outcome.error is None
    sample_dir = Path(outcome.answer)
    assert sample_dir.parent.name.startswith("w4s-samples-")  # the worker's directory, one per worker
    assert not sample_dir.parent.exists() and not sample_dir.parent.parent.exists()


def test_cancelling_a_worker_start_leaves_no_process_behind() -> None:
    """Cancelled while waiting for a worker's ready line (Ctrl-C during warm-up), the pool kills what it spawned
    rather than leave it to the parent-death signal."""
    before = set(descendants(os.getpid()))

    async def go() -> set[int]:
        async with sandbox_for([NO_LLM], sandbox_spec(backend="gvisor")) as box:
            warming = asyncio.create_task(box.pool.warm())
            await asyncio.sleep(0.2)  # spawned, not ready yet: a gVisor worker takes about 0.7 s to start
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming
            return set(descendants(os.getpid())) - before

    assert asyncio.run(go()) == set()
