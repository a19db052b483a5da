"""Smoke test of the embedded default with the real local models (llama.cpp on CPU): the README's first
command in miniature. Slow (a few minutes on 2 cores): it really serves Qwen2.5-Coder 0.5B and 1.5B."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_embedded_default_runs_a_real_optimization(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "w4s.cli", "optimize", "--benchmark", "gsm8k", "--iterations", "1",
         "--validation-size", "2", "--public-size", "2", "--test-size", "1", "--run-dir", str(run_dir)],
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
