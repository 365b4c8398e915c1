"""Request counts of organizations per quota window, shared by every API replica of a deployment."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Integer, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ember.store.tables import Base


class RateCount(Base):
    """How many requests an organization made in one fixed window (`window_s` long, numbered `window`)."""

    __tablename__ = "rate_counts"

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    window_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
