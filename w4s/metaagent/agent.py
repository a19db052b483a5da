"""The meta-agent's policy call, and the proposal of one action with dry run and self-correction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from w4s.llm.client import LLMClient
from w4s.llm.ledger import RoleUsage
from w4s.llm.providers import ChatRequest
from w4s.metaagent.parsing import Action, ActionParseError, parse_action
from w4s.metaagent.prompts import self_correction_message
from w4s.records import Messages, SelfCorrection
from w4s.seeds import derive_seed
from w4s.spec import MetaAgentSpec

DryRun = Callable[[str], Awaitable[str | None]]


@dataclass
class Proposal:
    """The outcome of proposing one candidate: an action that survived the dry run, or None (skipped)."""

    action: Action | None
    corrections: list[SelfCorrection] = field(default_factory=list)
    usage: RoleUsage = field(default_factory=RoleUsage)


class MetaAgent:
    def __init__(self, client: LLMClient, spec: MetaAgentSpec, seed: int) -> None:
        self.client = client
        self.spec = spec
        self.seed = seed

    async def reply(self, messages: Messages, *seed_parts: object) -> tuple[str, RoleUsage]:
        request = ChatRequest(messages=messages, temperature=self.spec.temperature_value, top_p=self.spec.top_p_value,
                              max_tokens=self.spec.max_tokens, seed=derive_seed(self.seed, "meta", *seed_parts))
        texts, usage = await self.client.chat(request)
        return texts[0], usage

    async def propose(self, state: Messages, iteration: int, candidate: int, attempts: int,
                      dry_run: DryRun) -> Proposal:
        """Sample an action; on a parse error or a failing dry run, send the error back up to ``attempts`` times.

        The self-correction turns extend a private copy of the state: the recorded state stays s_t.
        """
        proposal = Proposal(action=None)
        messages = list(state)
        for attempt in range(attempts + 1):
            reply, usage = await self.reply(messages, iteration, candidate, attempt)
            proposal.usage.add(usage)
            try:
                action = parse_action(reply)
                error = await dry_run(action.code)
            except ActionParseError as err:
                error = str(err)
            if error is None:
                proposal.action = action
                return proposal
            proposal.corrections.append(SelfCorrection(attempt=attempt, reply=reply, error=error))
            messages = [*messages, {"role": "assistant", "content": reply},
                        {"role": "user", "content": self_correction_message(error)}]
        return proposal
