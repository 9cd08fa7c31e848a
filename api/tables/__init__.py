"""SQLAlchemy tables, one file each; importing this package registers them all on Base.metadata."""

from api.tables.api_keys import ApiKey
from api.tables.base import Base
from api.tables.files import File
from api.tables.fine_tuning_job_events import FineTuningJobEvent
from api.tables.fine_tuning_jobs import FineTuningJob
from api.tables.projects import Project

__all__ = ["ApiKey", "Base", "File", "FineTuningJob", "FineTuningJobEvent", "Project"]
