"""The reward rule and trajectory truncation, on fixed score sequences (no LLM involved)."""

from __future__ import annotations

import pytest

from w4s.rewards import reward, starts_window


def replay(scores: list[float], horizon: int) -> list[float]:
    """Play the paper's rules by hand: v0 is W0's score, then one selected action per iteration.

    At the start of each window the state resets to the best workflow so far and "max so far" resets with it.
    """
    v0, actions = scores[0], scores[1:]
    best, window, rewards = v0, [v0], []
    for i, v in enumerate(actions, start=1):
        if i > 1 and starts_window(i, horizon):
            window = [best]
        rewards.append(reward(v, window))
        window.append(v)
        best = max(best, v)
    return rewards


def test_hand_computed_rewards_horizon_2() -> None:
    # v0 = 0.50 (W0). Window 1 = iterations 1-2 starting from [0.50]:
    #   it1: 0.40 -> not above max 0.50, not above previous 0.50 -> 0
    #   it2: 0.60 -> above max(0.50, 0.40) -> 1
    # Window 2 resets to the best so far (0.60), max resets to 0.60:
    #   it3: 0.55 -> not above 0.60, not above previous 0.60 -> 0
    #   it4: 0.70 -> above max(0.60, 0.55) -> 1
    assert replay([0.50, 0.40, 0.60, 0.55, 0.70], horizon=2) == [0.0, 1.0, 0.0, 1.0]


def test_half_reward_for_beating_previous_only() -> None:
    # it1: 0.30 -> 0; it2: 0.40 beats previous 0.30 but not max 0.50 -> 0.5
    assert replay([0.50, 0.30, 0.40], horizon=2) == [0.0, 0.5]


def test_truncation_changes_the_reference() -> None:
    scores = [0.5, 0.2, 0.3, 0.25, 0.45]
    # Without truncation it4 (0.45) only beats the previous 0.25 -> 0.5; same here because best stays 0.5.
    assert replay(scores, horizon=100) == [0.0, 0.5, 0.0, 0.5]
    # With horizon 1 every iteration restarts from the best (0.5): nothing beats it.
    assert replay(scores, horizon=1) == [0.0, 0.0, 0.0, 0.0]


def test_windows_start_every_horizon_iterations() -> None:
    assert [i for i in range(1, 8) if starts_window(i, 2)] == [1, 3, 5, 7]
    assert [i for i in range(1, 8) if starts_window(i, 3)] == [1, 4, 7]


def test_reward_needs_a_reference() -> None:
    with pytest.raises(ValueError):
        reward(0.5, [])
