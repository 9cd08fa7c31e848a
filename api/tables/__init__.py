"""SQLAlchemy tables, one file each; importing this package registers them all on Base.metadata."""

from api.tables.api_keys import ApiKey
from api.tables.base import Base
from api.tables.checkpoint_permissions import CheckpointPermission
from api.tables.eval_output_items import EvalOutputItem
from api.tables.eval_runs import EvalRun
from api.tables.evals import Eval
from api.tables.files import File
from api.tables.fine_tuning_checkpoints import FineTuningCheckpoint
from api.tables.fine_tuning_job_events import FineTuningJobEvent
from api.tables.fine_tuning_jobs import FineTuningJob
from api.tables.projects import Project
from api.tables.webhook_deliveries import WebhookAttempt, WebhookDelivery
from api.tables.webhook_endpoints import WebhookEndpoint
from api.tables.workers import Worker

__all__ = [
    "ApiKey",
    "Base",
    "CheckpointPermission",
    "Eval",
    "EvalOutputItem",
    "EvalRun",
    "File",
    "FineTuningCheckpoint",
    "FineTuningJob",
    "FineTuningJobEvent",
    "Project",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Worker",
]
