"""`tunery workers list` and `tunery workers check`: the registry from the command line.

`check` is the worker container's healthcheck: it passes while a worker of this host (the
container's hostname) is registered with a fresh heartbeat, so a worker wedged or cut off from the
database is restarted by its orchestrator.
"""

from __future__ import annotations

import argparse
import socket
import sys

from api import clock
from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.workers.service import ACTIVE, list_workers
from catalog.sizes import format_bytes


def add_commands(commands: argparse._SubParsersAction) -> None:
    workers = commands.add_parser("workers", help="the worker registry").add_subparsers(
        title="workers commands"
    )
    listing = workers.add_parser("list", help="every registered worker: pool, GPUs, state, job")
    listing.set_defaults(run=cmd_list)
    check = workers.add_parser("check", help="exit 0 while a worker of this host heartbeats (a healthcheck)")
    check.add_argument("--hostname", default=None, help="default: this machine's (the container's) hostname")
    check.set_defaults(run=cmd_check)


def _views(settings: Settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings)
    try:
        with session_scope(make_sessionmaker(engine), writes=False) as session:
            views = list_workers(session, now=clock.now(), lost_after=settings.lease_seconds)
            return [(view, view.worker.hostname) for view in views]
    finally:
        engine.dispose()


def cmd_list(_args: argparse.Namespace) -> None:
    now = clock.now()
    for view, _ in _views(Settings()):
        worker = view.worker
        memory = f" x {format_bytes(worker.gpu_memory_bytes)}" if worker.gpu_memory_bytes else ""
        print(
            f"{worker.id}\t{worker.pool}\t{worker.gpu_count} GPU{memory}\t{view.state}\t"
            f"{now - worker.last_heartbeat_at}s ago\t{view.job_id or '-'}"
        )


def cmd_check(args: argparse.Namespace) -> int:
    hostname = args.hostname or socket.gethostname()
    alive = [view for view, host in _views(Settings()) if host == hostname and view.state == ACTIVE]
    if not alive:
        print(f"tunery: no worker on {hostname} has a fresh heartbeat", file=sys.stderr)
        return 1
    print(f"{len(alive)} worker(s) on {hostname} heartbeating")
    return 0
