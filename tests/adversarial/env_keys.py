"""Read provider keys and the canary from os.environ.

The runner holds OPENAI_API_KEY and W4S_CANARY (both the canary); the sample's environment must hold neither, nor
any other provider credential. Reading the environment never fails, so the answer is "clean:" with what was seen,
or "ESCAPED:" with the secret.
"""
import json
import os
import re

EXPECT = {"outcome": "answer", "answer": r"^clean:"}

_SECRET_NAME = re.compile(r"(API_KEY|SECRET|PASSWORD|AWS_|CANARY|HF_TOKEN|GITHUB_TOKEN)", re.I)


def workflow(agent, task):
    canary = json.loads(task)["canary"]
    env = dict(os.environ)
    leaked = {k: v for k, v in env.items() if canary in v or _SECRET_NAME.search(k)}
    if leaked:
        return {"answer": f"ESCAPED: {leaked!r}"[:2000]}
    return {"answer": f"clean: {env!r}"[:2000]}
