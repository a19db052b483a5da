"""Connect over TCP to the host's 127.0.0.1:task["loopback_port"], where a listener records every connection.

Containment: the sandbox's loopback is its own (gVisor netstack / its own network namespace), so nothing listens
on that port there: ConnectionRefusedError. A connection that succeeds may have reached the host's listener.
"""
import json
import socket

EXPECT = {"outcome": "answer", "answer": r"^blocked:"}


def workflow(agent, task):
    port = int(json.loads(task)["loopback_port"])
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err}"[:2000]}
    with sock:
        peer = sock.getpeername()
        sock.sendall(b"w4s adversarial loopback probe\n")
    return {"answer": f"ESCAPED: connected to {peer}"}
