"""The W4S optimization loop: a multi-turn MDP over workflows (DESIGN.md, "paper facts").

s1 = [system; instructions + task + example workflow W0 + its feedback f0]. At each iteration the meta-agent
proposes m candidate actions (analysis + workflow code); each must pass a dry run on one validation sample,
with up to N self-corrections, or it is skipped. Survivors are scored on the private split, get case studies
from the public split, and a reward against the current window. The best candidate's action and feedback
extend the state; every ``horizon`` iterations the state resets to s1 plus the best workflow so far. All
candidates are recorded. After the loop the best workflow by validation score — never by test score — is
evaluated once on the test split, whose samples the meta-agent never sees.
"""

from __future__ import annotations

from w4s.benchmarks.base import Benchmark
from w4s.benchmarks.splits import Splits
from w4s.evaluation import Evaluation, Evaluator
from w4s.feedback import build_feedback
from w4s.llm.ledger import Ledger, RoleUsage
from w4s.metaagent.agent import MetaAgent
from w4s.metaagent.prompts import SYSTEM, initial_user_message, next_turn_message
from w4s.records import (
    CandidateRecord,
    Checkpoint,
    LoopState,
    Messages,
    RunResult,
    SkippedCandidate,
    Usage,
    WorkflowRef,
)
from w4s.reporting import Reporter
from w4s.rewards import reward, starts_window
from w4s.runstore import RunStore
from w4s.spec import OptimizationSpec


def _usage(u: RoleUsage) -> Usage:
    return Usage(calls=u.calls, input_tokens=u.input_tokens, output_tokens=u.output_tokens, cost_usd=u.cost_usd)


def usage_by_role(ledger: Ledger) -> dict[str, Usage]:
    """The ledger as it is persisted in checkpoints and results."""
    return {role: _usage(u) for role, u in sorted(ledger.by_role.items())}


class Optimizer:
    def __init__(self, *, spec: OptimizationSpec, run_id: str, benchmark: Benchmark, splits: Splits,
                 meta: MetaAgent, evaluator: Evaluator, ledger: Ledger, runs: RunStore,
                 reporter: Reporter | None = None) -> None:
        self.spec = spec
        self.run_id = run_id
        self.benchmark = benchmark
        self.splits = splits
        self.meta = meta
        self.evaluator = evaluator
        self.ledger = ledger
        self.runs = runs
        self.reporter = reporter or Reporter()

    @property
    def task_description(self) -> str:
        return self.spec.task.description or self.benchmark.task_description

    def _s1(self, w0: WorkflowRef) -> Messages:
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": initial_user_message(self.task_description, w0.code, w0.feedback)}]

    async def _score(self, code: str, iteration: int, candidate: int | None) -> tuple[Evaluation, Evaluation]:
        self.reporter.phase(iteration, candidate, "evaluating on the private split")
        private = await self.evaluator.evaluate(code, self.splits.private, self.reporter.samples)
        self.reporter.phase(iteration, candidate, "evaluating on the public split")
        public = await self.evaluator.evaluate(code, self.splits.public, self.reporter.samples)
        self.runs.write_workflow(iteration, candidate, code, {"private": private.to_json(),
                                                              "public": public.to_json()})
        self.runs.write_spend(self.ledger.snapshot())
        return private, public

    async def _initial_state(self) -> LoopState:
        code = self.benchmark.example_workflow
        private, public = await self._score(code, 0, None)
        feedback = build_feedback(private, public, self.splits.public, self.spec.splits.case_studies)
        w0 = WorkflowRef(iteration=0, candidate=None, code=code, reply=None, score=private.score, feedback=feedback)
        state = LoopState(iteration=0, messages=[], window_scores=[private.score], best=w0)
        state.messages = self._s1(w0)
        self.runs.commit_iteration(self._checkpoint(state), [])
        return state

    def _checkpoint(self, state: LoopState, skipped: list[SkippedCandidate] | None = None,
                    all_skipped: bool = False) -> Checkpoint:
        return Checkpoint(iteration=state.iteration, state=state, ledger=usage_by_role(self.ledger),
                          skipped=all_skipped,
                          skipped_candidates=skipped or [])

    def _reset(self, state: LoopState, w0: WorkflowRef) -> LoopState:
        """Trajectory truncation: s1 plus the best workflow so far and its feedback; the max resets with it."""
        messages = self._s1(w0)
        best = state.best
        if best.reply is not None:
            messages += [{"role": "assistant", "content": best.reply},
                         {"role": "user", "content": next_turn_message(best.feedback)}]
        return state.model_copy(update={"messages": messages, "window_scores": [best.score]})

    async def _candidate(self, state: LoopState, iteration: int, candidate: int) -> CandidateRecord | list[str]:
        """Propose, dry-run, score and reward one candidate; a list of errors means it was skipped."""
        dry_usage = RoleUsage()

        async def dry_run(code: str) -> str | None:
            self.reporter.phase(iteration, candidate, "dry run on one validation task")
            result = await self.evaluator.run_sample(code, self.splits.private[0])
            dry_usage.add(result.usage)
            return result.error

        self.reporter.phase(iteration, candidate, "meta-agent is writing a workflow")
        proposal = await self.meta.propose(state.messages, iteration, candidate,
                                           self.spec.self_correction_attempts, dry_run)
        self.runs.write_spend(self.ledger.snapshot())
        if proposal.action is None:
            return [c.error for c in proposal.corrections]
        action = proposal.action
        private, public = await self._score(action.code, iteration, candidate)
        executor = RoleUsage()
        for part in (dry_usage, private.usage, public.usage):
            executor.add(part)
        usage = {"meta_agent": _usage(proposal.usage), "executor": _usage(executor)}
        feedback = build_feedback(private, public, self.splits.public, self.spec.splits.case_studies,
                                  previous=state.window_scores[-1], best=max(state.window_scores))
        return CandidateRecord(
            run_id=self.run_id, iteration=iteration, candidate=candidate, state=state.messages,
            action=action.reply, analysis=action.analysis, code=action.code,
            self_corrections=proposal.corrections, validation_score=private.score, public_score=public.score,
            reward=reward(private.score, state.window_scores), selected=False, feedback=feedback, usage=usage,
            cost_usd=proposal.usage.cost_usd + executor.cost_usd)

    async def _iteration(self, state: LoopState, iteration: int, w0: WorkflowRef) -> LoopState:
        if iteration > 1 and starts_window(iteration, self.spec.horizon):
            state = self._reset(state, w0)
        records: list[CandidateRecord] = []
        skipped: list[SkippedCandidate] = []
        for j in range(self.spec.candidates_per_iteration):
            outcome = await self._candidate(state, iteration, j)
            if isinstance(outcome, CandidateRecord):
                records.append(outcome)
                self.reporter.candidate_done(outcome)
            else:
                skipped.append(SkippedCandidate(candidate=j, errors=outcome))
        if not records:
            new_state = state.model_copy(update={"iteration": iteration})
        else:
            chosen = max(records, key=lambda r: (r.validation_score, -r.candidate))
            chosen.selected = True
            best = state.best
            if chosen.validation_score > best.score:
                best = WorkflowRef(iteration=iteration, candidate=chosen.candidate, code=chosen.code,
                                   reply=chosen.action, score=chosen.validation_score, feedback=chosen.feedback)
            new_state = LoopState(
                iteration=iteration,
                messages=[*state.messages, {"role": "assistant", "content": chosen.action},
                          {"role": "user", "content": next_turn_message(chosen.feedback)}],
                window_scores=[*state.window_scores, chosen.validation_score], best=best)
        self.runs.commit_iteration(self._checkpoint(new_state, skipped, all_skipped=not records), records)
        self.reporter.iteration_done(iteration, not records, new_state.best.score, self.ledger.total_cost)
        return new_state

    async def run(self) -> RunResult:
        """Run or resume the loop, then evaluate the best workflow on the test split once."""
        latest = self.runs.latest_checkpoint()
        if latest is None:
            self.reporter.run_started(self.run_id, None)
            state = await self._initial_state()
        else:
            self.reporter.run_started(self.run_id, latest.iteration)
            self.runs.discard_after(latest.iteration)
            # Money spent after the checkpoint (on the iteration being redone) was really spent: keep counting it.
            spent = self.runs.read_spend() or {role: u.model_dump() for role, u in latest.ledger.items()}
            self.ledger.restore(spent)
            state = latest.state
        checkpoints = self.runs.checkpoints()
        first = checkpoints[0].state.best
        self.reporter.example_scored(first.score)
        for iteration in range(state.iteration + 1, self.spec.iterations + 1):
            state = await self._iteration(state, iteration, first)
        return await self._finish(state)

    async def _finish(self, state: LoopState) -> RunResult:
        best = state.best
        test_score = None
        if self.splits.test:
            self.reporter.final_evaluation(len(self.splits.test))
            test = await self.evaluator.evaluate(best.code, self.splits.test, self.reporter.samples)
            self.runs.write_test_evaluation(test.to_json())
            test_score = test.score
        skipped = [c.iteration for c in self.runs.checkpoints() if c.skipped]
        result = RunResult(
            run_id=self.run_id, status="complete", iterations_completed=state.iteration,
            skipped_iterations=skipped, best_iteration=best.iteration, best_candidate=best.candidate,
            best_validation_score=best.score, test_score=test_score, test_size=len(self.splits.test),
            cost_usd=self.ledger.total_cost,
            usage=usage_by_role(self.ledger))
        self.runs.write_result(result, best.code)
        self.reporter.run_finished(result)
        return result
