"""Conditions (metav1.Condition) and the display phase derived from them.

Conditions are the API; the phase is a one-word summary for ``kubectl get``. A condition's lastTransitionTime
changes only when its status does, so a reconcile that sees nothing new writes nothing new.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

ACCEPTED = "Accepted"
META_AGENT_READY = "MetaAgentReady"
SANDBOX_READY = "SandboxReady"
POD_SCHEDULED = "PodScheduled"
PROGRESSING = "Progressing"
COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None


def reason_word(text: str) -> str:
    """Condition reasons must be CamelCase identifiers; event and pod reasons sometimes are not."""
    word = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part)
    return word if word[:1].isalpha() else f"R{word}" if word else "Unknown"


def holds(obj: dict[str, Any], type_: str) -> bool:
    """Whether another resource's condition ``type_`` is True (a training's Complete, say)."""
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


class Conditions:
    """The conditions of one reconcile: starts from the stored list, is updated in place, is written back whole."""

    def __init__(self, stored: list[dict[str, Any]], generation: int) -> None:
        self._items = {c["type"]: dict(c) for c in stored}
        self._generation = generation
        self.transitions: list[dict[str, Any]] = []  # conditions whose status changed in this reconcile

    def set(self, type_: str, status: bool | None, reason: str, message: str = "") -> None:
        value = "Unknown" if status is None else "True" if status else "False"
        old = self._items.get(type_)
        changed = old is None or old.get("status") != value
        item = self._items[type_] = {
            "type": type_, "status": value, "reason": reason_word(reason), "message": message[:4000],
            "lastTransitionTime": now() if changed else old["lastTransitionTime"],
            "observedGeneration": self._generation,
        }
        if changed:
            self.transitions.append(item)

    def drop(self, type_: str) -> None:
        self._items.pop(type_, None)

    def get(self, type_: str) -> dict[str, Any] | None:
        return self._items.get(type_)

    def is_true(self, type_: str) -> bool:
        item = self._items.get(type_)
        return item is not None and item["status"] == "True"

    def as_list(self) -> list[dict[str, Any]]:
        order = [ACCEPTED, META_AGENT_READY, SANDBOX_READY, POD_SCHEDULED, PROGRESSING, SUSPENDED, COMPLETE, FAILED]
        return sorted(self._items.values(), key=lambda c: (order.index(c["type"]) if c["type"] in order else 99,
                                                           c["type"]))

    def phase(self) -> tuple[str, str]:
        """(phase, reason): the first that holds of Failed, Complete, Suspended, Running, Pending."""
        for type_, phase in ((FAILED, "Failed"), (COMPLETE, "Complete"), (SUSPENDED, "Suspended"),
                             (PROGRESSING, "Running")):
            if self.is_true(type_):
                return phase, self._items[type_]["reason"]
        waiting = next((c for c in self.as_list() if c["status"] != "True"), None)
        return "Pending", waiting["reason"] if waiting else "Reconciling"
