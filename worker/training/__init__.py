"""Tunery's training library: a job spec in, a PEFT adapter and per-step metrics out.

It knows no database, no API and no queue: `python -m worker.training spec.json` runs one training
and reports its progress as JSON lines on stdout (see `progress.py`), so a person can run it by hand.
"""
