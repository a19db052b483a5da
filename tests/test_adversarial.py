"""The adversarial suite (tests/adversarial/): each workflow tries one escape from the gVisor sandbox.

Every workflow runs next to all the others (and the benign controls) in one warm gVisor pool, as it would in an
evaluation, then again one by one through ``w4s sandbox exec``. For each: the outcome matches the file's EXPECT,
no output carries the canary secret, and afterwards the host is untouched: the file the suite may not create does
not exist, the listeners on the host's loopback and on a test host in a network namespace of the test's own saw
no connection, and no process of the suite outlives it. The executor is the scripted OpenAI-compatible server
(a stand-in for a remote provider).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import meta_calls, run, sandbox_for, scripted
from scripted_llm import ScriptedLLM
from servers import stop_process, wait_until

from w4s.runstore import RunStore
from w4s.sandbox import gvisor
from w4s.spec import ExecutorSpec, SandboxSpec
from w4s.store import open_store
from w4s.workflow.confine import descendants

SUITE = Path(__file__).parent / "adversarial"
CANARY = "sk-canary-7f3a9c1e5b2d4068"
FREE = {"inputPerMtok": "0", "outputPerMtok": "0"}
# 768 MB per sample: the slow memory bomb must reach its limit well inside the 10 s wall clock even on a
# loaded 2-core machine (at 2 GB it sometimes timed out first under load, which hides the mechanism tested).
SANDBOX = {"backend": "gvisor", "sample_timeout_seconds": "10", "execute_code_timeout_seconds": "3",
           "max_llm_calls_per_sample": 16, "worker_memory_mb": 768}

# Records each connection or datagram it gets, one line per event, to the file named in argv[1].
LISTENER = r"""
import socket, sys, threading
log, port = sys.argv[1], int(sys.argv[2])
def note(what):
    with open(log, "a") as f:
        f.write(what + "\n")
tcp = socket.create_server(("0.0.0.0", port))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
threading.Thread(target=lambda: [note("udp %r" % (udp.recvfrom(4096),)) for _ in iter(int, 1)], daemon=True).start()
while True:
    conn, peer = tcp.accept()
    note("tcp %r" % (peer,))
    conn.close()
"""


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    expect: dict[str, str]


def load_suite() -> list[Attack]:
    attacks = []
    for path in sorted(SUITE.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"adversarial_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # defines functions and EXPECT only; the workflow itself never runs here
        attacks.append(Attack(path.stem, path.read_text(), module.EXPECT))
    return attacks


ATTACKS = load_suite()


@dataclass
class Host:
    """What the attacks aim at, and how to tell whether anything reached it."""

    task: dict[str, Any]
    loopback_log: list[str]
    netns_log: Path
    write_path: Path

    def untouched(self) -> list[str]:
        problems = []
        if self.write_path.exists():
            problems.append(f"{self.write_path} was created")
        if self.loopback_log:
            problems.append(f"the loopback listener was reached: {self.loopback_log}")
        if self.netns_log.exists() and self.netns_log.read_text().strip():
            problems.append(f"the network-namespace host was reached: {self.netns_log.read_text()}")
        return problems


@contextlib.contextmanager
def loopback_listener(log: list[str]) -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, peer = server.accept()
                log.append(repr(peer))
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def netns_host(log: Path) -> Iterator[str]:
    """A test host in a network namespace this test creates, reachable from the host over a veth pair."""
    tag = os.getpid() % 10000
    ns, outer, inner = f"w4s-adv-{tag}", f"w4sh{tag}", f"w4sn{tag}"
    net = f"10.213.{tag % 250}"
    port = 9090
    _ip("netns", "add", ns)
    listener = None
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("addr", "add", f"{net}.1/24", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{net}.2/24", "dev", inner)
        _ip("netns", "exec", ns, "ip", "link", "set", inner, "up")
        listener = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, str(log), str(port)])

        def reachable() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((f"{net}.2", port), timeout=1):
                return True
            return False

        wait_until(reachable, timeout_s=20, what="the network-namespace test host")
        wait_until(lambda: log.exists() and "tcp" in log.read_text(), timeout_s=5, what="the listener's log")
        log.write_text("")  # the host itself can reach it (checked above); from now on nothing may
        yield f"{net}.2:{port}"
    finally:
        if listener is not None:
            stop_process(listener, grace_s=2)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", outer)
        _ip("netns", "del", ns)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("hostile")
    canary_file = root / "credentials"
    canary_file.write_text(f"aws_secret_access_key = {CANARY}\n")
    canary_file.chmod(0o644)
    loopback_log: list[str] = []
    with loopback_listener(loopback_log) as port, netns_host(root / "netns.log") as netns:
        task = {"canary": CANARY, "canary_file": str(canary_file), "host_write_path": str(root / "written"),
                "loopback_port": port, "netns_host": netns,
                "gateway_socket": f"{gvisor.SOCKET_DIR}/gateway.sock"}
        yield Host(task, loopback_log, root / "netns.log", root / "written")


@pytest.fixture
def canary_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret sits in the runner's environment, where a provider key would be."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("W4S_CANARY", CANARY)


def verdict(attack: Attack, outcome: dict[str, Any]) -> str | None:
    """Why the outcome breaks containment or the EXPECT, or None."""
    text = json.dumps(outcome, default=str)
    if CANARY in text:
        return f"the canary leaked: {text[:300]}"
    kind, pattern = attack.expect["outcome"], attack.expect[attack.expect["outcome"]]
    if kind == "error":
        if outcome["ok"] or not re.search(pattern, str(outcome["error"]), re.IGNORECASE):
            return f"expected an error matching {pattern!r}, got {text[:400]}"
    elif not outcome["ok"] or not re.search(pattern, str(outcome["answer"]), re.IGNORECASE):
        return f"expected an answer matching {pattern!r}, got {text[:400]}"
    return None


def own_strays(before: set[int]) -> list[str]:
    """Processes below this test process that were not there before, other than the scripted server's."""
    found = []
    for pid in set(descendants(os.getpid())) - before:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ")[:120]
            found.append(f"{pid}: {command!r}")
    return found


def executor_spec(server: ScriptedLLM) -> ExecutorSpec:
    return ExecutorSpec(name="default", provider="openai-compatible", model="scripted", base_url=server.base_url,
                        price=FREE, max_retries=0)


def test_adversarial_suite_is_large_and_covers_every_escape_named() -> None:
    names = {a.name for a in ATTACKS}
    assert len([n for n in names if not n.startswith("benign_")]) >= 25
    for required in ("env_keys", "proc_all_environ", "canary_file", "loopback_tcp", "netns_tcp", "host_write",
                     "fork_bomb", "memory_bomb", "infinite_loop", "execute_code_loop", "huge_print", "kill_parent",
                     "ptrace_parent", "budget_exhaust", "daemon"):
        assert required in names


def test_every_escape_is_contained_next_to_benign_samples_in_one_gvisor_pool_scripted_llm(
        host: Host, canary_env: None) -> None:
    before = set(descendants(os.getpid()))
    task = json.dumps(host.task)

    async def go() -> dict[str, dict[str, Any]]:
        spec = SandboxSpec(concurrency=12, samples_per_worker=6, **SANDBOX)
        async with sandbox_for([executor_spec(server)], spec) as box:
            assert box.description == "gvisor"
            results = await asyncio.gather(*(box.run_workflow(a.code, a.name, task, {}) for a in ATTACKS))
            return {a.name: {"ok": r.ok, "answer": r.answer, "error": r.error_text}
                    for a, (r, _) in zip(ATTACKS, results, strict=True)}

    with ScriptedLLM(lambda call: "a scripted reply") as server:
        before |= set(descendants(os.getpid()))
        outcomes = asyncio.run(go())
        strays = own_strays(before)
    failures = {a.name: why for a in ATTACKS if (why := verdict(a, outcomes[a.name]))}
    assert failures == {}, json.dumps(failures, indent=1)
    assert host.untouched() == []
    assert strays == []


def test_every_escape_is_contained_through_w4s_sandbox_exec_in_gvisor_scripted_llm(
        host: Host, canary_env: None, tmp_path: Path) -> None:
    with ScriptedLLM(lambda call: "a scripted reply") as server:
        config = tmp_path / "spec.json"  # JSON is YAML
        config.write_text(json.dumps({"executors": [executor_spec(server).model_dump(by_alias=True,
                                                                                      exclude_none=True)],
                                      "sandbox": SandboxSpec(**SANDBOX).model_dump(by_alias=True)}))
        before = set(descendants(os.getpid()))

        def exec_one(attack: Attack) -> dict[str, Any]:
            path = tmp_path / f"{attack.name}.py"
            path.write_text(attack.code)
            done = subprocess.run([sys.executable, "-m", "w4s.cli", "sandbox", "exec", "--config", str(config),
                                   "--workflow", str(path), "--task", json.dumps(host.task)],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode in (0, 1), done.stderr[-2000:]
            return json.loads(done.stdout.strip().splitlines()[-1])

        with ThreadPoolExecutor(2) as pool:
            outcomes = dict(zip((a.name for a in ATTACKS), pool.map(exec_one, ATTACKS), strict=True))
        strays = own_strays(before)
    assert {o["sandbox"] for o in outcomes.values()} == {"gvisor"}
    failures = {a.name: why for a in ATTACKS if (why := verdict(a, outcomes[a.name]))}
    assert failures == {}, json.dumps(failures, indent=1)
    assert host.untouched() == []
    assert strays == []


# Attacks that need no task parameters, so the loop can hand them GSM8K questions: the first five fail their
# dry run (the meta-agent is asked to correct them), the last three run on every validation task.
IN_THE_LOOP = ("infinite_loop", "slow_memory_bomb", "huge_print", "huge_answer", "budget_exhaust", "fork_bomb",
               "kill_all", "daemon")


def test_the_optimization_goes_on_through_every_escape_attempt_scripted_llm(
        canary_env: None, tmp_path: Path) -> None:
    """A meta-agent that writes one attack per iteration: each is contained and every iteration completes. An
    attack the sandbox stops fails its dry run and its error reaches the meta-agent in the self-correction
    prompt; one that returns an answer runs on every validation task and scores 0."""
    attacks = {a.name: a for a in ATTACKS}
    chosen = [attacks[name] for name in IN_THE_LOOP]
    steps = {(i + 1, 0, 0): ("code", a.code) for i, a in enumerate(chosen)}
    before = set(descendants(os.getpid()))
    with scripted(steps, iterations=len(chosen), sandbox={
            "backend": "gvisor", "concurrency": 4, "sampleTimeoutSeconds": "3", "workerMemoryMb": 512,
            "maxLlmCallsPerSample": 16}) as (server, spec):
        before |= set(descendants(os.getpid()))
        result = run(spec, tmp_path / "run")
        metas = meta_calls(server)
        strays = own_strays(before)
    assert result.status == "complete" and result.iterations_completed == len(chosen)
    assert result.skipped_iterations == []
    records = RunStore(open_store(str(tmp_path / "run"))).read_records()
    assert [r.iteration for r in records] == list(range(1, len(chosen) + 1))
    for attack, record in zip(chosen, records, strict=True):
        pattern = attack.expect[attack.expect["outcome"]]
        if attack.expect["outcome"] == "error":
            # Stopped in its dry run; the meta-agent read why and wrote another workflow.
            (correction,) = record.self_corrections
            assert re.search(pattern, correction.error, re.IGNORECASE), (attack.name, correction.error)
            assert any(correction.error in m.messages[-1]["content"] for m in metas), attack.name
        else:
            # Ran on every validation task, scored 0, and the loop went on.
            assert record.self_corrections == [] and record.code.strip() == attack.code.strip()
            assert record.validation_score == 0.0
    assert all(CANARY not in json.dumps(m.messages) for m in metas)
    assert strays == []
