from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class Worker(Base):
    """A worker process as it registered itself: what it has, and when it last said it is alive.

    The job rows stay the truth about jobs (their leases); this table is what operators and the
    scheduler read to know which machines exist, what GPUs they offer and which are gone.
    """

    __tablename__ = "workers"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    # The same id the worker writes into the leases of the jobs it trains (worker/runtime.py).
    id: Mapped[str] = mapped_column(String(128), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pool: Mapped[str] = mapped_column(String(64), index=True)
    queues: Mapped[list[str]] = mapped_column(JSONType)
    gpu_count: Mapped[int] = mapped_column(default=0)
    # Per GPU: the pool's promise to the scheduler (the smallest card's memory when they differ).
    gpu_memory_bytes: Mapped[int | None]
    gpu_names: Mapped[list[str]] = mapped_column(JSONType)
    started_at: Mapped[int]
    last_heartbeat_at: Mapped[int] = mapped_column(index=True)
    # Set on a clean shutdown; a worker without it whose heartbeat is old was lost.
    stopped_at: Mapped[int | None]
