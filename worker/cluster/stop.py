"""`python -m worker.cluster.stop CHANNEL`: ask a run on this cluster to checkpoint and stop (a pause).

The driver submits this as a Ray job of its own: the Job Submission API can only kill a job's
entrypoint (SIGKILL three seconds after SIGTERM), too soon for a checkpoint. Every rank reads the
request (rank.py) and sends its trainer SIGTERM; the ranks agree on the step to stop at.
"""

from __future__ import annotations

import sys

import ray

from worker.cluster.channel import NAMESPACE


def main(argv: list[str]) -> int:
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    try:
        channel = ray.get_actor(argv[0])
    except ValueError:
        print(f"no run with channel {argv[0]} on this cluster: it has ended", file=sys.stderr)
        return 0
    ray.get(channel.request_stop.remote())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
