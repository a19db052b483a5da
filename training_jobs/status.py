"""Training progress written to the MetaAgentTraining's status, by the trainer itself (process 0 only).

The writes are ``w4s.statusreport.StatusPatcher``'s: coalesced, at most one a second, never blocking the work,
a slow API server costing nothing but stale status. The Trainer is synchronous, so the reporter's event loop
runs in a thread of its own and the training loop only hands it fields.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from w4s.kubeapi import KubeAPI
from w4s.statusreport import StatusPatcher


class TrainingStatus:
    """Thread-safe front of the reporter: ``report`` from the training loop, ``finish`` once at the end."""

    def __init__(self, resource: str, api: KubeAPI | None = None) -> None:
        self._reporter = StatusPatcher(resource, "MetaAgentTraining", api)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="w4s-status", daemon=True)
        self._thread.start()

    def report(self, fields: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._reporter.update, fields)

    def finish(self, result: dict[str, str] | None) -> None:
        """Send what is pending and ``result`` ({status, reason}; None: leave it to a retry), then stop."""
        async def close() -> None:
            if result is not None:
                self._reporter.update({"result": result})
            await self._reporter.flush()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


class StatusCallback(TrainerCallback):
    """step, totalSteps, progress, loss, learningRate, tokensPerSecond and (on a GPU) gpuMemoryBytes at every log
    (every optimizer step).

    Tokens per second counts every non-padding token of every process (SFTTrainer's ``num_tokens``) over the
    wall time between two logs, so it includes the optimizer step and any checkpoint upload in between.
    """

    def __init__(self, status: TrainingStatus) -> None:
        self.status = status
        self._mark = (time.monotonic(), 0.0)

    def _progress(self, state: TrainerState) -> dict[str, Any]:
        return {"step": state.global_step, "totalSteps": state.max_steps,
                "progress": f"{state.global_step}/{state.max_steps}"}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._mark = (time.monotonic(), 0.0)
        self.status.report(self._progress(state))

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        fields = self._progress(state)
        if "loss" in logs:
            fields["loss"] = f"{logs['loss']:.4f}"
        if "learning_rate" in logs:
            fields["learningRate"] = f"{logs['learning_rate']:.3e}"
        if "num_tokens" in logs:
            now, tokens = time.monotonic(), float(logs["num_tokens"])
            if now > self._mark[0] and tokens > self._mark[1]:
                fields["tokensPerSecond"] = f"{(tokens - self._mark[1]) / (now - self._mark[0]):.1f}"
            self._mark = (now, tokens)
        if torch.cuda.is_available():  # process 0's peak: the number to compare with the GPU's memory
            fields["gpuMemoryBytes"] = int(torch.cuda.max_memory_allocated())
        self.status.report(fields)
