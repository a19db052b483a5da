"""The official DROP metric (exact match and F1), re-implemented in plain Python.

Reference: allenai/allennlp-reading-comprehension, ``allennlp_rc/eval/drop_eval.py`` (the script the DROP
leaderboard uses; openai/simple-evals and ADAS carry copies of it). Its behaviour is kept exactly:

- An answer is one span (a string) or several spans (a list). Each span is split into tokens on single spaces
  and hyphens; each token is lower-cased, stripped of ASCII punctuation unless it parses as a float, written as
  ``str(float(token))`` when it parses as one ("12" and "12.000" both become "12.0"), and dropped when it is an
  article. A span's tokens form a *bag* (a set).
- Predicted and gold bags are aligned one-to-one so that the sum of their F1 is maximal; a pair whose gold bag
  holds numbers scores 0 unless the predicted bag shares one of them. F1 is that sum divided by the larger
  number of bags (unmatched bags count 0), rounded to two decimals as the reference does (``numpy.round``:
  scale by 100, round half to even, scale back).
- Exact match is 1 when the normalised spans agree as sets and in number.

What differs is how the alignment is found: the reference calls scipy's ``linear_sum_assignment``; here
:func:`max_matching` is an exact dynamic programme over subsets of the smaller side (after dropping bags that
match nothing), so the package needs neither scipy nor numpy. It is exact, and cheap for DROP's handful of
spans; problems whose smaller side still has more than :data:`MAX_ALIGNED_SPANS` spans are refused with a
``ValueError`` rather than left to run for minutes. The mean is taken as total / count, which can differ from
numpy's pairwise summation in the last bit before the two-decimal rounding, never by more.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

MAX_ALIGNED_SPANS = 12  # 2**12 subset states per column: instant; DROP golds have at most 6 spans

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_TOKEN_SEPARATOR = re.compile(" |-")

Answer = str | Sequence[str]


def _is_number(text: str) -> bool:
    """Whatever Python's float() accepts, as in the reference ("1e3", "nan" and "1_000" included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _normalize_token(token: str) -> str:
    token = token.lower()
    if _is_number(token):
        token = str(float(token))
    else:
        token = "".join(ch for ch in token if ch not in _PUNCTUATION)
        if _is_number(token):  # "$5" and "1,000" become numbers once their punctuation is gone
            token = str(float(token))
    return " ".join(_ARTICLES.sub(" ", token).split())


def normalize_answer(text: str) -> str:
    """One span, normalised: lower case, no punctuation outside numbers, numbers as floats, no articles."""
    parts = (_normalize_token(token) for token in _TOKEN_SEPARATOR.split(text))
    return " ".join(part for part in parts if part.strip()).strip()


def answer_to_bags(answer: Answer) -> tuple[list[str], list[frozenset[str]]]:
    """The normalised spans of an answer and their token bags (a string is a single span)."""
    spans = [answer] if isinstance(answer, str) else list(answer)
    normalized = [normalize_answer(span) for span in spans]
    return normalized, [frozenset(span.split()) for span in normalized]


def _bag_f1(predicted: frozenset[str], gold: frozenset[str]) -> float:
    common = len(predicted & gold)
    precision = common / len(predicted) if predicted else 1.0
    recall = common / len(gold) if gold else 1.0
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _numbers_match(gold: frozenset[str], predicted: frozenset[str]) -> bool:
    """A gold bag with numbers only pairs with a predicted bag that shares one of them."""
    gold_numbers = {word for word in gold if _is_number(word)}
    return not gold_numbers or bool(gold_numbers & {word for word in predicted if _is_number(word)})


def max_matching(weights: Sequence[Sequence[float]]) -> float:
    """The largest total weight of a one-to-one matching of rows to columns (weights >= 0; rows may differ in
    number from columns). Exact: rows and columns without a positive weight are dropped, then a dynamic
    programme walks the columns keeping, for each subset of the smaller side already used, its best total."""
    rows = [list(row) for row in weights if any(w > 0 for w in row)]
    if not rows:
        return 0.0
    used_columns = [j for j in range(len(rows[0])) if any(row[j] > 0 for row in rows)]
    matrix = [[row[j] for j in used_columns] for row in rows]
    if len(matrix) > len(used_columns):
        matrix = [list(column) for column in zip(*matrix, strict=True)]
    side = len(matrix)
    if side > MAX_ALIGNED_SPANS:
        raise ValueError(f"cannot align {side} spans with {len(matrix[0])} (at most {MAX_ALIGNED_SPANS} "
                         f"spans on the smaller side)")
    best: dict[int, float] = {0: 0.0}  # subset of matched rows (bit mask) -> best total so far
    for column in range(len(matrix[0])):
        step = dict(best)
        for mask, total in best.items():
            for row in range(side):
                weight = matrix[row][column]
                if weight > 0 and not mask >> row & 1:
                    key = mask | 1 << row
                    if total + weight > step.get(key, -1.0):
                        step[key] = total + weight
        best = step
    return max(best.values())


def _round2(value: float) -> float:
    """``numpy.round(value, 2)``: scale, round half to even, scale back (what the reference's round() does)."""
    return round(value * 100) / 100


def get_metrics(predicted: Answer, gold: Answer) -> tuple[float, float]:
    """(exact match, F1) of one prediction against one gold answer, each a span or a list of spans."""
    predicted_spans, predicted_bags = answer_to_bags(predicted)
    gold_spans, gold_bags = answer_to_bags(gold)
    exact = float(set(predicted_spans) == set(gold_spans) and len(predicted_spans) == len(gold_spans))
    weights = [[_bag_f1(p, g) if _numbers_match(g, p) else 0.0 for p in predicted_bags] for g in gold_bags]
    count = max(len(gold_bags), len(predicted_bags))
    f1 = max_matching(weights) / count if count else 0.0
    return exact, _round2(f1)


def best_metrics(predicted: Answer, golds: Sequence[Answer]) -> tuple[float, float]:
    """The reference's per-question score: the best EM and the best F1 over the gold answers, skipping gold
    answers whose first span is blank (as ``evaluate_json`` does). No usable gold answer scores (0, 0)."""
    exact, f1 = 0.0, 0.0
    for gold in golds:
        spans = [gold] if isinstance(gold, str) else list(gold)
        if not spans or not spans[0].strip():
            continue
        gold_exact, gold_f1 = get_metrics(predicted, gold)
        exact, f1 = max(exact, gold_exact), max(f1, gold_f1)
    return exact, f1
