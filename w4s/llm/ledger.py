"""Counts tokens and dollars per role and enforces the run's spending limit.

The limit is checked before every call, so a run overshoots it by at most the calls already in flight when it
was crossed. A snapshot goes into each iteration checkpoint so a resumed run keeps counting from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from w4s.errors import BudgetExceeded


@dataclass
class RoleUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: RoleUsage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd


@dataclass
class Ledger:
    max_cost_usd: float | None = None
    by_role: dict[str, RoleUsage] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        return sum(u.cost_usd for u in self.by_role.values())

    def check(self) -> None:
        """Raise BudgetExceeded when no new call may start."""
        if self.max_cost_usd is not None and self.total_cost >= self.max_cost_usd:
            raise BudgetExceeded(
                f"budget exhausted: spent ${self.total_cost:.4f} of maxCostUsd ${self.max_cost_usd:.4f}"
            )

    def record(self, role: str, usage: RoleUsage) -> None:
        self.by_role.setdefault(role, RoleUsage()).add(usage)

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {role: asdict(u) for role, u in sorted(self.by_role.items())}

    def restore(self, snapshot: dict[str, dict[str, float]]) -> None:
        self.by_role = {role: RoleUsage(**vals) for role, vals in snapshot.items()}
