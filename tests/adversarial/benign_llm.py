"""Benign control: one agent.call_llm and its first reply as the answer.

Shows that the gateway still serves a sample's own token while attacks on it run next door.
"""

EXPECT = {"outcome": "answer", "answer": r"\S"}


def workflow(agent, task):
    replies = agent.call_llm([{"role": "user", "content": "What is 6 times 7? Answer with the number."}],
                             temperature=0.0, max_tokens=64)
    return {"answer": replies[0]}
