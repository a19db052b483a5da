"""What a benchmark is to the loop: samples, a scorer, a task description and the example workflow W0."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One benchmark item. ``question`` is exactly what ``workflow(agent, task)`` receives as ``task``."""

    id: str
    question: str
    answer: str
    public_tests: tuple[str, ...] = ()
    entry_point: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def worker_context(self) -> dict[str, Any]:
        """What the helper API may know about the sample besides its text (never the answer)."""
        return {"public_tests": list(self.public_tests), "entry_point": self.entry_point}


class Benchmark(abc.ABC):
    name: str
    task_description: str
    example_workflow: str

    @abc.abstractmethod
    def load(self) -> list[Sample]:
        """All samples in a fixed, documented order (splits shuffle them with a seed)."""

    @abc.abstractmethod
    def score(self, prediction: Any, sample: Sample) -> float:
        """A score in [0, 1] for one workflow answer."""
