"""What the autoscaler decided, for the log and the ops dashboard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from orders.db import Base, utcnow


class ScalingDecision(Base):
    __tablename__ = "scaling_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    queue: Mapped[str] = mapped_column(String(20))
    depth: Mapped[int]
    workers_before: Mapped[int]
    workers_after: Mapped[int]
    host: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(200))
