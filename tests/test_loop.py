"""The optimization loop end to end against a scripted OpenAI-compatible server (a stand-in for remote LLM
APIs): rewards, truncation, best-of-m, self-correction, skipping, budget, and split hygiene."""

from __future__ import annotations

import json
from pathlib import Path

from harness import executor_calls, meta_calls, run, scripted, splits_of
from policies import EXECUTOR_MODEL

from w4s.runstore import RunStore
from w4s.store import open_store


def records(run_dir: Path):
    return RunStore(open_store(str(run_dir))).read_records()


def test_rewards_and_truncation_through_the_loop_scripted_llm(tmp_path: Path) -> None:
    steps = {(1, 0, 0): ("skill", 0.4), (2, 0, 0): ("skill", 0.6), (3, 0, 0): ("skill", 0.55),
             (4, 0, 0): ("skill", 0.7)}
    with scripted(steps, iterations=4) as (server, spec):
        result = run(spec, tmp_path / "run")
        metas = meta_calls(server)
    recs = records(tmp_path / "run")
    assert [r.validation_score for r in recs] == [0.4, 0.6, 0.55, 0.7]
    # Same hand computation as test_rewards: W0 scores 0.5 (DEFAULT_SKILL).
    assert [r.reward for r in recs] == [0.0, 1.0, 0.0, 1.0]
    assert result.status == "complete" and result.best_iteration == 4 and result.best_validation_score == 0.7
    # Iteration 2 continues the window: its state holds iteration 1's action and feedback.
    assert "MARK-1-0-0" in recs[1].state[-2]["content"]
    # Iteration 3 starts a new window: s1 + the best so far (iteration 2), and nothing of iteration 1.
    state3 = "\n".join(m["content"] for m in recs[2].state)
    assert len(recs[2].state) == 4 and "MARK-2-0-0" in recs[2].state[2]["content"]
    assert "MARK-1-0-0" not in state3
    # The meta-agent saw exactly those states.
    assert [c.messages for c in metas] == [r.state for r in recs]


def test_reset_to_w0_when_nothing_beat_it(tmp_path: Path) -> None:
    steps = {(1, 0, 0): ("skill", 0.3), (2, 0, 0): ("skill", 0.4), (3, 0, 0): ("skill", 0.5)}
    with scripted(steps, iterations=3) as (_server, spec):
        run(spec, tmp_path / "run")
    recs = records(tmp_path / "run")
    assert [r.reward for r in recs] == [0.0, 0.5, 0.0]
    assert len(recs[2].state) == 2  # s1 only: W0 is still the best workflow


def test_best_of_m_records_all_and_selects_best_scripted_llm(tmp_path: Path) -> None:
    steps = {(1, 0, 0): ("skill", 0.3), (1, 1, 0): ("skill", 0.7), (1, 2, 0): ("skill", 0.7),
             (2, 0, 0): ("skill", 0.8), (2, 1, 0): ("skill", 0.2), (2, 2, 0): ("skill", 0.6)}
    with scripted(steps, iterations=2, mode="collect", candidates=3) as (_server, spec):
        run(spec, tmp_path / "run")
    recs = records(tmp_path / "run")
    assert [(r.iteration, r.candidate) for r in recs] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert [r.selected for r in recs] == [False, True, False, True, False, False]  # a tie keeps the first
    # Candidates of one iteration share the state; the selected action forms the next state.
    assert recs[0].state == recs[1].state == recs[2].state
    assert recs[3].state[-2] == {"role": "assistant", "content": recs[1].action}
    assert [r.reward for r in recs] == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    workflows = sorted(p.name for p in (tmp_path / "run" / "workflows").iterdir())
    assert len(workflows) == 7 and workflows[0] == "iter-0000-example.py"


def test_self_correction_then_skip_scripted_llm(tmp_path: Path) -> None:
    steps = {(1, 0, 0): ("syntax",), (1, 0, 1): ("crash",), (1, 0, 2): ("skill", 0.6),
             **{(2, 0, a): ("nocode",) for a in range(4)},
             (3, 0, 0): ("skill", 0.7)}
    with scripted(steps, iterations=3) as (server, spec):
        result = run(spec, tmp_path / "run")
        metas = meta_calls(server)
    recs = records(tmp_path / "run")
    assert [r.iteration for r in recs] == [1, 3]  # iteration 2 is skipped, not a trajectory
    assert [c.attempt for c in recs[0].self_corrections] == [0, 1]
    assert "SyntaxError" in recs[0].self_corrections[0].error
    assert "IndexError" in recs[0].self_corrections[1].error
    # The error text went back to the meta-agent in the self-correction prompt.
    assert "IndexError" in metas[2].messages[-1]["content"]
    assert recs[0].state == metas[0].messages  # the recorded state excludes the correction turns
    assert len(metas) == 3 + 4 + 1  # 3 attempts, 1 + 3 corrections (all failing), 1
    assert result.skipped_iterations == [2]
    checkpoint = json.loads((tmp_path / "run" / "checkpoints" / "iter-0002.json").read_text())
    assert checkpoint["skipped"] and len(checkpoint["skipped_candidates"][0]["errors"]) == 4
    # A skipped iteration leaves the state as it was: iteration 3 sees iteration 1's action last.
    assert "MARK-1-0-2" in recs[1].state[-2]["content"]


def test_test_split_never_reaches_the_meta_agent_scripted_llm(tmp_path: Path) -> None:
    steps = {(1, 0, 0): ("skill", 0.2), (2, 0, 0): ("skill", 0.9)}
    with scripted(steps, iterations=2) as (server, spec):
        run(spec, tmp_path / "run")
        exchanges = server.calls
    splits = splits_of(spec)
    meta_text = "\n".join(m["content"] for e in exchanges if e.call.model != EXECUTOR_MODEL
                          for m in e.call.messages)
    assert not [s.id for s in splits.test if s.question in meta_text]
    assert not [s.id for s in splits.private if s.question in meta_text]  # private only contributes a score
    assert any(s.question in meta_text for s in splits.public)  # case studies come from the public split
    # Test tasks are executed only after the last meta-agent call, and only with the best workflow.
    last_meta = max(i for i, e in enumerate(exchanges) if e.call.model != EXECUTOR_MODEL)
    test_questions = {s.question for s in splits.test}
    test_idx = [i for i, e in enumerate(exchanges) if e.call.model == EXECUTOR_MODEL
                and e.call.messages[-1]["content"] in test_questions]
    assert len(test_idx) == len(splits.test) and min(test_idx) > last_meta
    assert all("SKILL=0.9" in exchanges[i].call.messages[0]["content"] for i in test_idx)
    on_disk = "".join(p.read_text() for p in (tmp_path / "run").rglob("records*.jsonl"))
    assert not [s.id for s in splits.test if json.dumps(s.question)[1:-1] in on_disk]


def test_best_is_chosen_by_validation_not_test_scripted_llm(tmp_path: Path) -> None:
    # Test-split answers follow a hash rule, so a lower-validation workflow could test better; the run must
    # still report the validation-best workflow's test score.
    steps = {(1, 0, 0): ("skill", 0.9), (2, 0, 0): ("skill", 0.8)}
    with scripted(steps, iterations=2) as (_server, spec):
        result = run(spec, tmp_path / "run")
    assert (result.best_iteration, result.best_validation_score) == (1, 0.9)
    assert "SKILL=0.9" in (tmp_path / "run" / "best_workflow.py").read_text()


def test_budget_stops_cleanly_scripted_llm(tmp_path: Path) -> None:
    # Price 1000 $/M input tokens: each executor call costs a few cents; the budget covers about W0.
    with scripted({}, iterations=5, budget={"maxCostUsd": "1.5"}, executor_price="1000") as (server, spec):
        result = run(spec, tmp_path / "run")
        calls = executor_calls(server)
    assert result.status == "stopped" and "budget exhausted" in (result.reason or "")
    per_call = max(len(" ".join(m["content"] for m in c.messages).split()) for c in calls) * 1000 / 1e6 + 0.1
    # Overshoot is bounded by the calls in flight when the limit was crossed (concurrency 4).
    assert 1.5 <= result.cost_usd <= 1.5 + 4 * per_call
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and "budget" in manifest["reason"]
    assert not (tmp_path / "run" / "result.json").exists()
