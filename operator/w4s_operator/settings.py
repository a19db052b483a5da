"""The operator's own configuration, from environment variables (the Helm chart's values set them).

Images, the default store and where the operator watches are installation choices, not per-run ones, so they
live here rather than in the resources' specs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from w4s import __version__

_DEFAULT_IMAGE = "ghcr.io/w4s-project/{}:" + __version__


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "") or default


@dataclass(frozen=True)
class Settings:
    runner_image: str = _DEFAULT_IMAGE.format("runner")
    sandbox_image: str = _DEFAULT_IMAGE.format("sandbox")
    trainer_image: str = _DEFAULT_IMAGE.format("trainer")
    meta_agent_image: str = _DEFAULT_IMAGE.format("meta-agent")
    image_pull_policy: str = "IfNotPresent"
    store: str = "s3://w4s"
    store_secret: str = "w4s-store"
    meta_agent_weights: str = "s3://w4s/models/qwen2.5-coder-7b-instruct"
    meta_agent_gpus: int = 1
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    metrics_port: int = 8080
    workers: int = 16
    resync_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> Settings:
        base = cls()
        namespaces = tuple(n.strip() for n in os.environ.get("W4S_WATCH_NAMESPACES", "").split(",") if n.strip())
        return cls(
            runner_image=_env("W4S_RUNNER_IMAGE", base.runner_image),
            sandbox_image=_env("W4S_SANDBOX_IMAGE", base.sandbox_image),
            trainer_image=_env("W4S_TRAINER_IMAGE", base.trainer_image),
            meta_agent_image=_env("W4S_META_AGENT_IMAGE", base.meta_agent_image),
            image_pull_policy=_env("W4S_IMAGE_PULL_POLICY", base.image_pull_policy),
            store=_env("W4S_STORE", base.store).rstrip("/"),
            store_secret=_env("W4S_STORE_SECRET", base.store_secret),
            meta_agent_weights=_env("W4S_META_AGENT_WEIGHTS", base.meta_agent_weights),
            meta_agent_gpus=int(_env("W4S_META_AGENT_GPUS", str(base.meta_agent_gpus))),
            namespaces=namespaces,
            metrics_port=int(_env("W4S_METRICS_PORT", str(base.metrics_port))),
            workers=int(_env("W4S_RECONCILE_WORKERS", str(base.workers))),
            resync_seconds=float(_env("W4S_RESYNC_SECONDS", str(base.resync_seconds))),
        )
