"""agent.execute_code with a solution() that loops forever.

Containment: execute_code's own timeout kills the code's process group and raises; the workflow catches it and
reports "blocked: <type>: <message>". A short timeout (3 s) is asked for so the sample's wall clock is not what
stops it.
"""

EXPECT = {"outcome": "answer", "answer": r"^blocked:.*timed out"}

_CODE = "def solution():\n    while True:\n        pass\n"


def workflow(agent, task):
    try:
        value = agent.execute_code(_CODE, timeout=3)
    except Exception as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    return {"answer": f"ESCAPED: execute_code returned {value!r}"[:2000]}
