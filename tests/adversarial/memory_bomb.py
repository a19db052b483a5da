"""Memory bomb: bytearray(64 * 2**30), one 64 GiB allocation.

Containment: RLIMIT_AS makes the allocation fail at once with MemoryError, which the workflow catches.
"""

EXPECT = {"outcome": "answer", "answer": r"^blocked: MemoryError"}


def workflow(agent, task):
    try:
        data = bytearray(64 * 2**30)
    except MemoryError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"}
    return {"answer": f"ESCAPED: allocated {len(data)} bytes"}
