"""Eval runs on the workers: run.py claims a queued run and grades its items in batches under a lease,
grading.py turns one item into its output item, reconcile.py rings again for runs the queue forgot."""
