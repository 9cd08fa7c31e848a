from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class WebhookEndpoint(Base):
    """A project's URL that is told when its jobs end (Tunery's extension of the OpenAI API)."""

    __tablename__ = "webhook_endpoints"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSONType)
    # Kept in the clear: the server signs with it. Shown to the user once, when the endpoint is made.
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int]
