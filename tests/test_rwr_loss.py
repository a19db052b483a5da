"""The RWR loss and its collator, on hand-built batches (no model download; a few seconds on CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import transformers

from training_jobs.loss import IGNORE_INDEX, action_positions, batch_loss, weighted_action_loss
from training_jobs.trainer import RWRCollator

X = IGNORE_INDEX
LN2 = math.log(2)
LN4_3 = math.log(4 / 3)
W1 = math.exp(1 / 0.4)  # the weight of reward 1 at tau 0.4: e^2.5 = 12.1825


def two_examples() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [2, 3, 2] and targets [2, 3] whose cross-entropies are known in closed form.

    Example A labels positions 0 and 1, both with uniform logits over 2 classes: CE = ln 2 each, l_A = ln 2.
    Example B labels position 2 only, logits [ln 3, 0] with target 0: p = 3 / (3 + 1), CE = ln(4/3) = l_B.
    Unlabelled positions hold arbitrary logits.
    """
    logits = torch.tensor([
        [[0.0, 0.0], [0.0, 0.0], [7.0, -3.0]],
        [[5.0, 1.0], [-2.0, 4.0], [math.log(3), 0.0]],
    ])
    targets = torch.tensor([[0, 1, X], [X, X, 0]])
    return logits, targets


def test_weighted_loss_equals_the_hand_computed_value() -> None:
    logits, targets = two_examples()
    weights = torch.tensor([W1, 1.0])  # A: reward 1; B: reward 0 (exp(0) = 1)
    # The dataset these two come from has a third example of reward 0: w_bar = (e^2.5 + 1 + 1) / 3 = 4.727498.
    w_bar = (W1 + 2) / 3
    # loss = (w_A / w_bar * l_A + w_B / w_bar * l_B) / B
    #      = (2.576943 * 0.693147 + 0.211528 * 0.287682) / 2 = (1.786202 + 0.060853) / 2 = 0.923527
    expected = (W1 / w_bar * LN2 + 1 / w_bar * LN4_3) / 2
    assert expected == pytest.approx(0.9235269, abs=1e-6)
    assert weighted_action_loss(logits, targets, weights, w_bar).item() == pytest.approx(expected, rel=1e-6)


def test_equal_rewards_give_exactly_the_sft_loss() -> None:
    logits, targets = two_examples()
    # SFT: the mean over examples of each one's mean token cross-entropy, (ln 2 + ln 4/3) / 2 = 0.490415.
    sft = torch.stack([F.cross_entropy(logits[i], targets[i], ignore_index=X) for i in range(2)]).mean()
    assert sft.item() == pytest.approx((LN2 + LN4_3) / 2, rel=1e-6)
    same_reward = weighted_action_loss(logits, targets, torch.tensor([W1, W1]), W1)  # every w_i / w_bar = 1
    sft_ablation = weighted_action_loss(logits, targets, torch.ones(2), 1.0)  # algorithm sft: every weight 1
    assert same_reward.item() == pytest.approx(sft.item(), rel=1e-6)
    assert sft_ablation.item() == pytest.approx(sft.item(), rel=1e-6)


def test_in_a_batch_of_one_the_weight_is_not_cancelled() -> None:
    """The paper's per-device batch is 1: a weighted mean inside the batch would make every example weigh 1."""
    logits, targets = two_examples()
    w_bar = (W1 + 1) / 2
    high = weighted_action_loss(logits[:1], targets[:1], torch.tensor([W1]), w_bar)
    low = weighted_action_loss(logits[:1], targets[:1], torch.tensor([1.0]), w_bar)
    assert high.item() == pytest.approx(W1 / w_bar * LN2, rel=1e-6)
    assert high.item() / low.item() == pytest.approx(W1, rel=1e-6)


def test_unlabelled_tokens_contribute_nothing() -> None:
    logits, targets = two_examples()
    logits.requires_grad_(True)
    loss = weighted_action_loss(logits, targets, torch.tensor([W1, 1.0]), 2.0)
    loss.backward()
    unlabelled = targets == X
    assert torch.all(logits.grad[unlabelled] == 0)
    assert torch.all(logits.grad[~unlabelled].abs().sum(-1) > 0)
    scrambled = logits.detach().clone()
    scrambled[unlabelled] = torch.tensor([100.0, -100.0])
    assert weighted_action_loss(scrambled, targets, torch.tensor([W1, 1.0]), 2.0).item() == \
        pytest.approx(loss.item(), rel=1e-7)
    # An example with nothing labelled adds 0, not NaN.
    empty = torch.full_like(targets, X)
    assert weighted_action_loss(logits.detach(), empty, torch.ones(2), 1.0).item() == 0.0


def test_action_positions_are_the_shifted_labelled_ones() -> None:
    labels = torch.tensor([[X, X, 5, 6, X], [X, X, X, X, 7]])
    positions, targets = action_positions(labels)
    assert positions.tolist() == [1, 2, 3]  # logits at t predict token t + 1
    assert targets.tolist() == [[5, 6, X], [X, X, 7]]


def test_collator_pads_each_batch_to_its_longest_and_keeps_labels_and_weights() -> None:
    features = [
        {"input_ids": [11, 12, 13], "labels": [X, 12, 13], "weight": 1.0, "length": 3},
        {"input_ids": [21, 22, 23, 24, 25], "labels": [X, X, X, 24, 25], "weight": W1, "length": 5},
        {"input_ids": [31, 32], "labels": [X, 32], "weight": math.exp(0.5 / 0.4), "length": 2},
    ]
    batch = RWRCollator(pad_token_id=0)(features)
    assert batch["input_ids"].shape == (3, 5)  # the longest in the batch, not a maximum length
    assert batch["input_ids"].tolist() == [[11, 12, 13, 0, 0], [21, 22, 23, 24, 25], [31, 32, 0, 0, 0]]
    assert batch["labels"].tolist() == [[X, 12, 13, X, X], [X, X, X, 24, 25], [X, 32, X, X, X]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["weights"].tolist() == pytest.approx([1.0, W1, math.exp(1.25)])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "weights"}
    assert RWRCollator(pad_token_id=0)(features[:1])["input_ids"].shape == (1, 3)


@pytest.fixture(scope="module")
def tiny_model() -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


def test_batch_loss_on_a_model_matches_full_logits(tiny_model: transformers.PreTrainedModel) -> None:
    """Logits computed only where an action token is predicted give the same loss as the full logits."""
    features = [
        {"input_ids": [1, 2, 3, 4, 5, 6], "labels": [X, X, X, 4, 5, 6], "weight": W1},
        {"input_ids": [7, 8, 9, 10], "labels": [X, X, 9, 10], "weight": 1.0},
    ]
    batch = RWRCollator(pad_token_id=0)(features)
    w_bar = 3.0
    with torch.no_grad():
        got = batch_loss(tiny_model, batch, w_bar).item()
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_example = [F.cross_entropy(logits[i, :-1], batch["labels"][i, 1:], ignore_index=X) for i in range(2)]
    expected = (W1 / w_bar * per_example[0] + 1.0 / w_bar * per_example[1]).item() / 2
    assert got == pytest.approx(expected, rel=1e-5)


def test_batch_of_one_at_mean_weight_is_the_models_own_causal_lm_loss(tiny_model: transformers.PreTrainedModel
                                                                      ) -> None:
    batch = RWRCollator(pad_token_id=0)([{"input_ids": [3, 1, 4, 1, 5, 9, 2], "labels": [X, X, X, 1, 5, 9, 2],
                                          "weight": W1}])
    with torch.no_grad():
        ours = batch_loss(tiny_model, batch, W1).item()
        reference = tiny_model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
    assert ours == pytest.approx(reference, rel=1e-5)
