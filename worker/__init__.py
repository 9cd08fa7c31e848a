"""Tunery's worker: Celery tasks that validate and train jobs, and the pure training library."""
