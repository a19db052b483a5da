"""RLAO end to end on CPU: collect, build the dataset, train RWR, serve the checkpoint as the meta-agent.

Every step is the real command a user (or the operator's Job) runs, in its own process:
`w4s collect` -> `w4s rlao build` -> `accelerate launch ... -m training_jobs.train` -> `w4s optimize
--meta-agent-checkpoint`. The executor is the embedded local model (llama.cpp, SmolLM2-135M) throughout. During
collection the meta-agent is a scripted OpenAI-compatible server: a 135M model almost never writes a workflow that
survives self-correction, and an empty collection would test nothing. The model trained is SmolLM2-135M itself,
and the trained checkpoint is what writes the last run's workflow.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scripted_llm import Call, ScriptedLLM

from w4s.records import CandidateRecord

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
EXECUTOR = {"name": "default", "provider": "embedded", "model": MODEL, "maxTokens": 96}
SPLITS = {"validationSize": 3, "publicSize": 1, "testSize": 0}

# Workflows of different quality, so the candidates of an iteration get different scores and rewards.
WORKFLOWS = [
    '''def workflow(agent, task: str) -> dict:
    text = agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.0, num_of_response=1,
                          agent_role="solver", instructions="Answer with the final number only.")[0]
    return {"answer": agent.extract_answer_str(text)}''',
    '''def workflow(agent, task: str) -> dict:
    return {"answer": "0"}''',
    '''def workflow(agent, task: str) -> dict:
    text = agent.call_llm(messages=[{"role": "user", "content": task + " Think step by step."}], temperature=0.0,
                          num_of_response=1, agent_role="solver", instructions="End with the answer.")[0]
    return {"answer": agent.extract_answer_str(text)}''',
]


def _meta_agent(counter: itertools.count) -> object:
    def reply(call: Call) -> str:
        code = WORKFLOWS[next(counter) % len(WORKFLOWS)]
        return f"## Analysis\nTry another way to ask the executor.\n\n## Workflow\n```python\n{code}\n```\n"
    return reply


def _run(argv: list[str], timeout: int, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env},
                          stdin=subprocess.DEVNULL, cwd=ROOT)
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_collect_build_train_and_serve_the_trained_meta_agent(tmp_path: Path, runner_tmp: Path) -> None:
    w4s = [sys.executable, "-m", "w4s.cli"]
    # 1. Collect: best-of-2 over 2 iterations (one horizon window: iteration 2's state holds iteration 1's action).
    with ScriptedLLM(_meta_agent(itertools.count())) as meta:
        collect = tmp_path / "collect.yaml"
        collect.write_text(yaml.safe_dump({
            "task": {"benchmark": "gsm8k"}, "splits": SPLITS, "executors": [EXECUTOR],
            "metaAgent": {"provider": "openai-compatible", "model": "scripted-meta-agent", "baseUrl": meta.base_url,
                          "price": {"inputPerMtok": "0", "outputPerMtok": "0"}},
            "mode": "collect", "candidates": 2, "iterations": 2, "horizon": 2, "sandbox": {"concurrency": 2}}))
        _run([*w4s, "collect", "--config", str(collect), "--run-dir", str(tmp_path / "run")], 900,
             TMPDIR=str(runner_tmp))
    records = [CandidateRecord.model_validate_json(line)
               for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 and sum(r.selected for r in records) == 2
    assert {r.iteration for r in records} == {1, 2}
    second = [r for r in records if r.iteration == 2]
    assert all(any(m["role"] == "assistant" for m in r.state) for r in second), "iteration 2 sees iteration 1"

    # 2. Build the dataset with the trained model's own chat template; keep every candidate (scores are tiny).
    dataset = tmp_path / "dataset"
    built = _run([*w4s, "rlao", "build", "--trajectories", str(tmp_path / "run"), "--out", str(dataset),
                  "--tokenizer", MODEL, "--score-floor", "none"], 600)
    summary = json.loads((dataset / "summary.json").read_text())
    assert summary["examples"] == 4 and summary["action_tokens"] > 0, built.stdout
    rows = [json.loads(line) for line in (dataset / "examples.jsonl").read_text().splitlines()]
    for row, record in zip(sorted(rows, key=lambda r: r["source"]),
                           sorted(records, key=lambda r: (r.iteration, r.candidate)), strict=True):
        assert row["weight"] == pytest.approx(math.exp(record.reward / 0.4))

    # 3. Train two RWR steps with the command the operator's Job runs (accelerate launch, single process, CPU).
    output = tmp_path / "checkpoints"
    (tmp_path / "training.yaml").write_text(yaml.safe_dump({
        "baseModel": MODEL, "trajectories": [{"uri": (tmp_path / "run").as_uri()}], "algorithm": "rwr",
        "hyperparameters": {"gradientAccumulationSteps": 1, "scoreFloor": None, "maxSeqLength": 8192},
        "output": str(output)}))
    trained = _run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                    str(ROOT / "training_jobs" / "accelerate" / "single.yaml"), "--num_processes", "1", "-m",
                    "training_jobs.train", "--config", str(tmp_path / "training.yaml"), "--max-steps", "2",
                    "--work-dir", str(tmp_path / "work")], 900, OMP_NUM_THREADS="1")
    final = output / "final"
    manifest = json.loads((final / "w4s-manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["baseModel"] == MODEL and manifest["algorithm"] == "rwr", \
        trained.stderr[-2000:]
    assert manifest["dataset"]["examples"] == 4 and manifest["datasetSha256"]
    assert any(final.glob("*.safetensors")) and (final / "tokenizer_config.json").is_file()

    # 4. The trained checkpoint is the meta-agent of a new optimization (served by llama.cpp from its GGUF).
    serve = tmp_path / "serve.yaml"
    serve.write_text(yaml.safe_dump({"task": {"benchmark": "gsm8k"}, "splits": {**SPLITS, "validationSize": 2},
                                     "executors": [EXECUTOR], "selfCorrectionAttempts": 0,
                                     "metaAgent": {"provider": "embedded", "model": "w4s-trained",
                                                   "maxTokens": 64}}))
    served = _run([*w4s, "optimize", "--config", str(serve), "--meta-agent-checkpoint", str(final),
                   "--iterations", "1", "--run-dir", str(tmp_path / "optimized")], 900, TMPDIR=str(runner_tmp))
    assert f"serving meta-agent checkpoint {final}" in served.stdout.replace("\n", " ")
    result = json.loads((tmp_path / "optimized" / "result.json").read_text())
    assert result["iterations_completed"] == 1 and result["usage"]["meta_agent"]["calls"] >= 1
