"""What the operator reads off its children: why a pod is not running, and how a Job or Deployment stands.

Nothing may sit Pending without a reason, so the scheduler's and the kubelet's own words are copied onto the
resource: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", ImagePullBackOff, OOMKilled with its exit
code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Waiting reasons that mean the container will not start without a change by the user.
_STUCK = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
          "CreateContainerError", "CrashLoopBackOff", "RunContainerError"}


@dataclass(frozen=True)
class PodProblem:
    """One reason a pod does not run. ``scheduling`` problems are the PodScheduled condition's."""

    reason: str
    message: str
    pod: str
    container: str | None = None
    exit_code: int | None = None
    scheduling: bool = False

    def text(self) -> str:
        where = f"pod {self.pod}" + (f", container {self.container}" if self.container else "")
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        return f"{self.reason}{code}: {self.message} [{where}]" if self.message else f"{self.reason}{code} [{where}]"

    def failure_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"reason": self.reason, "message": self.message, "pod": self.pod}
        if self.container:
            info["container"] = self.container
        if self.exit_code is not None:
            info["exitCode"] = self.exit_code
        return info


def pod_problems(pod: dict[str, Any]) -> list[PodProblem]:
    """Scheduling failures, containers stuck waiting, and containers that were killed or failed."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    problems = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            problems.append(PodProblem(cond.get("reason") or "Unschedulable", cond.get("message", ""), name,
                                       scheduling=True))
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") in _STUCK:
            problems.append(PodProblem(waiting["reason"], waiting.get("message", ""), name, cs.get("name")))
        last = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if last and (last.get("exitCode") or 0) != 0:
            problems.append(PodProblem(last.get("reason") or "Error", last.get("message", ""), name, cs.get("name"),
                                       exit_code=last.get("exitCode")))
    return problems


def started_running(pod: dict[str, Any]) -> str | None:
    """When the pod's containers started, if they did: the pre-running deadline stops counting then."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        times = [cs["state"]["running"]["startedAt"] for cs in status.get("containerStatuses") or []
                 if (cs.get("state") or {}).get("running", {}).get("startedAt")]
        return min(times) if times else status.get("startTime")
    return None


def job_state(job: dict[str, Any] | None) -> tuple[str, str]:
    """("active" | "complete" | "failed" | "suspended" | "missing", message) from the Job's conditions."""
    if job is None:
        return "missing", ""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond["type"] == "Complete":
            return "complete", cond.get("message", "")
        if cond["type"] == "Failed":
            return "failed", f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".rstrip(": ")
    if (job.get("spec") or {}).get("suspend"):
        return "suspended", ""
    return "active", ""


def deployment_ready(deployment: dict[str, Any] | None) -> bool:
    if deployment is None:
        return False
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    return wanted > 0 and (deployment.get("status") or {}).get("readyReplicas", 0) >= wanted
