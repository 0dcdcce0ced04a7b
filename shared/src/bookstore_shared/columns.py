"""Field helpers every app's models use: UTC timestamps, JSONB-backed pydantic fields, and
whole numbers in requests."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BeforeValidator
from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def _refuse_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true or false")
    return value


# A count or score in a request: a JSON integer (72 or 72.0), never a boolean.
WholeNumber = Annotated[int, BeforeValidator(_refuse_bool)]


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
