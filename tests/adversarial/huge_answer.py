"""Return a 100 MB answer string.

Containment: the supervisor reads the length-prefixed result only up to its output limit and reports the sample
as failed with an error about the output being too large, instead of buffering or storing 100 MB.
"""

EXPECT = {"outcome": "error", "error": r"output|too large"}


def workflow(agent, task):
    return {"answer": "x" * (100 * 2**20)}
