"""Deterministic meta-agent and executor behaviour for loop tests, served by the scripted server.

The meta-agent's replies are chosen by the seed w4s derives for each call, ``derive_seed(seed, "meta",
iteration, candidate, attempt)``, so a test states a plan per (iteration, candidate, attempt) and checks what the
loop does with it. Each planned workflow carries a SKILL value in its executor instructions; the executor
answers a private-split task correctly iff the task's index in the private split is below SKILL x size, so a
workflow's validation score is exactly SKILL (for sizes that make it a whole number of tasks).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field

from scripted_llm import Call

from w4s.benchmarks.splits import Splits
from w4s.seeds import derive_seed

META_MODEL = "scripted-meta"
EXECUTOR_MODEL = "scripted-executor"
DEFAULT_SKILL = 0.5  # the example workflow W0 carries no SKILL marker

GOOD = '''## Analysis
Plan {tag}: ask the executor with a sharper instruction.

## Workflow
```python
def workflow(agent, task: str) -> dict:
    # {tag}
    reply = agent.call_json_format_llm(
        messages=[{{"role": "user", "content": task}}], temperature=0.0, num_of_response=1,
        agent_role="math solver", return_dict_keys=["reasoning", "answer"], instructions="SKILL={skill}")[0]
    return {{"answer": reply["answer"]}}
```
'''

SYNTAX_ERROR = '''## Analysis
Broken on purpose ({tag}).
```python
def workflow(agent, task: str) -> dict:
    return {{"answer": (1 + }}
```
'''

RUNTIME_ERROR = '''## Analysis
Crashes on purpose ({tag}).
```python
def workflow(agent, task: str) -> dict:
    values = []
    return {{"answer": values[3]}}
```
'''

NO_CODE = "I would improve the workflow by thinking harder, but here is no code ({tag})."


@dataclass
class Plan:
    """What the meta-agent replies: ``("skill", 0.6)``, ``("syntax",)``, ``("crash",)``, ``("nocode",)`` or
    ``("code", source)`` (that workflow verbatim) per (iteration, candidate, attempt); unplanned calls get a
    workflow with DEFAULT_SKILL."""

    seed: int
    steps: dict[tuple[int, int, int], tuple] = field(default_factory=dict)

    def reply(self, call: Call) -> str:
        key = self.keys.get(call.seed)
        step = self.steps.get(key, ("skill", DEFAULT_SKILL)) if key else ("skill", DEFAULT_SKILL)
        tag = f"MARK-{key[0]}-{key[1]}-{key[2]}" if key else "MARK-unplanned"
        if step[0] == "skill":
            return GOOD.format(tag=tag, skill=step[1])
        if step[0] == "code":
            return (f"## Analysis\nA workflow of the test's choosing ({tag}).\n\n"
                    f"## Workflow\n```python\n{step[1]}\n```\n")
        template = {"syntax": SYNTAX_ERROR, "crash": RUNTIME_ERROR, "nocode": NO_CODE}[step[0]]
        return template.format(tag=tag)

    @functools.cached_property
    def keys(self) -> dict[int, tuple[int, int, int]]:
        """Seed -> (iteration, candidate, attempt), for the plan's range of calls."""
        return {derive_seed(self.seed, "meta", i, j, a): (i, j, a)
                for i in range(0, 30) for j in range(8) for a in range(6)}


class Policy:
    """The responder: meta-agent calls go to the plan, executor calls are answered by SKILL."""

    def __init__(self, splits: Splits, answers: dict[str, str], plan: Plan) -> None:
        self.private_index = {s.question: i for i, s in enumerate(splits.private)}
        self.private_size = len(splits.private)
        self.answers = answers
        self.plan = plan

    def __call__(self, call: Call) -> str:
        if call.model == META_MODEL:
            return self.plan.reply(call)
        return self.executor(call)

    def executor(self, call: Call) -> str:
        system = " ".join(m["content"] for m in call.messages if m["role"] == "system")
        found = re.search(r"SKILL=([0-9.]+)", system)
        skill = float(found.group(1)) if found else DEFAULT_SKILL
        question = [m["content"] for m in call.messages if m["role"] == "user"][-1]
        gold = self.answers.get(question, "0")
        if question in self.private_index:
            correct = self.private_index[question] < round(skill * self.private_size)
        else:
            correct = int(hashlib.sha256(question.encode()).hexdigest(), 16) % 100 < skill * 100
        answer = gold if correct else str(float(gold) + 1)
        return json.dumps({"reasoning": "scripted", "answer": answer})
