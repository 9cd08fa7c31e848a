"""`tunery models export MODEL --format adapter|merged -o DIR`: what the download route gives, written
to a directory on this machine, with a progress bar. Run beside the data directory (no API key: the
operator of the data directory may read every project's models). A merged export not yet made is made
here, in this process, and kept for the API to serve too."""

from __future__ import annotations

import shutil
from pathlib import Path

from tqdm import tqdm

from api.checkpoints import repository as checkpoint_rows
from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.files.storage import FileStorage
from api.fine_tuning import artifacts
from api.fine_tuning import repository as job_rows
from api.models.downloads import export_ready
from api.models.serving import ADAPTER_CONFIG
from api.models.store import ModelStore
from worker.jobs.export import export_model
from worker.runtime import Runtime
from worker.training.merge import STAGES


class ExportError(Exception):
    """What a person must change; printed without a traceback."""


def export(settings: Settings, model: str, format: str, out: Path) -> Path:
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty: name a new directory.")
    job_id, step = _find(settings, model)
    source = (
        artifacts.adapter_dir(settings, job_id)
        if step is None
        else artifacts.checkpoint_dir(settings, job_id, step)
    )
    if not artifacts.fetch(settings, source):  # on S3: downloaded from the bucket
        raise ExportError(f"The files of {model} are no longer stored.")
    if format == "merged" and (source / ADAPTER_CONFIG).exists():
        source = _merged(settings, job_id, step)
        if not artifacts.fetch(settings, source):
            raise ExportError(f"The merged export of {model} is no longer stored.")
    _copy(source, out)
    return out


def _find(settings: Settings, model: str) -> tuple[str, int | None]:
    engine = make_engine(settings)
    try:
        with session_scope(make_sessionmaker(engine), writes=False) as session:
            job = job_rows.by_fine_tuned_model(session, None, model)
            if job is not None:
                return job.id, None
            row = checkpoint_rows.by_model_name(session, None, model)
            if row is not None:
                return row.job.id, row.step_number
    finally:
        engine.dispose()
    raise ExportError(f"No fine-tuned or checkpoint model '{model}' (see GET /v1/models).")


def _merged(settings: Settings, job_id: str, step: int | None) -> Path:
    ready = artifacts.merged_dir(settings, job_id, step)
    if export_ready(settings, ready):
        return ready
    with tqdm(total=len(STAGES), desc="merge", unit="stage") as bar:

        def on_stage(name: str) -> None:
            bar.set_postfix_str(name)
            if name != STAGES[0]:
                bar.update(1)

        engine = make_engine(settings)
        rt = Runtime(
            settings,
            make_sessionmaker(engine),
            FileStorage.of(settings),
            ModelStore(settings.models_path),
        )
        try:
            made = export_model(rt, job_id, step, on_stage=on_stage)
        finally:
            engine.dispose()
        bar.update(bar.total - bar.n)
    if made is None:
        raise ExportError("The merged export was not made: see the job's events for why.")
    return made


def _copy(source: Path, out: Path) -> None:
    files = sorted(p for p in source.rglob("*") if p.is_file())
    with tqdm(total=sum(p.stat().st_size for p in files), desc="copy", unit="B", unit_scale=True) as bar:
        for path in files:
            target = out / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as reading, target.open("wb") as writing:
                while chunk := reading.read(1024 * 1024):
                    writing.write(chunk)
                    bar.update(len(chunk))
            shutil.copystat(path, target)
