"""Multi-node training (recipe `num_nodes` above 1) on an existing engine: Ray Train on a Ray cluster.

The worker that takes the job is the driver. It submits the run to the cluster at
TUNERY_RAY_ADDRESS as a Ray job (driver.py, through the Job Submission API: plain HTTP to the
head's dashboard port), follows the job's log, and relays the progress lines in it to the job exactly
as it relays a local trainer's (the protocol of worker/training/progress.py, read by
worker/supervisor.py's `read_line`). On the cluster, the job's entrypoint (entrypoint.py) runs a Ray
Train `TorchTrainer` whose workers each start the ordinary trainer process as one rank (rank.py);
rank 0's protocol lines travel back through a small actor (channel.py) to the entrypoint's stdout.
"""
