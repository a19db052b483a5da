"""Read /etc/shadow (password hashes; root-only).

Containment: PermissionError (the sample's uid is unprivileged) or FileNotFoundError.
"""

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    try:
        with open("/etc/shadow", "rb") as f:
            data = f.read(4096)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    return {"answer": f"ESCAPED: /etc/shadow: {data.decode('utf-8', 'replace')}"[:2000]}
