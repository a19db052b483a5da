"""The optimization spec: YAML numbers, validation errors that name the field, manifests, and the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from w4s.cli import main
from w4s.errors import SpecError
from w4s.spec import load_spec_file, parse_spec


def flat(text: str) -> str:
    """The CLI's console may wrap long lines; compare with whitespace runs collapsed."""
    return " ".join(text.split())


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="test.yaml")
    return str(info.value)


def test_yaml_floats_become_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "spec.yaml", "metaAgent:\n  temperature: 0.7\n  topP: 1\n"
                                         "budget:\n  maxCostUsd: 0.00001\n"
                                         "executors:\n  - model: gpt-4o-mini\n    provider: openai\n"
                                         "    price: {inputPerMtok: 0.15, outputPerMtok: 2}\n")
    spec = parse_spec(load_spec_file(path))
    assert spec.meta_agent.temperature == "0.7" and spec.meta_agent.temperature_value == 0.7
    assert spec.meta_agent.top_p == "1"
    # PyYAML reads 0.00001 as the float 1e-05: it must not become the string "1e-05", which fails the pattern.
    assert spec.budget.max_cost_usd == "0.00001" and spec.budget.max_cost == pytest.approx(1e-5)
    assert spec.executors[0].price is not None
    assert (spec.executors[0].price.input_per_mtok, spec.executors[0].price.output_per_mtok) == ("0.15", "2")
    wire = spec.model_dump(mode="json", by_alias=True)
    assert wire["metaAgent"]["temperature"] == "0.7" and wire["budget"]["maxCostUsd"] == "0.00001"


def test_snake_and_camel_case_are_both_accepted() -> None:
    a = parse_spec({"metaAgent": {"temperature": "0.2"}, "splits": {"validationSize": 5}})
    b = parse_spec({"meta_agent": {"temperature": "0.2"}, "splits": {"validation_size": 5}})
    assert a == b and a.splits.validation_size == 5


@pytest.mark.parametrize(("data", "path"), [
    ({"metaAgent": {"temperature": "hot"}}, "metaAgent.temperature"),
    ({"metaAgent": {"temperature": -0.5}}, "metaAgent.temperature"),
    ({"metaAgent": {"temprature": 0.5}}, "metaAgent.temprature"),
    ({"splits": {"validationSize": 0}}, "splits.validationSize"),
    ({"splits": {"validation_size": -3}}, "splits.validation_size"),  # named as the user spelled it
    ({"iterations": -1}, "iterations"),
    ({"sandbox": {"sampleTimeoutSeconds": "10s"}}, "sandbox.sampleTimeoutSeconds"),
    ({"executors": [{"model": "m", "maxRetries": -1}]}, "executors.0.maxRetries"),
    ({"budget": {"maxCostUSD": 1}}, "budget.maxCostUSD"),
])
def test_invalid_fields_are_named_by_path(data: dict[str, Any], path: str) -> None:
    message = spec_error(data)
    assert "test.yaml" in message
    assert f"  {path}:" in message, message


def test_only_the_offending_fields_are_listed() -> None:
    message = spec_error({"iterations": 0, "splits": {"publicSize": -1}, "seed": 3})
    lines = message.splitlines()[1:]
    assert sorted(line.split(":")[0].strip() for line in lines) == ["iterations", "splits.publicSize"]


def test_candidates_only_in_collect_mode() -> None:
    assert "candidates must be 1 in mode 'optimize'" in spec_error({"candidates": 3})
    assert parse_spec({"candidates": 3, "mode": "collect"}).candidates_per_iteration == 3
    assert parse_spec({"candidates": 1}).candidates_per_iteration == 1
    assert parse_spec({"mode": "collect"}).candidates_per_iteration == 5


def test_duplicate_executor_names_rejected() -> None:
    message = spec_error({"executors": [{"name": "strong", "model": "a"}, {"name": "strong", "model": "b"}]})
    assert "executors" in message and "unique" in message and "strong" in message
    spec = parse_spec({"executors": [{"name": "strong", "model": "a"}, {"name": "cheap", "model": "b"}]})
    assert [e.name for e in spec.executors] == ["strong", "cheap"]


def test_openai_compatible_needs_base_url() -> None:
    message = spec_error({"executors": [{"provider": "openai-compatible", "model": "qwen"}]})
    assert "executors.0" in message and "baseUrl" in message
    message = spec_error({"metaAgent": {"provider": "openai-compatible", "model": "qwen"}})
    assert "metaAgent" in message and "baseUrl" in message
    spec = parse_spec({"executors": [{"provider": "openai-compatible", "model": "q", "baseUrl": "http://h/v1"}]})
    assert spec.executors[0].base_url == "http://h/v1"


def test_workflow_optimization_manifest_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "wfo.yaml", """\
apiVersion: w4s.io/v1alpha1
kind: WorkflowOptimization
metadata:
  name: gsm8k-demo
  namespace: research
spec:
  iterations: 3
  mode: collect
  candidates: 2
  metaAgent:
    temperature: 0.25
""")
    data = load_spec_file(path)
    assert "apiVersion" not in data and "metadata" not in data
    spec = parse_spec(data, source=str(path))
    assert (spec.iterations, spec.mode, spec.candidates, spec.meta_agent.temperature) == (3, "collect", 2, "0.25")


def test_empty_file_is_the_default_spec(tmp_path: Path) -> None:
    assert parse_spec(load_spec_file(write(tmp_path / "empty.yaml", ""))) == parse_spec({})


@pytest.mark.parametrize(("text", "needle"), [
    ("- iterations: 3\n- mode: collect\n", "mapping"),
    ("just a string\n", "mapping"),
    ("iterations: [1, 2\nmode: collect\n", "not valid YAML"),
    ("metaAgent:\n  temperature: 0.5\n   model: x\n", "not valid YAML"),
])
def test_bad_yaml_files_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "broken-config.yaml", text)
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml"):
        load_spec_file(tmp_path / "nope.yaml")


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_invalid_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "bad.yaml", "metaAgent:\n  temperature: warm\n")
    code = main(["optimize", "--config", str(bad), "--run-dir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 2
    assert "metaAgent.temperature" in flat(captured.err)
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "run").exists()  # nothing was started


def test_cli_invalid_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "bad.yaml", "iterations: [1,\n")
    assert main(["optimize", "--config", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    err = flat(capsys.readouterr().err)
    assert "not valid YAML" in err and "bad.yaml" in err


def test_cli_bad_executor_flag_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["optimize", "--executor", "nonsense", "--run-dir", str(tmp_path / "run")])
    err = flat(capsys.readouterr().err)
    assert code == 2
    assert "--executor" in err and "PROVIDER:MODEL" in err and "nonsense" in err
    assert not (tmp_path / "run").exists()


def test_cli_flag_overrides_are_validated_like_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.yaml", "iterations: 2\n")
    code = main(["optimize", "--config", str(good), "--mode", "optimize", "--candidates", "4",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert "candidates must be 1" in flat(capsys.readouterr().err)
