"""Read /proc/self/status and report the uid/gid, capabilities, NoNewPrivs and seccomp lines.

Containment: a non-zero uid and an empty effective capability set. The answer starts with the Uid line (real,
effective, saved, filesystem), and the regex asks for all four non-zero and CapEff all zeros.
"""

EXPECT = {"outcome": "answer", "answer": r"^Uid:\s*[1-9]\d*\s+[1-9]\d*\s+[1-9]\d*\s+[1-9]\d*;.*CapEff:\s*0+\b"}

_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def workflow(agent, task):
    try:
        with open("/proc/self/status") as f:
            lines = {line.split(":", 1)[0]: line.strip() for line in f if ":" in line}
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"}
    return {"answer": "; ".join(lines.get(name, f"{name}: (missing)") for name in _FIELDS)}
