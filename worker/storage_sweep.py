"""Objects in the bucket that no row names any more, left by a process cut off half-way.

The database is the truth: every object is written before the row that names it, so an upload, a
worker or a job that was cut off between the two leaves objects nothing will ever read:
- multipart uploads never completed (a process killed mid-upload): their parts cost storage;
- `files/...` without a file row (an upload or a result file whose transaction never committed);
- `jobs/<job>/...`, the resumable checkpoints of a job that has ended (at once: it never resumes);
- `artifacts/<job>/adapter/...` of an ended job without a standing model (it failed or was cancelled
  after its model went up, or the delete's own clean-up was cut off).
The others are removed only once older than GRACE_SECONDS, far longer than an object waits for its row.
On the local backend the staging sweep (api/files/storage.py) and the work-directory sweep
(worker/reconciler.py) do this job already.
"""

from __future__ import annotations

import logging
import time

from api.db import session_scope
from api.files import repository as files
from api.files.storage import KEY_PREFIX
from api.fine_tuning import repository as jobs
from api.fine_tuning.status import TERMINAL
from api.storage import store_of
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker.storage_sweep")

GRACE_SECONDS = 3600
BATCH = 500


def sweep_storage(rt: Runtime, grace_seconds: float = GRACE_SECONDS) -> dict[str, int]:
    """One pass over the bucket; returns how many objects (or uploads) of each kind went."""
    store = store_of(rt.settings)
    if not store.remote:
        return {}
    cutoff = time.time() - grace_seconds
    done = {"uploads": store.abort_stale_uploads(grace_seconds), "files": 0, "jobs": 0, "adapters": 0}
    old = [found for found in store.objects(KEY_PREFIX) if found.modified < cutoff]
    for start in range(0, len(old), BATCH):
        batch = {found.key.removeprefix(KEY_PREFIX): found.key for found in old[start : start + BATCH]}
        with session_scope(rt.sessions, writes=False) as session:
            known = files.known_keys(session, list(batch))
        for key, object_key in batch.items():
            if key not in known:
                store.delete(object_key)
                done["files"] += 1
    resumable = store.children("jobs/")
    artifact_jobs = store.children("artifacts/")
    with session_scope(rt.sessions, writes=False) as session:
        statuses = jobs.statuses_of(session, sorted(set(resumable) | set(artifact_jobs)))
        with_models = jobs.with_live_models(session, artifact_jobs)
    for job_id in resumable:
        if statuses.get(job_id) in TERMINAL:
            done["jobs"] += store.delete_prefix(f"jobs/{job_id}/")
    for job_id in artifact_jobs:
        if statuses.get(job_id) in TERMINAL and job_id not in with_models:
            adapter = f"artifacts/{job_id}/adapter/"
            if all(found.modified < cutoff for found in store.objects(adapter)):
                done["adapters"] += store.delete_prefix(adapter)
    if any(done.values()):
        log.warning("storage sweep removed: %s", done)
    return done
