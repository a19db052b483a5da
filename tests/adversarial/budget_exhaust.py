"""Exhaust the LLM budget: call agent.call_llm with max_tokens=4096 forever, uncaught.

Containment: the gateway refuses calls past the per-sample limit (or the run's dollar budget) and the refusal
(LLMCallError) ends the sample with an error naming the limit.
"""

EXPECT = {"outcome": "error", "error": r"LLM calls|budget|limit"}


def workflow(agent, task):
    messages = [{"role": "user", "content": "Write the longest essay you can about the number 7."}]
    while True:
        agent.call_llm(messages, max_tokens=4096)
