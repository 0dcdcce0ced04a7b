"""Column helpers every app's models use: UTC timestamps and JSONB-backed pydantic fields."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field() -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)


def jsonb_field(**kwargs: Any) -> Any:
    return Field(sa_type=JSONB, **kwargs)
