"""Prices: the table, snapshot names, spec overrides, and the rule that an unknown model is an error before any
call is made (checked end to end against the scripted server, a stand-in for remote LLM APIs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from harness import run, scripted, wire_spec
from policies import EXECUTOR_MODEL
from scripted_llm import ScriptedLLM, echo

from w4s.cli import main
from w4s.errors import UnknownPriceError
from w4s.llm.pricing import PRICE_TABLE, ModelPrice, normalize_model, resolve_price
from w4s.spec import EndpointSpec, ExecutorSpec, MetaAgentSpec


def test_known_model() -> None:
    price = resolve_price(EndpointSpec(provider="openai", model="gpt-4o"))
    assert price == ModelPrice(2.50, 10.00)
    assert price.cost(1_000_000, 0) == pytest.approx(2.5)
    assert price.cost(2_000, 500) == pytest.approx((2_000 * 2.5 + 500 * 10.0) / 1e6)


@pytest.mark.parametrize(("model", "base"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("openai/GPT-4o-mini", "gpt-4o-mini"),
])
def test_snapshot_and_prefix_names_resolve_to_the_base_price(model: str, base: str) -> None:
    provider = "anthropic" if "claude" in model else "openai"
    assert normalize_model(model) == base
    assert resolve_price(EndpointSpec(provider=provider, model=model)) == PRICE_TABLE[base]


def test_mini_is_not_billed_as_its_big_sibling() -> None:
    mini = resolve_price(EndpointSpec(provider="openai", model="gpt-4o-mini"))
    big = resolve_price(EndpointSpec(provider="openai", model="gpt-4o"))
    assert mini == PRICE_TABLE["gpt-4o-mini"] and mini != big
    assert mini.input_per_mtok < big.input_per_mtok
    # A name that merely starts with a known one is unknown, not priced by prefix.
    with pytest.raises(UnknownPriceError):
        resolve_price(EndpointSpec(provider="openai", model="gpt-4o-mini-search-preview"))


def test_unknown_model_is_an_error_that_says_how_to_fix_it() -> None:
    with pytest.raises(UnknownPriceError) as info:
        resolve_price(ExecutorSpec(provider="openai-compatible", model="my-finetune-7b", base_url="http://h/v1"))
    message = str(info.value)
    assert "my-finetune-7b" in message
    assert "price.inputPerMtok" in message and "price.outputPerMtok" in message


def test_spec_price_overrides_the_table() -> None:
    endpoint = EndpointSpec(provider="openai", model="gpt-4o",
                            price={"inputPerMtok": "0.5", "outputPerMtok": "1.25"})
    assert resolve_price(endpoint) == ModelPrice(0.5, 1.25)
    unknown = EndpointSpec(provider="openai-compatible", model="self-hosted", base_url="http://h/v1",
                           price={"inputPerMtok": 0, "outputPerMtok": 0})
    assert resolve_price(unknown) == ModelPrice(0.0, 0.0)


def test_embedded_models_are_free() -> None:
    assert resolve_price(MetaAgentSpec()) == ModelPrice(0.0, 0.0)
    assert resolve_price(ExecutorSpec(provider="embedded", model="some-gguf")) == ModelPrice(0.0, 0.0)


# -- end to end ----------------------------------------------------------------------------------------------


def test_unknown_executor_price_fails_before_any_call_scripted_llm(tmp_path: Path) -> None:
    with scripted({}, iterations=1) as (server, spec):
        executor = spec.executors[0].model_copy(update={"price": None})
        spec = spec.model_copy(update={"executors": [executor]})
        with pytest.raises(UnknownPriceError, match=EXECUTOR_MODEL):
            run(spec, tmp_path / "run")
        assert server.calls == []
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_cli_exits_2_for_unknown_price_scripted_llm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedLLM(echo) as server:
        wire = wire_spec(server.base_url, tmp_path / "run", iterations=1)
        del wire["executors"][0]["price"]
        config = tmp_path / "spec.yaml"
        config.write_text(yaml.safe_dump(wire), encoding="utf-8")
        code = main(["optimize", "--config", str(config), "--run-dir", str(tmp_path / "run")])
        assert server.calls == []
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert EXECUTOR_MODEL in err and "price.inputPerMtok" in err
