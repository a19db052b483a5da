"""socket.create_connection(("192.0.2.1", 80), timeout=2): TCP to a documentation address (TEST-NET-1, never routed).

On a machine with network access the SYN leaves and the connect times out; in a sandbox without network the
kernel refuses at once (ENETUNREACH). So a refusal is "blocked:", and a timeout is reported as an escape: packets
had a route out.
"""
import socket

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    try:
        sock = socket.create_connection(("192.0.2.1", 80), timeout=2)
    except TimeoutError as err:
        return {"answer": f"ESCAPED?: connect timed out, so a route out exists: {err}"}
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    sock.close()
    return {"answer": "ESCAPED: connected to 192.0.2.1:80"}
