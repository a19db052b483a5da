"""TRL's SFTTrainer with the RWR loss, and the collator that feeds it.

The reference trainer lost its label mask because the default collator rebuilt ``labels`` from ``input_ids``
(so prompt tokens were trained) and padded every example to the maximum length. Here the collator pads each
batch only to its own longest example and carries the dataset's labels and weights through unchanged; the
dataset is handed over already tokenized, so TRL's own preparation is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from trl import SFTTrainer

from training_jobs.loss import IGNORE_INDEX, batch_loss
from w4s.rlao.dataset import TrainingExample


def to_dataset(examples: Sequence[TrainingExample]) -> Dataset:
    """The columns the collator reads, plus ``length`` for ``group_by_length``'s sampler."""
    return Dataset.from_dict({
        "input_ids": [e.input_ids for e in examples],
        "labels": [e.labels for e in examples],
        "weight": [e.weight for e in examples],
        "length": [len(e.input_ids) for e in examples],
    })


@dataclass(frozen=True)
class RWRCollator:
    """Right-pads a batch to its longest example: pad id in ``input_ids``, -100 in ``labels``, 0 in the mask."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            size = len(feature["input_ids"])
            input_ids[row, :size] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :size] = torch.tensor(feature["labels"], dtype=torch.long)
            attention_mask[row, :size] = 1
        weights = torch.tensor([float(f["weight"]) for f in features], dtype=torch.float32)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "weights": weights}


class RWRTrainer(SFTTrainer):
    """SFTTrainer whose loss is ``training_jobs.loss``: action tokens only, each example weighted by w_i / w_bar.

    w_bar is taken from the training dataset it is given, so every process of a distributed run (each builds
    the same dataset) scales by the same number.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        weights = self.train_dataset["weight"]
        self.mean_weight = float(sum(weights) / len(weights))
        # The loss is already a per-example mean: the Trainer must divide it by the accumulation steps itself
        # instead of expecting the model to normalise by a token count (num_items_in_batch) it never sees.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | None = None) -> torch.Tensor:
        """The RWR loss, and the token count SFTTrainer logs as ``num_tokens`` (for tokens per second)."""
        if return_outputs:
            raise NotImplementedError("RWRTrainer computes only the training loss")
        loss = batch_loss(model, inputs, self.mean_weight)
        if model.training:
            self._total_train_tokens += self.accelerator.reduce(inputs["attention_mask"].sum(), "sum").item()
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss
