from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.tables.base import Base, PrimaryKey
from api.tables.projects import Project


class ApiKey(Base):
    """A bearer key. Only its sha256 is stored: keys are long random strings, not passwords."""

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so a person can tell keys apart in a listing.
    display_prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[int]
    revoked_at: Mapped[int | None]

    project: Mapped[Project] = relationship(lazy="joined", innerjoin=True)
