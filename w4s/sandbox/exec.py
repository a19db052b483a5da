"""``w4s sandbox exec``: one workflow on one task in the configured sandbox, for operators auditing isolation.

The same path as an evaluation (endpoints, gateway, pool, limits), minus the benchmark: what this prints is what
a run would have recorded for that sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from w4s.endpoints import Endpoints
from w4s.llm.ledger import Ledger
from w4s.sandbox.backends import backend_name
from w4s.sandbox.session import Sandbox
from w4s.spec import OptimizationSpec


async def exec_workflow(spec: OptimizationSpec, code: str, task: str,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """``{"ok", "answer", "error", "wall_s", "sandbox", "llm_calls", "cost_usd"}`` for ``code`` on ``task``."""
    backend_name(spec.sandbox)
    ledger = Ledger(spec.budget.max_cost)
    async with Endpoints(spec, ledger, log, meta_agent=False) as endpoints, \
            Sandbox(spec.sandbox, endpoints.executors, spec.seed, log) as sandbox:
        result, ticket = await sandbox.run_workflow(code, "exec", task, {})
        return {"ok": result.ok, "answer": result.answer, "error": result.error_text, "wall_s": result.wall_s,
                "sandbox": sandbox.description, "llm_calls": ticket.calls, "cost_usd": ticket.usage.cost_usd}
