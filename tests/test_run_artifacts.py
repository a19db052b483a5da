"""A run's artifacts: the loop against an S3 store (a real SeaweedFS gateway), completed-run handling, spec
changes refused on resume, and `w4s show` (scripted LLM server for both roles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import meta_calls, run, scripted

from w4s.cli import main
from w4s.errors import SpecError
from w4s.runstore import RunStore
from w4s.store import open_store

STEPS = {(1, 0, 0): ("skill", 0.6), (2, 0, 0): ("skill", 0.45)}


def test_run_on_s3_store_and_rerun_is_a_no_op_scripted_llm(s3_endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3_endpoint.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_endpoint.create_bucket()
    uri = f"s3://{bucket}/runs/s3-run"
    with scripted(STEPS, iterations=2) as (server, spec):
        first = run(spec, uri)
        calls_after_first = len(server.calls)
        again = run(spec, uri)
        assert len(server.calls) == calls_after_first  # a complete run is not redone
    assert first.status == "complete" and again == first and first.run_id == "s3-run"
    runs = RunStore(open_store(uri))
    assert [r.validation_score for r in runs.read_records()] == [0.6, 0.45]
    keys = runs.store.list("")
    for expected in ("manifest.json", "records.jsonl", "result.json", "best_workflow.py", "test_evaluation.json",
                     "checkpoints/iter-0002.json", "workflows/iter-0001-cand-0.py",
                     "evaluations/iter-0002-cand-0.json"):
        assert expected in keys
    manifest = runs.read_manifest()
    assert manifest.status == "complete"
    assert manifest.sandbox == "gvisor"  # the default backend where runsc is installed, as bootstrap does


def test_more_iterations_extend_a_finished_run_scripted_llm(tmp_path: Path) -> None:
    with scripted(STEPS, iterations=1) as (server, spec):
        run(spec, tmp_path / "run")
        longer = spec.model_copy(update={"iterations": 2})
        server.reset()
        result = run(longer, tmp_path / "run")
        assert len(meta_calls(server)) == 1  # only iteration 2 is new
    assert result.iterations_completed == 2
    assert len((tmp_path / "run" / "records.jsonl").read_text().splitlines()) == 2


def test_resume_refuses_a_changed_spec_scripted_llm(tmp_path: Path) -> None:
    with scripted(STEPS, iterations=1) as (_server, spec):
        run(spec, tmp_path / "run")
        changed = spec.model_copy(update={"horizon": 3, "seed": 7})
        with pytest.raises(SpecError, match="horizon, seed"):
            run(changed, tmp_path / "run")


def test_show_prints_history_and_best_workflow_scripted_llm(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with scripted(STEPS, iterations=2) as (_server, spec):
        run(spec, tmp_path / "run")
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "SKILL=0.6" in out  # the best workflow (iteration 1) is printed
    assert "0.600" in out and "0.450" in out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert f"{result['test_score']:.4f}" in out


def test_show_on_an_empty_directory_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["show", str(tmp_path)]) == 2
    assert "no w4s run" in capsys.readouterr().err
