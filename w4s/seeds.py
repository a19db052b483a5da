"""Per-call seeds derived from names, not from a random stream, so a resumed run makes the same calls with the
same seeds as an uninterrupted one, whatever order concurrent samples finish in."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def code_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]
