"""RLAO dataset building on the real meta-agent tokenizer (Qwen2.5, converted from the embedded GGUF).

What matters is the label mask: only the final action and the end-of-turn token that closes it are trained,
never the prompt, the assistant header or a history action inside the state (the reference trainer's defect),
and each example weighs exp(reward / tau). The rest covers the drops and their counts, reading trajectories
from run directories and S3, the dataset round trip, the CLI, and the GGUF conversions in ``w4s.rlao.hf``.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from servers import SeaweedFS, use_s3

from w4s.cli import main
from w4s.embedded.models import DEFAULT_META_AGENT
from w4s.errors import W4SError
from w4s.records import CandidateRecord
from w4s.rlao.dataset import (
    IGNORE_INDEX,
    TemplateMismatch,
    TrainingExample,
    build_examples,
    read_dataset,
    read_records,
    write_dataset,
)
from w4s.rlao.hf import load_tokenizer, materialize_model
from w4s.store import open_store

END_OF_TURN = "<|im_end|>"
SYSTEM = ("You are an expert in designing LLM workflows: Python programs that solve a task by calling a strong "
          "executor LLM through a small helper API.")
TASK = ("# Task\nGrade-school math word problems. The answer is a single number.\n\n# Current workflow\n```python\n"
        "def workflow(agent, task):\n    reply = agent.call_llm([{'role': 'user', 'content': task}], 0.0, 1, "
        "'solver', 'Think step by step.')[0]\n    return {'answer': agent.extract_answer_str(reply)}\n```\n\n"
        "# Feedback\nValidation score: 0.62\nFailed case: Q: Tom has 3 apples ... model answer 5, correct 7.")
PREVIOUS_ACTION = ("## Analysis\nThe solver drops units.\n\n```python\ndef workflow(agent, task):\n    replies = "
                   "agent.call_llm([{'role': 'user', 'content': task}], 0.7, 5, 'solver', 'Show the units.')\n"
                   "    answers = [agent.extract_answer_str(r) for r in replies]\n"
                   "    return {'answer': max(set(answers), key=answers.count)}\n```")
FEEDBACK = ("Validation score: 0.70 (previous best 0.62)\n"
            "Failed case: Q: A train leaves ... model answer 40, correct 45.")
ACTION = ("## Analysis\nVoting helps, but arithmetic slips remain: compute the answer with code.\n\n```python\n"
          "def workflow(agent, task):\n    reply = agent.call_llm([{'role': 'user', 'content': task}], 0.0, 1, "
          "'coder', 'Write solution() that returns the answer.')[0]\n    code = agent.extract_code_block(reply)\n"
          "    return {'answer': agent.execute_code(code)}\n```")
ONE_TURN = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
TWO_TURN = [*ONE_TURN, {"role": "assistant", "content": PREVIOUS_ACTION}, {"role": "user", "content": FEEDBACK}]


def record(state: list[dict[str, str]], *, iteration: int = 1, candidate: int = 0, action: str = ACTION,
           score: float = 0.7, reward: float = 1.0, run_id: str = "run-a") -> dict[str, Any]:
    """A candidate record as the loop writes it (validated, so read_records accepts it)."""
    return CandidateRecord(
        run_id=run_id, iteration=iteration, candidate=candidate, state=state, action=action, analysis="...",
        code="def workflow(agent, task): ...", self_corrections=[], validation_score=score, public_score=score,
        reward=reward, selected=candidate == 0, feedback="...", usage={}, cost_usd=0.0,
    ).model_dump(mode="json")


def labelled(example: TrainingExample) -> list[int]:
    return [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]


def unlabelled(example: TrainingExample) -> list[int]:
    return [t for t, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE_INDEX]


def write_run(root: Path, records: list[dict[str, Any]]) -> Path:
    """A run directory with only what `w4s rlao build` reads: records.jsonl."""
    open_store(str(root)).put_text("records.jsonl", "".join(CandidateRecord(**r).model_dump_json() + "\n"
                                                            for r in records))
    return root


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(DEFAULT_META_AGENT)


@pytest.fixture(scope="module")
def pair(tokenizer: Any) -> list[TrainingExample]:
    """The two shapes of real states: s1 alone, and s1 + a previous action + its feedback."""
    examples, _ = build_examples([record(ONE_TURN), record(TWO_TURN, iteration=2, reward=0.5)], tokenizer)
    return examples


# ---- the label mask ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [0, 1], ids=["one-turn-state", "two-turn-state"])
def test_only_the_final_action_and_its_end_of_turn_are_labelled(tokenizer: Any, pair: list[TrainingExample],
                                                                index: int) -> None:
    example, state = pair[index], (ONE_TURN, TWO_TURN)[index]
    full = tokenizer.apply_chat_template([*state, {"role": "assistant", "content": ACTION}], tokenize=True)
    assert example.input_ids == list(full)
    span = [i for i, label in enumerate(example.labels) if label != IGNORE_INDEX]
    assert span == list(range(span[0], span[-1] + 1)), "the labelled tokens are one contiguous span"
    assert all(example.labels[i] == example.input_ids[i] for i in span)
    assert tokenizer.decode(labelled(example)) == ACTION + END_OF_TURN
    # Before the span: the whole prompt, ending with the assistant header; after it: ChatML's newline only.
    assert example.input_ids[:span[0]] == list(tokenizer.apply_chat_template(state, add_generation_prompt=True))
    assert tokenizer.decode(example.input_ids[:span[0]]).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(example.input_ids[span[-1] + 1:]) == "\n"


def test_history_action_inside_the_state_is_not_trained(tokenizer: Any, pair: list[TrainingExample]) -> None:
    example = pair[1]
    assert PREVIOUS_ACTION + END_OF_TURN in tokenizer.decode(unlabelled(example))
    assert FEEDBACK in tokenizer.decode(unlabelled(example))
    trained = tokenizer.decode(labelled(example))
    assert "Show the units" not in trained and trained.count(END_OF_TURN) == 1


def test_weights_are_exp_reward_over_tau_and_one_for_sft(tokenizer: Any) -> None:
    rewards = [0.0, 0.5, 1.0]
    records = [record(ONE_TURN, candidate=k, reward=r) for k, r in enumerate(rewards)]
    for tau in (0.4, 0.25):
        examples, _ = build_examples(records, tokenizer, tau=tau)
        assert [e.weight for e in examples] == pytest.approx([math.exp(r / tau) for r in rewards])
        assert [e.reward for e in examples] == rewards
    assert [e.weight for e in build_examples(records, tokenizer, algorithm="sft")[0]] == [1.0, 1.0, 1.0]
    assert build_examples(records, tokenizer)[0][2].weight == pytest.approx(12.182, abs=1e-3)  # paper: r=1


# ---- drops and the summary --------------------------------------------------------------------------------

def test_score_floor_drops_at_or_below_it_and_none_keeps_all(tokenizer: Any) -> None:
    records = [record(ONE_TURN, candidate=k, score=s) for k, s in enumerate([0.0, 0.05, 0.06, 0.8])]
    examples, summary = build_examples(records, tokenizer, score_floor=0.05)
    assert [e.source for e in examples] == ["run-a/iter-1/cand-2", "run-a/iter-1/cand-3"]
    assert summary.dropped_below_floor == 2
    examples, summary = build_examples(records, tokenizer, score_floor=None)
    assert len(examples) == 4 and summary.dropped_below_floor == 0


def test_too_long_examples_are_dropped_whole_and_counted(tokenizer: Any, pair: list[TrainingExample]) -> None:
    short, long = (len(e.input_ids) for e in pair)
    assert short < long
    records = [record(ONE_TURN), record(TWO_TURN, iteration=2)]
    examples, summary = build_examples(records, tokenizer, max_seq_length=short)
    assert [len(e.input_ids) for e in examples] == [short] and summary.dropped_too_long == 1
    examples, summary = build_examples(records, tokenizer, max_seq_length=long)
    assert len(examples) == 2 and summary.dropped_too_long == 0


def test_summary_counts(tokenizer: Any) -> None:
    records = [record(ONE_TURN, candidate=0, reward=1.0), record(ONE_TURN, candidate=1, reward=0.0),
               record(TWO_TURN, iteration=2, candidate=0, reward=0.5),
               record(TWO_TURN, iteration=2, candidate=1, reward=0.0),
               record(ONE_TURN, candidate=2, score=0.0, reward=0.0)]
    examples, summary = build_examples(records, tokenizer)
    assert summary.examples == len(examples) == 4
    assert summary.tokens == sum(len(e.input_ids) for e in examples)
    assert summary.action_tokens == sum(len(labelled(e)) for e in examples)
    assert summary.action_tokens == 4 * len(tokenizer(ACTION + END_OF_TURN)["input_ids"])
    assert summary.longest == max(len(e.input_ids) for e in examples)
    assert summary.reward_histogram == {"0.0": 2, "0.5": 1, "1.0": 1}
    assert (summary.dropped_below_floor, summary.dropped_too_long) == (1, 0)
    assert (summary.tokenizer, summary.tau, summary.algorithm) == (DEFAULT_META_AGENT, 0.4, "rwr")


def test_a_state_that_is_not_a_token_prefix_is_an_error_naming_the_record(tokenizer: Any) -> None:
    # Leading newlines merge with the header's "\n" into one token: no honest action span exists.
    bad = record(TWO_TURN, iteration=3, candidate=4, action="\n\n" + ACTION)
    with pytest.raises(TemplateMismatch, match=r"record run-a/iter-3/cand-4: .*token prefix"):
        build_examples([record(ONE_TURN), bad], tokenizer)


@pytest.mark.parametrize(("options", "message"), [({"algorithm": "ppo"}, "unknown RLAO algorithm"),
                                                  ({"tau": 0.0}, "tau must be positive"),
                                                  ({"max_seq_length": 0}, "max_seq_length")])
def test_bad_options(tokenizer: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(W4SError, match=message):
        build_examples([record(ONE_TURN)], tokenizer, **options)


# ---- reading trajectories, storing datasets ---------------------------------------------------------------

def test_read_records_from_run_roots_and_jsonl_files(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "run-a", [record(ONE_TURN), record(TWO_TURN, iteration=2)])
    run_b = write_run(tmp_path / "run-b", [record(ONE_TURN, run_id="run-b")])
    records = read_records([str(run_a), run_b.as_uri(), str(run_a / "records.jsonl")])
    assert [(r["run_id"], r["iteration"]) for r in records] == [("run-a", 1), ("run-a", 2), ("run-b", 1),
                                                                ("run-a", 1), ("run-a", 2)]
    assert records[1]["state"] == TWO_TURN


def test_read_records_errors_name_the_uri(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises(W4SError, match=re.escape(f"no trajectories at {missing}: no such directory")):
        read_records([str(missing)])
    assert not missing.exists(), "reading must not create the directory"
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(W4SError, match=r"no trajectory records at .*empty-run/records\.jsonl"):
        read_records([str(tmp_path / "empty-run")])
    write_run(tmp_path / "blank", [])
    with pytest.raises(W4SError, match="is empty"):
        read_records([str(tmp_path / "blank")])
    (tmp_path / "other.jsonl").write_text('{"not": "a record"}\n')
    with pytest.raises(W4SError, match=r"other\.jsonl line 1 is not a candidate record"):
        read_records([str(tmp_path / "other.jsonl")])


def test_dataset_round_trip_through_a_local_store(tmp_path: Path, tokenizer: Any) -> None:
    examples, summary = build_examples([record(ONE_TURN), record(TWO_TURN, iteration=2, reward=0.5)], tokenizer)
    write_dataset(str(tmp_path / "ds"), examples, summary)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["examples.jsonl", "summary.json"]
    assert read_dataset(str(tmp_path / "ds")) == (examples, summary)
    with pytest.raises(W4SError, match="no RLAO dataset"):
        read_dataset(str(tmp_path / "nothing"))


def test_trajectories_and_dataset_through_s3(s3_endpoint: SeaweedFS, monkeypatch: pytest.MonkeyPatch,
                                             tokenizer: Any) -> None:
    use_s3(monkeypatch, s3_endpoint)
    bucket = s3_endpoint.create_bucket()
    run = f"s3://{bucket}/runs/run-a"
    open_store(run).put_text("records.jsonl", "".join(CandidateRecord(**r).model_dump_json() + "\n" for r in
                                                      [record(ONE_TURN), record(TWO_TURN, iteration=2)]))
    records = read_records([run, f"{run}/records.jsonl"])
    assert len(records) == 4 and records[1]["state"] == TWO_TURN
    with pytest.raises(W4SError, match="no trajectory records at"):
        read_records([f"s3://{bucket}/runs/missing"])
    examples, summary = build_examples(records, tokenizer)
    write_dataset(f"s3://{bucket}/datasets/d1", examples, summary)
    assert read_dataset(f"s3://{bucket}/datasets/d1") == (examples, summary)


# ---- the CLI ----------------------------------------------------------------------------------------------

def test_cli_build_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], tokenizer: Any) -> None:
    run = write_run(tmp_path / "run", [record(ONE_TURN, reward=1.0), record(ONE_TURN, candidate=1, score=0.0),
                                       record(TWO_TURN, iteration=2, reward=0.5)])
    out = tmp_path / "dataset"
    rc = main(["rlao", "build", "--trajectories", str(run), "--out", str(out), "--tokenizer", DEFAULT_META_AGENT,
               "--tau", "0.5"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    examples, summary = read_dataset(str(out))
    assert (summary.examples, summary.dropped_below_floor, summary.tau) == (2, 1, 0.5)
    assert [e.weight for e in examples] == pytest.approx([math.exp(2.0), math.exp(1.0)])
    for text in ("RLAO dataset", "examples", "dropped: validation score <= 0.05", "rewards", "7.39",
                 f"wrote 2 examples to {out}"):
        assert text in printed

    rc = main(["rlao", "build", "--trajectories", str(tmp_path / "nowhere"), "--out", str(out),
               "--tokenizer", DEFAULT_META_AGENT])
    assert rc == 2 and "no trajectories at" in capsys.readouterr().err


def test_the_core_cli_imports_without_torch() -> None:
    code = "import sys, w4s.cli, w4s.rlao.dataset; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- GGUF conversions -------------------------------------------------------------------------------------

def test_tokenizer_keeps_the_gguf_end_of_turn_as_eos(tokenizer: Any) -> None:
    # transformers' GGUF converter says <|endoftext|>; servers stop at eos, so it must be the chat turn's end.
    assert tokenizer.eos_token == END_OF_TURN and tokenizer.name_or_path == DEFAULT_META_AGENT
    started = time.monotonic()
    load_tokenizer(DEFAULT_META_AGENT)
    assert time.monotonic() - started < 5, "a converted tokenizer is loaded from the cache"


def test_materialize_model_gives_a_dense_trainable_folder() -> None:
    import torch  # the train extra: CI installs it, and a missing one must fail here, not skip
    import transformers
    folder = materialize_model("smollm2-135m-instruct")
    assert materialize_model("smollm2-135m-instruct") == folder and materialize_model(str(folder)) == folder
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype="auto")  # the stored dtype
    assert model.dtype == torch.bfloat16
    assert getattr(model, "hf_quantizer", None) is None and not hasattr(model.config, "quantization_config")
    tok = load_tokenizer(str(folder))
    assert tok.eos_token == END_OF_TURN
    ids = torch.tensor([tok.apply_chat_template(ONE_TURN[1:], add_generation_prompt=True)[:64]])
    model(input_ids=ids, labels=ids).loss.backward()
    assert model.get_input_embeddings().weight.grad is not None
    with pytest.raises(W4SError, match="neither an embedded model"):
        materialize_model(str(folder / "missing"))
