"""Column helpers every app's models use: UTC timestamps and JSONB-backed pydantic fields."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field() -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)


def enum_field(enum: type[StrEnum], *, default: StrEnum | None, length: int = 20) -> Any:
    """A StrEnum stored as VARCHAR holding its values (no database enum type to migrate)."""
    column_type = sa.Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        name=f"{enum.__name__.lower()}_known",
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )
    return Field(default=default, sa_type=column_type)


def jsonb_field(**kwargs: Any) -> Any:
    return Field(sa_type=JSONB, **kwargs)
