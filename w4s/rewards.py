"""The paper's reward and the trajectory window it is computed in.

r_i = 1 if v_i > max(v_0..v_{i-1}); 0.5 if v_i > v_{i-1}; else 0 — where v_0..v_{i-1} are the scores of the
states in the current window: the window's starting workflow, then each selected action. Every ``horizon``
iterations the window resets to the best workflow so far, and the "max so far" resets with it.
"""

from __future__ import annotations

from collections.abc import Sequence


def reward(score: float, window_scores: Sequence[float]) -> float:
    if not window_scores:
        raise ValueError("a reward needs at least the window's starting score")
    if score > max(window_scores):
        return 1.0
    if score > window_scores[-1]:
        return 0.5
    return 0.0


def starts_window(iteration: int, horizon: int) -> bool:
    """Iterations are numbered from 1; windows start at 1, 1+T, 1+2T, ..."""
    return (iteration - 1) % horizon == 0
