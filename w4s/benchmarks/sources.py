"""Where a task's samples come from: the benchmark's offline copy, the Hugging Face hub, or the user's JSONL.

The source is explicit (``task.source``) and reported with the samples, because the same benchmark loaded from
two sources can differ in size and ids, and so in its seeded split. The run's manifest records the split's
fingerprint, so a resumed run cannot silently switch sources.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w4s.benchmarks.base import Benchmark, Sample
from w4s.errors import SpecError, W4SError
from w4s.spec import TaskSpec


@dataclass(frozen=True)
class LoadedTask:
    benchmark: Benchmark
    samples: list[Sample]
    source: str  # human-readable: where the samples came from


def read_dataset_text(uri: str) -> str:
    """The text of a local file or an ``s3://bucket/key`` object."""
    if uri.startswith("s3://"):
        from w4s.store import open_store

        parent, _, key = uri.rstrip("/").rpartition("/")
        if not key or parent == "s3:/":
            raise SpecError(f"task.dataset: {uri!r} is not s3://BUCKET/KEY")
        return open_store(parent).get_text(key)
    path = Path(uri).expanduser()
    if not path.is_file():
        raise SpecError(f"task.dataset: no such file {str(path)!r}")
    return path.read_text(encoding="utf-8")


def jsonl_objects(text: str, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ``where`` prefixes errors (the field and file)."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SpecError(f"{where} line {number}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise SpecError(f"{where} line {number}: expected a JSON object")
        yield number, record


def parse_jsonl(text: str, benchmark: Benchmark, where: str) -> list[Sample]:
    """Samples from JSONL records of the documented schema; errors name the line and the field."""
    samples: list[Sample] = []
    for number, record in jsonl_objects(text, f"task.dataset: {where}"):
        try:
            samples.append(benchmark.from_record(record, len(samples)))
        except (ValueError, TypeError) as err:
            raise SpecError(f"task.dataset: {where} line {number}: {err}") from None
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise SpecError(f"task.dataset: {where}: duplicate id {duplicate!r} (ids key the seeded split)")
    if not samples:
        raise SpecError(f"task.dataset: {where} holds no records")
    return samples


def load_hub(benchmark: Benchmark) -> list[Sample]:
    """All configs of the benchmark's hub dataset, through the ``datasets`` library (the ``hub`` extra)."""
    hub = benchmark.hub
    if hub is None:
        raise SpecError(f"task.source: {benchmark.name} has no Hugging Face hub dataset")
    try:
        import datasets
    except ImportError:
        raise W4SError("loading from the Hugging Face hub needs the `datasets` package: "
                       "pip install 'w4s[hub]'") from None
    tables: dict[str | None, list[dict[str, Any]]] = {}
    for config in hub.configs:
        try:
            table = datasets.load_dataset(hub.path, config, split=hub.split)
        except Exception as err:  # the library raises many unrelated types for network and auth failures
            hint = (" (a gated dataset: accept its terms on the hub and set HF_TOKEN)" if hub.gated else "")
            raise W4SError(f"could not load {hub.path}{'/' + config if config else ''} from the hub{hint}: "
                           f"{type(err).__name__}: {err}") from None
        tables[config] = [dict(row) for row in table]
    return benchmark.from_hub(tables)


def source_kind(benchmark: Benchmark, task: TaskSpec) -> str:
    """``file``, ``offline`` or ``hub``: ``task.source`` with ``auto`` resolved for this machine."""
    if task.dataset:
        return "file"
    if task.source == "offline" or (task.source == "auto" and benchmark.offline_available()):
        return "offline"
    return "hub"


def describe_source(benchmark: Benchmark, task: TaskSpec) -> str:
    kind = source_kind(benchmark, task)
    if kind == "file":
        return f"file {task.dataset}"
    if kind == "offline":
        return f"offline: {benchmark.offline_source}"
    hub = benchmark.hub
    return f"hub: {hub.path} ({hub.split})" if hub else "hub: none"


def load_task(task: TaskSpec) -> LoadedTask:
    from w4s.benchmarks import get_benchmark

    benchmark = get_benchmark(task.benchmark, data_dir=task.data_dir)
    kind = source_kind(benchmark, task)
    if kind == "file":
        samples = parse_jsonl(read_dataset_text(str(task.dataset)), benchmark, str(task.dataset))
    elif kind == "offline":
        if not benchmark.offline_available():
            raise SpecError(f"task.source: no offline copy of {benchmark.name} here"
                            + (f" ({benchmark.offline_source}: set task.dataDir or W4S_DATA_DIR)"
                               if benchmark.offline_source else "; load it from the hub or a task.dataset file"))
        samples = benchmark.load_offline()
    else:
        samples = load_hub(benchmark)
    return LoadedTask(benchmark, samples, describe_source(benchmark, task))
