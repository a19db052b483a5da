"""Trajectory records -> training examples for the meta-agent.

One example per recorded action (selected or not): the record's state messages, then the action as the final
assistant turn, rendered with the meta-agent's chat template. Labels are -100 everywhere except the tokens of
that final action and the end-of-turn token that closes it (so the model learns to stop); history actions
inside the state are context, never trained, and the assistant header is prompt. The example's weight is
exp(reward / tau) (1 for the SFT ablation), applied to the action alone: the reference trainer trained prompt
and history tokens too, with the candidate's weight, which is exactly what this module is built to rule out.

A dataset in a store is ``examples.jsonl`` (one TrainingExample a line) plus ``summary.json``, written last so a
reader that finds the summary finds every example.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from w4s.errors import W4SError
from w4s.records import CandidateRecord
from w4s.store import Store, open_store

IGNORE_INDEX = -100  # the label that torch's cross-entropy (and transformers) skips
ALGORITHMS = ("rwr", "sft")
RECORDS_FILE = "records.jsonl"
EXAMPLES_FILE = "examples.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class TrainingExample:
    input_ids: list[int]
    labels: list[int]  # -100 outside the action
    weight: float  # exp(reward / tau); 1.0 for algorithm sft
    reward: float
    source: str  # "<run_id>/iter-<n>/cand-<k>", for the summary and debugging


@dataclass(frozen=True)
class DatasetSummary:
    examples: int
    tokens: int
    action_tokens: int
    dropped_below_floor: int
    dropped_too_long: int  # longer than max_seq_length: dropped whole (a cut state would be a different state)
    reward_histogram: dict[str, int]  # reward value (as a string) -> count
    tokenizer: str
    tau: float
    algorithm: str
    score_floor: float | None = None
    max_seq_length: int | None = None
    longest: int = 0  # tokens in the longest kept example: what max_seq_length must at least be to keep them all


class TemplateMismatch(W4SError):
    """The chat template does not render a record's state as a token prefix of state + action."""


def build_examples(records: list[dict[str, Any]], tokenizer: Any, *, tau: float = 0.4,
                   algorithm: str = "rwr", score_floor: float | None = 0.05,
                   max_seq_length: int = 8192) -> tuple[list[TrainingExample], DatasetSummary]:
    """Tokenize, mask and weigh every record (see the module docstring); return the examples and a summary.

    Records with ``validation_score <= score_floor`` are dropped (a workflow that scores nothing teaches
    nothing; ``None`` keeps them all), and so are examples longer than ``max_seq_length`` tokens: cutting one
    would train on a state the meta-agent never saw. Both drops are counted in the summary.
    """
    _check_options(tau, algorithm, max_seq_length)
    examples: list[TrainingExample] = []
    below_floor = too_long = 0
    for record in records:
        if score_floor is not None and record["validation_score"] <= score_floor:
            below_floor += 1
            continue
        example = _example(record, tokenizer, tau if algorithm == "rwr" else None)
        if len(example.input_ids) > max_seq_length:
            too_long += 1
            continue
        examples.append(example)
    summary = DatasetSummary(
        examples=len(examples),
        tokens=sum(len(e.input_ids) for e in examples),
        action_tokens=sum(_action_length(e) for e in examples),
        dropped_below_floor=below_floor,
        dropped_too_long=too_long,
        reward_histogram=reward_histogram(examples),
        tokenizer=str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
        tau=tau,
        algorithm=algorithm,
        score_floor=score_floor,
        max_seq_length=max_seq_length,
        longest=max((len(e.input_ids) for e in examples), default=0),
    )
    return examples, summary


def _check_options(tau: float, algorithm: str, max_seq_length: int) -> None:
    if algorithm not in ALGORITHMS:
        raise W4SError(f"unknown RLAO algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if not tau > 0:
        raise W4SError(f"tau must be positive (the weights are exp(reward / tau)), got {tau}")
    if max_seq_length < 1:
        raise W4SError(f"max_seq_length must be at least 1, got {max_seq_length}")


def source_of(record: dict[str, Any]) -> str:
    """The name an example carries back to its record: ``<run_id>/iter-<n>/cand-<k>``."""
    return f"{record['run_id']}/iter-{record['iteration']}/cand-{record['candidate']}"


def _example(record: dict[str, Any], tokenizer: Any, tau: float | None) -> TrainingExample:
    """One record as an example; ``tau`` None means unweighted (SFT)."""
    input_ids, start, end = action_span(record, tokenizer)
    labels = [IGNORE_INDEX] * len(input_ids)
    labels[start:end] = input_ids[start:end]
    reward = float(record["reward"])
    weight = 1.0 if tau is None else math.exp(reward / tau)
    return TrainingExample(input_ids=input_ids, labels=labels, weight=weight, reward=reward,
                           source=source_of(record))


def action_span(record: dict[str, Any], tokenizer: Any) -> tuple[list[int], int, int]:
    """Token ids of state + action, and the [start, end) span of the action and its end-of-turn token.

    The span is found by tokenizing the state with the generation prompt (everything up to and including the
    assistant header) and the whole conversation: the first must be a token prefix of the second, else the
    template renders the history differently when an answer follows, or the action's first characters merge
    with the header into one token, and no span would be honest. Whitespace the template adds after the
    end-of-turn token (ChatML's ``\\n``) is left out: the model stops at the end-of-turn token and never
    generates it.
    """
    state = record["state"]
    prompt = _render(tokenizer, state, add_generation_prompt=True)
    full = _render(tokenizer, [*state, {"role": "assistant", "content": record["action"]}],
                   add_generation_prompt=False)
    if full[:len(prompt)] != prompt:
        raise TemplateMismatch(
            f"record {source_of(record)}: the chat template of {getattr(tokenizer, 'name_or_path', tokenizer)!r} "
            f"does not render the state as a token prefix of state + action (first difference at token "
            f"{_first_difference(prompt, full)} of {len(prompt)}), so the action's tokens cannot be told apart; "
            f"this happens when the action starts with characters that merge with the assistant header (e.g. "
            f"leading newlines) or when the template rewrites earlier turns once an answer follows")
    end = len(full)
    while end > len(prompt) and not tokenizer.decode(full[end - 1:end]).strip():
        end -= 1
    if end == len(prompt):
        raise TemplateMismatch(f"record {source_of(record)}: the action renders to no tokens but whitespace")
    return full, len(prompt), end


def _render(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(ids)


def _first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _action_length(example: TrainingExample) -> int:
    return sum(label != IGNORE_INDEX for label in example.labels)


def reward_histogram(examples: list[TrainingExample]) -> dict[str, int]:
    """How many kept examples have each reward (0, 0.5, 1 with the paper's reward), in reward order."""
    counts = Counter(e.reward for e in examples)
    return {str(reward): counts[reward] for reward in sorted(counts)}


# ---- reading trajectories ---------------------------------------------------------------------------------

def read_records(uris: list[str]) -> list[dict[str, Any]]:
    """The candidate records of every URI, in order: a run root (its ``records.jsonl``) or a ``.jsonl`` file,
    each a local path, ``file://`` or ``s3://`` URI. A URI that yields no record is an error naming it, since a
    mistyped source would otherwise shrink the dataset silently."""
    return [record for uri in uris for record in _records_at(uri)]


def _records_at(uri: str) -> list[dict[str, Any]]:
    root, key = _split_jsonl(uri)
    where = uri if root != uri else f"{uri.rstrip('/')}/{key}"
    try:
        text = _open_existing(root, what="trajectories").get_text(key)
    except KeyError:
        raise W4SError(f"no trajectory records at {uri}: expected {where} (give a run directory or a "
                       f".jsonl file of candidate records)") from None
    records = [_parse_record(line, where, number)
               for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not records:
        raise W4SError(f"no trajectory records at {uri}: {where} is empty (has the run finished an iteration?)")
    return records


def _split_jsonl(uri: str) -> tuple[str, str]:
    """(store root, key): a URI ending in ``.jsonl`` names that file, anything else is a run root."""
    if not uri.endswith(".jsonl"):
        return uri, RECORDS_FILE
    root, _, name = uri.rpartition("/")
    if uri.startswith("s3://") and root == "s3:/":
        raise W4SError(f"{uri!r} names no object: expected s3://bucket/[prefix/]file.jsonl")
    return (root or ".", name)


def _parse_record(line: str, where: str, number: int) -> dict[str, Any]:
    """Validated against CandidateRecord, so a file that is not trajectory records fails here, by line."""
    try:
        return CandidateRecord.model_validate_json(line).model_dump(mode="json")
    except ValidationError as exc:
        raise W4SError(f"{where} line {number} is not a candidate record: "
                       f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def _open_existing(uri: str, what: str) -> Store:
    """Open a store for reading without creating it: a local store would otherwise appear as an empty folder
    at a mistyped path, and the error would say "empty" instead of "not found"."""
    parsed = urlparse(uri)
    local = uri if "://" not in uri else unquote(parsed.path) if parsed.scheme == "file" else None
    if local is not None and not Path(local).expanduser().is_dir():
        raise W4SError(f"no {what} at {uri}: no such directory")
    return open_store(uri)


# ---- datasets in a store ----------------------------------------------------------------------------------

def write_dataset(uri: str, examples: list[TrainingExample], summary: DatasetSummary) -> None:
    """Store ``examples.jsonl`` and then ``summary.json`` (the completion marker) at ``uri``."""
    store = open_store(uri)
    store.put_text(EXAMPLES_FILE, "".join(json.dumps(asdict(e), separators=(",", ":")) + "\n" for e in examples))
    store.put_json(SUMMARY_FILE, asdict(summary))


def read_dataset(uri: str) -> tuple[list[TrainingExample], DatasetSummary]:
    """Read a dataset written by ``write_dataset``; one without its summary is incomplete and refused."""
    store = _open_existing(uri, what="RLAO dataset")
    if not store.exists(SUMMARY_FILE):
        raise W4SError(f"no RLAO dataset at {uri}: {SUMMARY_FILE} is missing (build one with `w4s rlao build`)")
    summary = DatasetSummary(**store.get_json(SUMMARY_FILE))
    examples = [TrainingExample(**json.loads(line))
                for line in store.get_text(EXAMPLES_FILE).splitlines() if line.strip()]
    if len(examples) != summary.examples:
        raise W4SError(f"RLAO dataset at {uri} is inconsistent: {len(examples)} examples, the summary says "
                       f"{summary.examples}")
    return examples, summary
