"""Smoke test of the embedded default with the real local models (llama.cpp on CPU): the README's first
command in miniature. Slow (a few minutes on 2 cores): it really serves Qwen2.5-Coder 0.5B and 1.5B."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from w4s.workflow.confine import descendants


@pytest.mark.slow
def test_embedded_default_runs_a_real_optimization(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "w4s.cli", "optimize", "--benchmark", "gsm8k", "--iterations", "1",
         "--validation-size", "4", "--public-size", "2", "--test-size", "1", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "serving embedded model qwen2.5-coder-0.5b-instruct" in proc.stdout
    assert "serving embedded model qwen2.5-coder-1.5b-instruct" in proc.stdout

    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["iterations_completed"] == 1 and result["test_size"] == 1
    usage = result["usage"]
    assert usage["meta_agent"]["calls"] >= 1 and usage["meta_agent"]["output_tokens"] > 20
    assert usage["executor"]["calls"] >= 5 and usage["executor"]["output_tokens"] > 0
    assert result["cost_usd"] == 0.0  # local models are free, and priced explicitly as such

    # W0 really ran on the real executor: every private task got an answer or a real error, and was scored.
    w0 = json.loads((run_dir / "evaluations" / "iter-0000-example.json").read_text())
    assert len(w0["private"]["results"]) == 2 and len(w0["public"]["results"]) == 2
    assert all(r["answer"] is not None or r["error"] for r in w0["private"]["results"])

    # Iteration 1 is accounted for: a trajectory record, or a skip with the errors that caused it.
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    checkpoint = json.loads((run_dir / "checkpoints" / "iter-0001.json").read_text())
    if records:
        (record,) = records
        assert record["selected"] and "def workflow" in record["code"] and 0.0 <= record["validation_score"] <= 1
        assert record["state"][1]["content"].count("# Example workflow") == 1
    else:
        assert checkpoint["skipped"] and checkpoint["skipped_candidates"][0]["errors"]
    assert "def workflow" in (run_dir / "best_workflow.py").read_text()


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_killed_runner_leaves_no_model_server(tmp_path: Path, runner_tmp: Path) -> None:
    """SIGKILL gives the runner no chance to clean up: the servers' parent-death signal must end them."""
    smol = "embedded:smollm2-135m-instruct"
    victim = subprocess.Popen(
        [sys.executable, "-m", "w4s.cli", "optimize", "--meta-agent", smol, "--executor", smol, "--iterations", "1",
         "--validation-size", "2", "--run-dir", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "OPENAI_API_KEY": "sk-test-must-not-leak", "TMPDIR": str(runner_tmp)})
    try:
        deadline = time.monotonic() + 300
        servers: list[int] = []
        while not servers and time.monotonic() < deadline:
            servers = [p for p in descendants(victim.pid) if "llama_cpp.server" in _cmdline(p)]
            time.sleep(0.2)
        assert servers, "the runner never started a model server"
        # The model server does not inherit the runner's provider keys.
        assert b"sk-test-must-not-leak" not in Path(f"/proc/{servers[0]}/environ").read_bytes()
        # Wait until the run is evaluating (the server answered its warm-up), then kill the runner outright.
        while not (tmp_path / "run" / "manifest.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        gone_by = time.monotonic() + 30
        while any(_cmdline(p) for p in servers) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not [p for p in servers if "llama_cpp.server" in _cmdline(p)]
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
