"""`w4s benchmarks`, `w4s score`, `w4s eval` end to end (subprocesses, as a user runs them), sources and splits.

`w4s eval` runs against the scripted OpenAI-compatible server (a stand-in for a remote provider): the executor
answers with the gold answer it looks up for the task text, so the expected score follows from the data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from scripted_llm import Call, ScriptedLLM
from servers import SeaweedFS, use_s3

from w4s.benchmarks import BENCHMARKS, get_benchmark
from w4s.benchmarks.sources import load_task
from w4s.errors import SpecError
from w4s.spec import TaskSpec

OFFLINE = [name for name in BENCHMARKS if get_benchmark(name).offline_available()]


def w4s(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "w4s.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=os.environ.copy())
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_benchmarks_lists_the_eleven_and_their_sources() -> None:
    rows = {r["name"]: r for r in json.loads(w4s("benchmarks", "--json").stdout)}
    assert {"gsm8k", "gsm-hard", "svamp", "mgsm", "gsm-plus", "math", "drop", "mmlu-pro", "gpqa", "humaneval",
            "mbpp"} <= set(rows)
    assert rows["gpqa"]["offline_source"] is None and "gated" in rows["gpqa"]["hub"]
    assert (rows["gsm8k"]["validation"], rows["gsm8k"]["test"]) == (128, 800)
    assert (rows["humaneval"]["validation"], rows["humaneval"]["test"]) == (33, 131)
    assert (rows["mbpp"]["validation"], rows["mbpp"]["test"]) == (86, 341)
    # every benchmark but GPQA has an offline copy here (W4S_DATA_DIR points at the shared data)
    assert sorted(n for n, r in rows.items() if not r["offline_available"]) == ["gpqa"]


def _reformat(kind: str, answer: str) -> str:
    """The gold answer written the way a model tends to write it."""
    return {"number": f"The answer is {answer}.", "math": f"The final answer is $\\boxed{{{answer}}}$.",
            "choice": f"({answer})", "text": f"  {answer.upper()} ", "code": f"```python\n{answer}\n```"}[kind]


@pytest.mark.parametrize("name", OFFLINE)
def test_gold_answers_score_one_through_w4s_score(name: str, tmp_path: Path) -> None:
    """Export the validation split, write its gold answers as predictions, reformatted too: every one scores 1."""
    records = jsonl(w4s("benchmarks", "export", "--benchmark", name, "--split", "validation").stdout)
    assert len(records) == get_benchmark(name).sizes.validation
    kind = get_benchmark(name).answer_kind
    for label, predict in (("gold", lambda a: a), ("reformatted", lambda a: _reformat(kind, a))):
        predictions = tmp_path / f"{label}.jsonl"
        predictions.write_text("".join(json.dumps({"id": r["id"], "answer": predict(r["answer"])}) + "\n"
                                       for r in records))
        report = json.loads(w4s("score", "--benchmark", name, "--predictions", str(predictions)).stdout)
        failed = [i for i in report["per_item"] if i["score"] != 1.0]
        assert report["n"] == len(records) and report["score"] == 1.0, (label, failed[:3])


def test_wrong_answers_score_zero_with_a_reason(tmp_path: Path) -> None:
    records = jsonl(w4s("benchmarks", "export", "--benchmark", "gsm8k", "--split", "public").stdout)
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "answer": str(float(r["answer"]) + 1)}) + "\n"
                                   for r in records[:5]) + json.dumps({"id": records[5]["id"], "answer": None}))
    report = json.loads(w4s("score", "--benchmark", "gsm8k", "--predictions", str(predictions)).stdout)
    assert report["n"] == 6 and report["score"] == 0.0
    assert all(item["score"] == 0.0 and item["reason"] for item in report["per_item"])


def test_score_rejects_unknown_ids_and_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "gsm8k-0", "answer": "1"}\nnot json\n')
    proc = w4s("score", "--benchmark", "gsm8k", "--predictions", str(bad), check=False)
    assert proc.returncode == 2 and "line 2" in proc.stderr
    bad.write_text('{"id": "no-such-id", "answer": "1"}\n')
    proc = w4s("score", "--benchmark", "gsm8k", "--predictions", str(bad), check=False)
    assert proc.returncode == 2 and "no-such-id" in proc.stderr


def test_splits_identical_across_processes_and_disjoint() -> None:
    first = w4s("benchmarks", "export", "--benchmark", "mmlu-pro", "--split", "test").stdout
    again = w4s("benchmarks", "export", "--benchmark", "mmlu-pro", "--split", "test").stdout
    assert first == again and len(jsonl(first)) == 800
    ids = {part: {r["id"] for r in jsonl(w4s("benchmarks", "export", "--benchmark", "mmlu-pro", "--split",
                                             part).stdout)} for part in ("private", "public")}
    ids["test"] = {r["id"] for r in jsonl(first)}
    assert (len(ids["private"]), len(ids["public"])) == (96, 32)  # a quarter of 128 is public by default
    assert not ids["private"] & ids["public"] and not ids["private"] & ids["test"] and not ids["public"] & ids["test"]
    other_seed = jsonl(w4s("benchmarks", "export", "--benchmark", "mmlu-pro", "--split", "test", "--seed",
                           "1").stdout)
    assert {r["id"] for r in other_seed} != ids["test"]


# --- user datasets --------------------------------------------------------------------------------------------

RECORDS = [{"id": "a", "question": "What is 2 + 2?", "answer": "4"},
           {"id": "b", "question": "What is 3 * 3?", "answer": "9"}]


def test_jsonl_dataset_from_a_local_file_is_scored_by_the_named_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    task = load_task(TaskSpec(benchmark="gsm8k", dataset=str(path)))
    assert [s.id for s in task.samples] == ["a", "b"] and task.source == f"file {path}"
    assert task.benchmark.name == "gsm8k"


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "a", "question": "q"}\n', "line 1: record 1: missing field 'answer'"),
    ('{"id": "a", "question": "q", "answer": "1"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ('{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "r", "answer": "2"}\n',
     "duplicate id 'a'"),
    ("", "holds no records"),
])
def test_jsonl_dataset_errors_name_the_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SpecError, match=r"task\.dataset") as err:
        load_task(TaskSpec(benchmark="gsm8k", dataset=str(path)))
    assert message in str(err.value)


def test_jsonl_dataset_from_s3(s3_endpoint: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    use_s3(monkeypatch, s3_endpoint)
    bucket = s3_endpoint.create_bucket()
    body = "\n".join(json.dumps(r) for r in RECORDS).encode()
    s3_endpoint.client.put_object(Bucket=bucket, Key="data/mine.jsonl", Body=body)
    task = load_task(TaskSpec(benchmark="gsm8k", dataset=f"s3://{bucket}/data/mine.jsonl"))
    assert [s.answer for s in task.samples] == ["4", "9"]


def test_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="W4S_DATA_DIR"):
        load_task(TaskSpec(benchmark="mgsm", source="offline", data_dir=str(tmp_path / "nothing")))


# --- w4s eval -------------------------------------------------------------------------------------------------

def _oracle(golds: dict[str, str]) -> Any:
    """Answers every executor call with the gold answer of the task it quotes (JSON, with the usual keys)."""
    def respond(call: Call) -> str:
        text = "\n".join(m["content"] for m in call.messages)
        answer = next((a for q, a in golds.items() if q in text), "0")
        return json.dumps({"reasoning": "worked it out", "answer": answer, "thinking": "-", "feedback": "-",
                           "correct": "True", "code": "-", "choice": "-", "role": "-"})
    return respond


def test_eval_runs_a_baseline_and_a_file_with_the_scripted_executor(tmp_path: Path) -> None:
    records = jsonl(w4s("benchmarks", "export", "--benchmark", "gsm8k", "--split", "validation").stdout)[:4]
    with ScriptedLLM(_oracle({r["question"]: r["answer"] for r in records}), models=("scripted",)) as server:
        config = tmp_path / "spec.yaml"
        config.write_text(yaml.safe_dump({"executors": [{
            "provider": "openai-compatible", "model": "scripted", "baseUrl": server.base_url,
            "price": {"inputPerMtok": "1", "outputPerMtok": "1"}}]}))
        common = ("eval", "--config", str(config), "--benchmark", "gsm8k", "--limit", "4", "--json")
        report = json.loads(w4s(*common, "--workflow", "cot").stdout)
        assert (report["n"], report["score"], report["errors"]) == (4, 1.0, 0)
        assert report["cost_usd"] > 0 and report["workflow"] == "cot"
        assert [i["sample_id"] for i in report["per_item"]] == [r["id"] for r in records]

        wrong = tmp_path / "wrong.py"
        wrong.write_text("def workflow(agent, task):\n    return {'answer': 'none of these'}\n")
        report = json.loads(w4s(*common, "--workflow", str(wrong)).stdout)
        assert report["score"] == 0.0 and report["cost_usd"] == 0.0
        assert all(i["score_reason"] for i in report["per_item"])

    proc = w4s("eval", "--benchmark", "gsm8k", "--workflow", "no-such-baseline", check=False)
    assert proc.returncode == 2 and "--workflow" in proc.stderr and "cot-sc" in proc.stderr
