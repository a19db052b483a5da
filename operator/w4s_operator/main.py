"""``w4s-operator``: run the operator, with its metrics on /metrics and its liveness on /healthz."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import kopf
from prometheus_client import start_http_server

from w4s_operator import handlers
from w4s_operator.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="w4s-operator", description="Run the w4s Kubernetes operator.")
    parser.add_argument("--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable; default: $W4S_WATCH_NAMESPACES, else all)")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, the service account, ~/.kube/config")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 8080; 0: off)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # one line per request or per watch event drowns what the operator decided
        for name in ("httpx", "kopf.objects"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    settings = Settings.from_env()
    namespaces = tuple(args.namespace) or settings.namespaces
    rt = handlers.build_runtime(settings, args.kubeconfig)
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        start_http_server(port, registry=rt.metrics.registry)
    asyncio.run(kopf.operator(standalone=True, clusterwide=not namespaces, namespaces=namespaces,
                              liveness_endpoint=args.liveness or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
