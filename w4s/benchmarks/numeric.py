"""Scoring of numeric answers (GSM8K-style): pull the number out of whatever the workflow returned."""

from __future__ import annotations

import math
from typing import Any

from w4s.workflow.helper_api import NUMBER, extract_answer_str


def to_number(value: Any) -> float | None:
    """A float from a number, or from a string the way the helper API reads answers (``\\boxed{}`` first)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    found = NUMBER.findall(extract_answer_str(str(value)))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric_match(prediction: Any, gold: str, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> float:
    pred, want = to_number(prediction), to_number(gold)
    if pred is None or want is None:
        return 0.0
    return 1.0 if math.isclose(pred, want, rel_tol=rel_tol, abs_tol=abs_tol) else 0.0
