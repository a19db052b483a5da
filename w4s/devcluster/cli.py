"""``w4s dev cluster up|down --dir DIR``: a local control plane that outlives the command, for trying the
operator on a laptop. ``up`` prints only ``export KUBECONFIG=...`` on stdout (progress goes to stderr), so
``eval "$(w4s dev cluster up --dir DIR)"`` points the shell at it."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from rich.console import Console

from w4s.devcluster.cluster import LocalCluster


def add_parser(subparsers: Any) -> None:
    """Add ``dev cluster up|down`` to the ``w4s`` command's subparsers."""
    dev = subparsers.add_parser("dev", help="developer tools (a local Kubernetes control plane)")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    cluster = dev_sub.add_parser(
        "cluster", help="start or stop a local Kubernetes control plane",
        description="etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 (no nodes: pods stay Pending), "
                    "state and logs under --dir. The first `up` builds the Kubernetes commands with Go (minutes).")
    actions = cluster.add_subparsers(dest="action", required=True)
    for action, text in (("up", "start it in the background and print `export KUBECONFIG=...`"),
                         ("down", "stop every process `up` started in --dir")):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("--dir", required=True, help="the cluster's directory (kept: certificates, etcd data)")


def cmd_dev(args: argparse.Namespace, console: Console) -> int:
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    cluster = LocalCluster(args.dir, log=lambda m: err.print(f"[dim]{m}[/dim]"), detach=True)
    if args.action == "up":
        cluster.start()
        err.print(f"kubeconfig: {cluster.kubeconfig}; stop with `w4s dev cluster down --dir {args.dir}`")
        print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}")
        return 0
    if not cluster.pids_file.exists():
        err.print(f"no cluster running in {cluster.dir}")
        return 0
    cluster.stop()
    err.print(f"stopped the cluster in {cluster.dir}")
    return 0
