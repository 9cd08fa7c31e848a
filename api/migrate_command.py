"""`tunery migrate [--wait SECONDS]`: apply the migrations, or wait until another process has.

`--wait` is what a Kubernetes pod's init container runs (deploy/kubernetes/): the migration Job
applies them once, and each pod that uses the database starts only when the database is at its
release's head (api/migrations.py says when that is).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from api.config import Settings


def add_command(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="apply database migrations")
    wait = "apply none: wait until another process (a Job) has migrated the database; exit 1 past SECONDS"
    migrate.add_argument("--wait", type=float, metavar="SECONDS", help=wait)
    migrate.set_defaults(run=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from api.migrations import upgrade, wait_for_head

    settings = Settings()
    if args.wait is not None:
        reason = wait_for_head(settings, args.wait)
        print(f"tunery: {reason}" if reason else "database at this release's head", file=sys.stderr)
        return 1 if reason else 0
    upgrade(settings)
    url = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    print(f"database at revision head ({url})")
    return 0
