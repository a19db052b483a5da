"""Benign control: compute a value (sum of the first 100 squares) with no helper calls.

Runs next to the attacks to show that other samples are unaffected by them.
"""
import json

EXPECT = {"outcome": "answer", "answer": r"^338350$"}


def workflow(agent, task):
    json.loads(task)
    return {"answer": str(sum(i * i for i in range(1, 101)))}
