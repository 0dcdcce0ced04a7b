"""Accounts: who may sign in, with which role. Passwords are stored only as argon2id hashes."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, EmailStr
from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from bookstore_shared.columns import enum_field, timestamp_field

SCHEMA = "gateway"


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=255)
    role: Role = enum_field(Role, default=Role.CUSTOMER)
    is_active: bool = True
    created_at: datetime = timestamp_field()


class UserRegister(SQLModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=8, max_length=128)


class UserPublic(SQLModel):
    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")
