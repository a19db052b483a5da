"""Kill-and-resume: a run killed (SIGKILL) during iteration 3 of 5 and restarted with the same command produces
the same records as an uninterrupted run, without repeating a committed iteration (scripted LLM server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from harness import meta_calls, scripted
from policies import Plan

STEPS = {(1, 0, 0): ("skill", 0.4), (2, 0, 0): ("skill", 0.6), (3, 0, 0): ("skill", 0.35),
         (4, 0, 0): ("skill", 0.65), (5, 0, 0): ("skill", 0.8)}


def optimize(config: Path, run_dir: Path, tmp: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "w4s.cli", "optimize", "--config", str(config),
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True, env={**os.environ, "TMPDIR": str(tmp)})


def processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def test_kill_during_iteration_3_and_resume_scripted_llm(tmp_path: Path, runner_tmp: Path) -> None:
    # The runner's temporary files (gateway socket, gVisor bundles) go to a directory of the test's: a runner
    # killed with SIGKILL cannot remove them.
    with scripted(STEPS, iterations=5) as (server, spec):
        config = tmp_path / "spec.yaml"
        config.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude={"store"})))

        reference = optimize(config, tmp_path / "a" / "run", runner_tmp)
        out, _ = reference.communicate(timeout=300)
        assert reference.returncode == 0, out

        # Hang the 6th executor call of iteration 3's workflow (mid-evaluation), then kill the whole process.
        seen, reached = [0], threading.Event()

        def third_iteration(call) -> bool:
            if "SKILL=0.35" not in call.messages[0]["content"]:
                return False
            seen[0] += 1
            if seen[0] == 6:
                reached.set()
                return True
            return False

        server.hang_next(1, seconds=20, match=third_iteration)
        killed_dir = tmp_path / "b" / "run"
        victim = optimize(config, killed_dir, runner_tmp)
        assert reached.wait(timeout=300), "the run never reached iteration 3"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        # The gVisor workers run in sessions of their own, out of reach of that group kill: their parent-death
        # signal must end them (runsc and the sandbox and gofer processes all name the runner's TMPDIR).
        deadline = time.monotonic() + 15
        while processes_mentioning(str(runner_tmp)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(str(runner_tmp)) == []
        checkpoints = sorted(p.name for p in (killed_dir / "checkpoints").iterdir())
        assert checkpoints == ["iter-0000.json", "iter-0001.json", "iter-0002.json"]

        server.reset()
        resumed = optimize(config, killed_dir, runner_tmp)
        out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out
        assert "resuming after iteration 2" in out
        keys = Plan(seed=spec.seed).keys
        redone = sorted({keys[c.seed][0] for c in meta_calls(server)})
        assert redone == [3, 4, 5]  # committed iterations are not asked for again

    def read(run: Path, name: str) -> str:
        return (run / name).read_text()

    a, b = tmp_path / "a" / "run", killed_dir
    assert read(a, "records.jsonl") == read(b, "records.jsonl")
    assert len(read(b, "records.jsonl").splitlines()) == 5
    assert read(a, "best_workflow.py") == read(b, "best_workflow.py")
    ta, tb = json.loads(read(a, "test_evaluation.json")), json.loads(read(b, "test_evaluation.json"))
    for t in (ta, tb):
        for r in t["results"]:
            r.pop("seconds")  # wall-clock time is the only thing allowed to differ
    assert ta == tb
    ra, rb = json.loads(read(a, "result.json")), json.loads(read(b, "result.json"))
    assert ra["test_score"] == rb["test_score"] and ra["best_iteration"] == rb["best_iteration"] == 5
    # The killed attempt at iteration 3 cost real money; the resumed run's ledger still counts it.
    assert rb["cost_usd"] > ra["cost_usd"]
    assert sorted(os.listdir(a / "workflows")) == sorted(os.listdir(b / "workflows"))
