from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, PrimaryKey


class Project(Base):
    """A tenant: files, jobs, models and keys each belong to one project."""

    __tablename__ = "projects"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int]
