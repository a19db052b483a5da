"""The runner as the operator runs it in a cluster: the gateway is its own service (`w4s gateway`, the only
process with the executors' settings) and the sandbox worker is a separate process reached over TCP
(`w4s.workflow.worker --listen`, a gVisor pod in a cluster; a plain process here). The runner holds no executor
key. The same scripted run done the local way (embedded gateway, local workers) gives the same scores and the
same spend (scripted_llm: an OpenAI-compatible server stands in for the remote providers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from harness import EXECUTOR_MODEL, executor_calls, scripted
from operator_harness import free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

ADMIN = "admin-token-for-remote-tests-0123"


def _run(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "w4s.cli", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=400, env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def _started(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env})


def test_runner_with_gateway_service_and_worker_over_tcp_matches_local_run_scripted_llm(tmp_path, runner_tmp):
    with scripted(iterations=2, sandbox={"concurrency": 3, "samplesPerWorker": 3}) as (server, spec):
        wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        local_cfg, remote_cfg = tmp_path / "local.yaml", tmp_path / "remote.yaml"
        local_cfg.write_text(yaml.safe_dump({**wire, "store": str(tmp_path / "local")}))
        remote_cfg.write_text(yaml.safe_dump({**wire, "store": str(tmp_path / "remote"),
                                              "sandbox": {**wire["sandbox"], "backend": "process"}}))
        local = _run(local_cfg, {"TMPDIR": str(runner_tmp)})
        assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
        calls_local = len(server.calls)
        executor_local = len(executor_calls(server))

        gw_port, worker_port, metrics_port = free_port(), free_port(), free_port()
        gateway = _started([sys.executable, "-m", "w4s.cli", "gateway", "--listen", f"127.0.0.1:{gw_port}",
                            "--config", str(remote_cfg), "--metrics-port", str(metrics_port)],
                           tmp_path / "gateway.log",
                           {"W4S_GATEWAY_ADMIN_TOKEN": ADMIN})
        worker = _started([sys.executable, "-I", "-m", "w4s.workflow.worker", "--listen", f"127.0.0.1:{worker_port}",
                           "--uid-base", "40000"], tmp_path / "worker.log", {})
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{gw_port}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for(up, "the gateway service", timeout=60)
            env = {"W4S_GATEWAY_URL": f"http://127.0.0.1:{gw_port}", "W4S_GATEWAY_ADMIN_TOKEN": ADMIN,
                   "W4S_SANDBOX_SERVICE": "127.0.0.1", "W4S_SANDBOX_PORT": str(worker_port),
                   "TMPDIR": str(runner_tmp)}
            remote = _run(remote_cfg, env)
            assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
            assert "sandbox: remote (sandbox pods behind 127.0.0.1" in remote.stdout
            usage = httpx.get(f"http://127.0.0.1:{gw_port}/v1/usage", timeout=5,
                              headers={"Authorization": f"Bearer {ADMIN}"}).json()
            metrics = {(s.name, s.labels.get("model")): s.value for family in text_string_to_metric_families(
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text) for s in family.samples}
        finally:
            for proc in (gateway, worker):
                proc.terminate()
                proc.wait(20)
        calls_remote = len(server.calls) - calls_local
        executor_remote = len(executor_calls(server)) - executor_local

    read = lambda run: json.loads((tmp_path / run / "result.json").read_text())  # noqa: E731
    a, b = read("local"), read("remote")
    assert b["best_validation_score"] == a["best_validation_score"] and b["test_score"] == a["test_score"]
    assert b["iterations_completed"] == a["iterations_completed"] == 2
    assert calls_remote == calls_local  # every executor call went through the gateway service
    # The runner booked what the gateway reports for each sample: the same spend as the local run's.
    assert b["usage"]["executor"]["cost_usd"] == pytest.approx(a["usage"]["executor"]["cost_usd"], rel=1e-12)
    assert a["usage"]["executor"]["cost_usd"] > 0
    assert usage["total_cost_usd"] == pytest.approx(b["usage"]["executor"]["cost_usd"], rel=1e-12)
    # The gateway's own metrics say the same, by model.
    assert metrics[("w4s_gateway_llm_cost_usd_total", EXECUTOR_MODEL)] == pytest.approx(usage["total_cost_usd"])
    served = metrics[("w4s_gateway_requests_total", None)] - metrics[("w4s_gateway_cache_hits_total", None)]
    assert served - metrics[("w4s_gateway_rejected_total", None)] == executor_remote > 0
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert manifest["sandbox"].startswith("remote")
