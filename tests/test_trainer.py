"""The trainer for real on CPU: SmolLM2-135M-Instruct, three short trajectory records, a few optimizer steps.

It checks what a MetaAgentTraining relies on: the loss is finite and the weights move; the store gets a
resumable checkpoint and a final export (safetensors + tokenizer + manifest) that transformers reloads and
generates with; a second run on the same output resumes at the saved step instead of starting over, reporting
progress and the result to the status; a third finds the training done and trains nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
import yaml
from safetensors.torch import load_file

from training_jobs import train
from training_jobs.config import load_config
from training_jobs.status import TrainingStatus
from w4s.rlao.hf import materialize_model
from w4s.store import open_store

MODEL = "smollm2-135m-instruct"
SYSTEM = "You write Python workflows."
TASK = "Improve the math workflow. Score: 0.62."


def record(candidate: int, reward: float, answer: str) -> dict[str, Any]:
    action = f"Ask for steps.\n```python\ndef workflow(agent, task):\n    return agent.solve(task, '{answer}')\n```"
    return {"run_id": "run-a", "iteration": 1, "candidate": candidate,
            "state": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}],
            "action": action, "analysis": "ask for steps", "code": "def workflow(agent, task): ...",
            "self_corrections": [], "validation_score": 0.5 + 0.1 * candidate, "public_score": 0.5,
            "reward": reward, "selected": candidate == 0, "feedback": "score 0.6", "usage": {}, "cost_usd": 0.0}


class RecordingKubeAPI:
    """Stands in for KubeAPI: keeps every status patch."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        assert path.endswith("/metaagenttrainings/rwr/status"), path
        self.patches.append(patch["status"])
        return {}

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, OpenMP barriers waiting for a descheduled second thread
    made steps 5-20x slower (measured), far more than a free second core ever gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_model() -> Path:
    return materialize_model(MODEL)


def write_config(tmp_path: Path, **fields: Any) -> Path:
    """Three records (rewards 1, 0.5, 0) and a training.yaml over them; ``fields`` override the config."""
    records = tmp_path / "trajectories" / "records.jsonl"
    records.parent.mkdir()
    records.write_text("".join(json.dumps(record(i, r, role)) + "\n"
                               for i, (r, role) in enumerate([(1.0, "solver"), (0.5, "checker"), (0.0, "guesser")])))
    config = {"baseModel": MODEL, "trajectories": [{"uri": f"file://{records}"}], "algorithm": "rwr",
              "hyperparameters": {"learningRate": "1e-4", "epochs": 1, "warmupRatio": "0",
                                  "perDeviceBatchSize": 1, "gradientAccumulationSteps": 1,
                                  "maxSeqLength": 256, "seed": 0},
              **fields}
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path, saveSteps=2)


def test_train_reload_and_resume_on_cpu(tmp_path: Path, config_file: Path, base_model: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"

    # 1. Two optimizer steps through the CLI entry point.
    assert train.main(["--config", str(config_file), "--output", str(out), "--max-steps", "2",
                       "--work-dir", str(work)]) == 0
    checkpoint, final = out / "checkpoints" / "step-00000002", out / "final"
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "tokenizer.json",
                 "w4s-manifest.json"):
        assert (checkpoint / name).is_file(), name
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "w4s-manifest.json"):
        assert (final / name).is_file(), name
    assert not (final / "optimizer.pt").exists()
    assert json.loads((final / "config.json").read_text())["dtype"] == "bfloat16"  # the base model's, for serving
    manifest = json.loads((final / "w4s-manifest.json").read_text())
    assert manifest["kind"] == "final" and manifest["step"] == 2 and manifest["baseModel"] == MODEL
    assert manifest["dataset"]["examples"] == 3 and manifest["dataset"]["algorithm"] == "rwr"
    assert len(manifest["datasetSha256"]) == 64 and manifest["hyperparameters"]["learningRate"] == "1e-4"
    assert manifest["libraries"]["trl"] == "0.29.1" and manifest["w4sVersion"]

    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)

    base = load_file(base_model / "model.safetensors")
    trained = load_file(checkpoint / "model.safetensors")  # fp32 master weights
    moved = [name for name, tensor in base.items() if not torch.equal(tensor.float(), trained[name])]
    assert len(moved) > len(base) // 2
    exported = load_file(final / "model.safetensors")  # cast back to the base model's bf16, once
    assert all(t.dtype == torch.bfloat16 for t in exported.values())
    assert any(not torch.equal(base[name], exported[name]) for name in base)

    model = transformers.AutoModelForCausalLM.from_pretrained(str(final))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(final))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": TASK}], add_generation_prompt=True,
                                           return_tensors="pt")
    generated = model.generate(prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == prompt.shape[1] + 4

    # 2. A restarted run with one more step resumes at step 2 and reports to the status.
    api = RecordingKubeAPI()
    status = TrainingStatus("ns/rwr", api=api)  # type: ignore[arg-type]
    outcome = train.run(load_config(config_file, str(out)), work, max_steps=3, status=status)
    status.finish({"status": "completed", "reason": "test"})
    assert (outcome.resumed_from, outcome.step, outcome.skipped) == (2, 3, False)
    stored = {key.split("/")[1] for key in open_store(str(out)).list("checkpoints/")}
    assert stored == {"step-00000003"}  # the older one is pruned
    history = json.loads((out / "checkpoints" / "step-00000003" / "trainer_state.json").read_text())
    assert [e["step"] for e in history["log_history"] if "loss" in e] == [1, 2, 3]  # 1 and 2 from run 1
    status_now: dict[str, Any] = {}
    for patch in api.patches:
        status_now.update(patch)
    reported = [p["step"] for p in api.patches if "step" in p]
    assert reported and min(reported) == 2  # never went back to step 0 or 1
    assert status_now["step"] == 3 and status_now["totalSteps"] == 3 and status_now["progress"] == "3/3"
    assert math.isfinite(float(status_now["loss"]))
    assert float(status_now["learningRate"]) == 0.0  # the cosine schedule's end
    assert float(status_now["tokensPerSecond"]) > 0
    assert status_now["checkpointUri"] == f"{out.resolve().as_uri()}/final"
    assert status_now["result"] == {"status": "completed", "reason": "test"}

    # 3. The same training again: already finished, nothing trained.
    again = train.run(load_config(config_file, str(out)), work, max_steps=3)
    assert (again.skipped, again.step, again.resumed_from) == (True, 3, None)


def test_lora_adapters_are_merged_into_the_export(tmp_path: Path, base_model: Path) -> None:
    """LoRA, two examples a batch (dynamic padding, length grouping), one epoch of two steps."""
    config = write_config(tmp_path, lora={"rank": 8, "alpha": 16}, hyperparameters={
        "learningRate": "1e-3", "epochs": 1, "warmupRatio": "0", "perDeviceBatchSize": 2,
        "gradientAccumulationSteps": 1, "maxSeqLength": 256})
    out = tmp_path / "out"
    outcome = train.run(load_config(config, str(out)), tmp_path / "work")
    assert (outcome.step, outcome.resumed_from) == (2, None)
    checkpoint = out / "checkpoints" / "step-00000002"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    final = out / "final"
    assert not (final / "adapter_model.safetensors").exists()
    assert json.loads((final / "config.json").read_text())["dtype"] == "bfloat16"
    manifest = json.loads((final / "w4s-manifest.json").read_text())
    assert manifest["lora"]["rank"] == 8 and "q_proj" in manifest["lora"]["targetModules"]
    base, merged = load_file(base_model / "model.safetensors"), load_file(final / "model.safetensors")
    assert set(base) == set(merged)  # a plain model, no adapter keys
    assert any(not torch.equal(base[name], merged[name]) for name in base)


def test_a_permanent_failure_is_reported_as_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trajectories that are not there: exit 2 and result failed with the reason, nothing trained."""
    api = RecordingKubeAPI()
    monkeypatch.setattr(train, "TrainingStatus", lambda resource: TrainingStatus(resource, api=api))
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump({"baseModel": MODEL, "trajectoryUris": [str(tmp_path / "nowhere")],
                                      "trajectories": [{"uri": "s3://bucket/nowhere"}]}))
    assert train.main(["--config", str(config), "--output", str(tmp_path / "out"), "--status-resource", "ns/rwr",
                       "--work-dir", str(tmp_path / "work")]) == 2
    result = api.patches[-1]["result"]
    assert result["status"] == "failed" and "no trajectories at" in result["reason"], result
    assert not (tmp_path / "out" / "final").exists()
