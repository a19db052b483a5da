"""The RWR loss: reward-weighted regression on the action tokens only.

RLAO maximises sum_t log pi(a_t | s_t) * exp(r_t / tau) (W4S, Section 4). Per example i, l_i is the mean token
cross-entropy over its labelled (action) tokens: the reference trainer's length-normalised choice, so a long
action does not outweigh a short one with the same reward. Across a micro-batch of B examples:

    loss = sum_i (w_i / w_bar) * l_i / B

where w_i = exp(r_i / tau) and w_bar is the mean weight over the WHOLE dataset, not over the batch. A plain
weighted mean inside the batch (sum w_i l_i / sum w_i) would cancel the weights at the paper's per-device batch
size of 1, silently turning RWR into SFT. Dividing by the dataset's w_bar keeps the average scale of the loss
(and so the effective learning rate) equal to SFT's; with all rewards equal every w_i / w_bar is exactly 1 and
the loss IS the SFT loss. The Trainer then averages micro-batches over gradient accumulation and DDP averages
over processes, so one optimizer step follows the mean of (w_i / w_bar) * l_i over every example it saw.

Logits are computed only at the positions that predict a labelled token (``logits_to_keep``): the state, often
thousands of tokens, never goes through the vocabulary projection, which for a 150k vocabulary is the largest
activation in the step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def weighted_action_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                         mean_weight: float) -> torch.Tensor:
    """sum_i (w_i / w_bar) * l_i / B for logits [B, K, V] that predict targets [B, K] (-100: not trained).

    An example without labelled tokens contributes 0 (its token count is clamped to 1), never NaN.
    """
    batch, positions = targets.shape
    token_ce = F.cross_entropy(logits.reshape(batch * positions, -1).float(), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="none").view(batch, positions)
    counts = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    per_example = token_ce.sum(dim=1) / counts
    scale = weights.to(per_example.dtype) / mean_weight
    return (scale * per_example).sum() / batch


def action_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, targets): the sequence positions whose logits predict a labelled token in any row of the
    batch, and the labels they predict ([B, K], -100 where that row has nothing to learn there).

    Position t predicts token t + 1, so the targets are the labels shifted left by one.
    """
    shifted = labels[:, 1:]
    positions = (shifted != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    return positions, shifted[:, positions]


def batch_loss(model: Any, batch: dict[str, torch.Tensor], mean_weight: float) -> torch.Tensor:
    """Run ``model`` on a collated batch (input_ids, attention_mask, labels, weights) and return the RWR loss."""
    positions, targets = action_positions(batch["labels"])
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                    logits_to_keep=positions)
    return weighted_action_loss(outputs.logits, targets, batch["weights"], mean_weight)
