"""Turn a meta-agent reply into (analysis, code), tolerating the ways small models get the format wrong.

Accepted, in order: the last ```python block that defines ``workflow``; the last fenced block of any language
that defines it; an unfenced ``def workflow(`` running to the end of the reply. The code is then parsed with
``ast`` so a syntax error is caught (and sent back for self-correction) before any process starts.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_DEF = re.compile(r"^def\s+workflow\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class Action:
    """One meta-agent action: the full reply (what RLAO trains on) and what was parsed from it."""

    reply: str
    analysis: str
    code: str


class ActionParseError(ValueError):
    """The reply holds no usable workflow; the message is fed back for self-correction."""


def _find_code(reply: str) -> tuple[str, int]:
    blocks = [(m.group(1).lower(), m.group(2), m.start()) for m in _FENCE.finditer(reply)]
    for want_python in (True, False):
        for lang, body, start in reversed(blocks):
            if (lang in ("python", "py", "python3")) == want_python and _DEF.search(body):
                return body, start
    bare = _DEF.search(reply)
    if bare:
        return reply[bare.start():], bare.start()
    raise ActionParseError("no code block defining `def workflow(agent, task)` was found in the reply")


def check_workflow_code(code: str) -> None:
    """Syntax-check the code and require a top-level ``workflow`` taking two arguments."""
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise ActionParseError(f"SyntaxError at line {err.lineno}: {err.msg}: {(err.text or '').strip()}") \
            from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "workflow":
            if len(node.args.args) < 2:
                raise ActionParseError("workflow must take two arguments: workflow(agent, task)")
            return
    raise ActionParseError("the code has no top-level function `workflow(agent, task)`")


def parse_action(reply: str) -> Action:
    text = reply.replace("\r\n", "\n")  # CRLF replies would otherwise leave "\r" inside the workflow code
    code, start = _find_code(text)
    code = code.strip("\n").rstrip() + "\n"
    check_workflow_code(code)
    analysis = re.sub(r"^#+\s*(analysis|workflow)\s*:?\s*$", "", text[:start], flags=re.IGNORECASE | re.MULTILINE)
    return Action(reply=reply, analysis=analysis.strip(), code=code)
