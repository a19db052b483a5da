"""Write a 200 MB file in the private workdir (bigger than the sandbox's file-size limit).

Containment: RLIMIT_FSIZE, with SIGXFSZ ignored in the sandbox, makes the write that crosses the limit fail with
OSError EFBIG ("File too large"); the workflow catches it and removes the file.
"""
import os

EXPECT = {"outcome": "answer", "answer": r"^blocked:.*(File too large|EFBIG)"}


def workflow(agent, task):
    path, chunk, total = "big.bin", b"\0" * 2**20, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while total < 200 * 2**20:
            total += os.write(fd, chunk)
    except OSError as err:
        return {"answer": f"blocked: {type(err).__name__}: {err} after {total} bytes"[:2000]}
    finally:
        os.close(fd)
        os.unlink(path)
    return {"answer": f"ESCAPED: wrote {total} bytes"}
