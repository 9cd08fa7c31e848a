"""`python -m worker.training spec.json`: run one training, speaking the JSON-lines protocol on stdout.

Exit status 0 after a `completed` or `stopped` line (SIGTERM: see checkpoints.py), 1 after a `failed`
line. Cheap checks (the spec, the paths it
names) run before torch is imported, so that a mistake fails in a second with a message saying what
to change.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from worker.training.progress import Completed, ProgressWriter, Stopped, take_over_stdout
from worker.training.spec import TrainingSpec

if TYPE_CHECKING:
    from worker.training.artifacts import StoppedOutcome, TrainingOutcome


class RunFailure(Exception):
    """A failure with the code that the `failed` line carries."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def main(argv: list[str]) -> int:
    progress = take_over_stdout()
    # The base model is a local directory: nothing here may reach the Hugging Face hub, and a hub
    # lookup on an air-gapped GPU node would only hang. Tokenizer threads would warn after a fork.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        spec = _read_spec(argv)
        _check_paths(spec)
        outcome = _train(spec, progress)
    except RunFailure as failure:
        progress.failed(failure.code, failure.message)
        return 1
    except Exception as error:
        traceback.print_exc()  # to stderr, which the worker keeps as the job's log
        progress.failed(*_classify(error))
        return 1
    from worker.training.artifacts import StoppedOutcome

    if isinstance(outcome, StoppedOutcome):
        resume_from = str(outcome.resume_from) if outcome.resume_from else None
        progress.emit(Stopped(step=outcome.step, resume_from=resume_from))
        return 0
    progress.emit(
        Completed(
            trained_tokens=outcome.trained_tokens,
            artifact_dir=str(outcome.artifact_dir),
            artifact_format=outcome.artifact_format,
            result_file=str(outcome.result_file),
            labels=outcome.labels,
        )
    )
    return 0


def _read_spec(argv: list[str]) -> TrainingSpec:
    if len(argv) != 1:
        raise RunFailure("invalid_spec", "usage: python -m worker.training path/to/spec.json")
    try:
        return TrainingSpec.read(Path(argv[0]))
    except FileNotFoundError:
        raise RunFailure("invalid_spec", f"spec file not found: {argv[0]}") from None
    except json.JSONDecodeError as error:
        raise RunFailure("invalid_spec", f"spec file is not valid JSON: {error}") from None
    except (TypeError, ValueError) as error:
        # Missing or unknown fields (TypeError from the dataclass) and values the spec refuses.
        raise RunFailure("invalid_spec", str(error)) from None


def _check_paths(spec: TrainingSpec) -> None:
    if not Path(spec.base_model_dir, "config.json").is_file():
        raise RunFailure(
            "invalid_base_model", f"no model (config.json) in base_model_dir {spec.base_model_dir}"
        )
    if not Path(spec.training_file).is_file():
        raise RunFailure("invalid_training_file", f"training file not found: {spec.training_file}")
    if spec.validation_file and not Path(spec.validation_file).is_file():
        raise RunFailure("invalid_validation_file", f"validation file not found: {spec.validation_file}")
    if spec.resume_from and not Path(spec.resume_from, "trainer_state.json").is_file():
        raise RunFailure(
            "invalid_resume_checkpoint", f"resume_from {spec.resume_from} is not a resumable checkpoint"
        )


def _train(spec: TrainingSpec, progress: ProgressWriter) -> TrainingOutcome | StoppedOutcome:
    # Imported here: torch, transformers and TRL take seconds to import, and the checks above should not wait.
    from worker.training.run import train

    return train(spec, progress)


def _classify(error: Exception) -> tuple[str, str]:
    from worker.training.checkpoints import ResumeError
    from worker.training.data import ChatTemplateError, DatasetError
    from worker.training.spec import RecipeError

    if isinstance(error, RecipeError):
        return "invalid_recipe", str(error)
    if isinstance(error, ResumeError):
        return "invalid_resume_checkpoint", str(error)
    if isinstance(error, DatasetError):
        return f"invalid_{error.purpose}_file", str(error)
    if isinstance(error, ChatTemplateError):
        return "unsupported_chat_template", str(error)
    return "training_error", f"{type(error).__name__}: {error}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
