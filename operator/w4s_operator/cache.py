"""What the operator has seen of the cluster, fed by its watches (an informer cache, in client-go's words).

Reconciles read from here instead of asking the API server again, which is what lets a hundred resources be
reconciled at once on a small control plane. The cache may lag; it is never trusted to prove that something
does not exist: creating a child that is already there answers 409 and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from w4s_operator.names import LABEL_COMPONENT, LABEL_RUN

Key = tuple[str, str, str]  # kind, namespace, name


class Cache:
    def __init__(self) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        # (namespace, run label, component) -> pod names, for the pods that Jobs and Deployments make.
        self._pods: dict[tuple[str, str, str], set[str]] = defaultdict(set)

    @staticmethod
    def key(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return obj["kind"], meta.get("namespace", ""), meta["name"]

    def _pod_index(self, obj: dict[str, Any]) -> tuple[str, str, str] | None:
        lab = obj["metadata"].get("labels") or {}
        if obj["kind"] != "Pod" or LABEL_RUN not in lab:
            return None
        return obj["metadata"]["namespace"], lab[LABEL_RUN], lab.get(LABEL_COMPONENT, "")

    def put(self, obj: dict[str, Any]) -> None:
        """Keep the newer of two copies: an event may arrive after the answer to our own write."""
        key = self.key(obj)
        old = self._objects.get(key)
        if old is not None and old["metadata"].get("uid") == obj["metadata"].get("uid") \
                and _version(old) > _version(obj):
            return
        self._objects[key] = obj
        index = self._pod_index(obj)
        if index:
            self._pods[index].add(key[2])

    def forget(self, obj: dict[str, Any]) -> None:
        key = self.key(obj)
        self._objects.pop(key, None)
        index = self._pod_index(obj)
        if index:
            self._pods[index].discard(key[2])

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((kind, namespace, name))

    def pods(self, namespace: str, run: str, component: str) -> list[dict[str, Any]]:
        names = sorted(list(self._pods.get((namespace, run, component), ())))
        return [p for n in names if (p := self._objects.get(("Pod", namespace, n))) is not None]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Safe to call from the metrics server's thread: the copy of the items is atomic."""
        return [obj for (k, _, _), obj in list(self._objects.items()) if k == kind]


def _version(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion", "0"))
    except ValueError:
        return 0
