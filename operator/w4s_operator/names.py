"""Deterministic names and labels of the objects the operator creates.

A child's name is a function of its owner's name only, so a retried or restarted reconcile finds (or collides
with, 409) the child it made before instead of making a second one.
"""

from __future__ import annotations

import hashlib

from w4s.sandbox.kube import run_labels

MANAGED_BY = "w4s-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "w4s.io/run"
LABEL_KIND = "w4s.io/owner-kind"
LABEL_COMPONENT = "app.kubernetes.io/component"
_MAX = 63


def child_name(owner: str, suffix: str) -> str:
    """``<owner>-<suffix>``, shortened with a hash of the owner's name when it would pass 63 characters (the
    limit for Service names and label values)."""
    name = f"{owner}-{suffix}"
    if len(name) <= _MAX:
        return name
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    keep = _MAX - len(suffix) - len(digest) - 2
    return f"{owner[:keep].rstrip('-')}-{digest}-{suffix}"


def run_label(owner: str) -> str:
    """The value of w4s.io/run: label values are limited to 63 characters too."""
    return owner if len(owner) <= _MAX else child_name(owner, "run")


def labels(owner_kind: str, owner: str, component: str) -> dict[str, str]:
    """The sandbox builders' standard labels (the NetworkPolicies select on them) plus the owner's kind."""
    return {**run_labels(component, run_label(owner)), LABEL_KIND: owner_kind.lower()}


def owner_reference(body: dict) -> dict:
    """controller: true lets the garbage collector delete the child with its owner, and makes ownership of a
    name unambiguous when a resource is deleted and created again under the same name (a new uid)."""
    return {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": body["metadata"]["name"],
            "uid": body["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
