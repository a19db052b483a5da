"""Benign control: agent.execute_code("def solution(): return 6*7") and its value as the answer.

Shows that execute_code still works (process limit, memory) while the bombs run in other samples.
"""

EXPECT = {"outcome": "answer", "answer": r"^42$"}


def workflow(agent, task):
    return {"answer": str(agent.execute_code("def solution(): return 6*7"))}
