"""Prompts of the meta-agent, in the spirit of the paper's appendix: the workflow interface, the helper API,
guidelines, the task, the history with feedback, and the output format.

The helper-API text documents exactly what ``w4s.workflow.helper_api.Agent`` implements.
"""

from __future__ import annotations

SYSTEM = (
    "You are an expert in designing LLM workflows: Python programs that solve a task by calling a strong "
    "executor LLM through a small helper API. You study a workflow's code together with its validation score "
    "and its failure cases, find out why it fails, and write an improved workflow. You reason before you code, "
    "explore new ideas rather than repeating old ones, and never overfit to individual examples."
)

HELPER_API = '''```python
def workflow(agent, task: str) -> dict:
    ...  # must return {"answer": <final answer>}
```
`task` is the problem text. Available on `agent`:
- `agent.call_json_format_llm(messages, temperature, num_of_response, agent_role, return_dict_keys, instructions)`
  -> list[dict]: asks the executor for `num_of_response` JSON replies, each with exactly the keys in
  `return_dict_keys` (malformed replies are re-asked a few times, then it raises ValueError).
- `agent.call_llm(messages, temperature, num_of_response, agent_role, instructions)` -> list[str]: free-text replies.
- `agent.execute_code(code)` -> value: runs Python code that defines `solution()` in an isolated process with a
  time and memory limit and returns what `solution()` returns; raises on errors or timeouts.
- `agent.extract_answer_str(text)` -> str: the last `\\boxed{...}`, else the last number, else the last sentence.
- `agent.extract_code_block(text, entry_point="solution")` -> str: the fenced code block that defines entry_point.
- `agent.test_on_public_test(task, solution_code, entry_point, test_loop=3)` -> dict with keys result, solution,
  feedback, count: runs the task's public tests (coding tasks) and repairs the code up to test_loop times.
`messages` is a list of {"role": "user" | "assistant", "content": str}; do not put a system message in it: the
helper builds it from `agent_role` and `instructions`. Use `num_of_response` > 1 for self-consistency.'''

GUIDELINES = """- Analyse first: why did the current workflow fail on the case studies? Which step is weak?
- Improve the workflow as a whole; useful techniques include step-by-step reasoning, self-consistency (sample
  several answers and vote), self-refinement and verification, debate between roles, decomposition into
  sub-problems, and writing code that computes the answer with `agent.execute_code`.
- Keep it general: do not hard-code answers or special-case the examples you see.
- The workflow must be plain, runnable Python: imports inside the code block, no `input()`, no file or network
  access. Handle the executor's occasional bad output (e.g. a non-numeric answer) so one sample cannot crash it.
- Keep the number of executor calls per task reasonable: every call costs money and time."""

OUTPUT_FORMAT = """Reply in exactly this format:
## Analysis
<what the feedback shows and what you will change, briefly>

## Workflow
```python
def workflow(agent, task: str) -> dict:
    ...
    return {"answer": answer}
```"""


def initial_user_message(task_description: str, example_code: str, example_feedback: str) -> str:
    """The user part of s1 = [instructions; task description; example workflow W0; its feedback f0]."""
    return f"""# Workflow interface and helper API
{HELPER_API}

# Guidelines
{GUIDELINES}

# Task
{task_description}

# Example workflow
```python
{example_code.rstrip()}
```

# Feedback on the example workflow
{example_feedback}

# Your job
Write a better workflow for this task.

{OUTPUT_FORMAT}"""


def next_turn_message(feedback: str) -> str:
    """The observation after an action: its feedback, then the request for the next improvement."""
    return f"""{feedback}

Improve the workflow further to increase the validation score.

{OUTPUT_FORMAT}"""


def self_correction_message(error: str) -> str:
    return f"""Your workflow failed before evaluation:
{error}

Fix the root cause (do not just wrap everything in try/except to hide it) and reply with the complete corrected
workflow in the same format.

{OUTPUT_FORMAT}"""
