from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, PrimaryKey


class File(Base):
    """An uploaded dataset or a result file. The bytes live in file storage under `storage_key`."""

    __tablename__ = "files"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    status_details: Mapped[str | None]
    storage_key: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int]
    # From the upload's expires_after; an expired file is gone for every caller.
    expires_at: Mapped[int | None]
