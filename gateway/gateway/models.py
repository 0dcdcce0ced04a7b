"""Accounts: who may sign in, with which role. Passwords are stored only as argon2id hashes."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, EmailStr, WithJsonSchema, model_validator
from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Uuid
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
    name: str | None = Field(default=None, max_length=200)
    password_hash: str = Field(max_length=255)
    role: Role = enum_field(Role, default=Role.CUSTOMER)
    is_active: bool = True
    created_at: datetime = timestamp_field()


class AuthSession(SQLModel, table=True):
    """One sign-in: its refresh tokens form a family; revoking it ends them all."""

    __tablename__ = "auth_sessions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = timestamp_field()
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_reason: str | None = Field(default=None, max_length=40)


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored as its hash. Each is good for one refresh only."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey(f"{SCHEMA}.auth_sessions.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()


class PasswordReset(SQLModel, table=True):
    """A password reset asked for by mail: its token, stored as its hash, works once."""

    __tablename__ = "password_resets"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()


class ApiKey(SQLModel, table=True):
    """A key for a program rather than a person, acting with one role; stored as its hash."""

    __tablename__ = "api_keys"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100)
    role: Role = enum_field(Role, default=Role.CUSTOMER)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12)
    created_by: uuid.UUID
    created_at: datetime = timestamp_field()
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# email-validator refuses addresses on special-use domains (RFC 6761: .local, .test ...);
# the schema says so, so that no client takes such an address for a valid one.
SPECIAL_USE_DOMAIN = r"^(?!.*[.@](?:arpa|invalid|local|localhost|onion|test)$)"
EmailAddress = Annotated[
    EmailStr,
    WithJsonSchema(
        {"type": "string", "format": "email", "pattern": SPECIAL_USE_DOMAIN, "maxLength": 320}
    ),
]


class UserRegister(SQLModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(max_length=320)
    password: str = Field(min_length=8, max_length=128)


class PasswordResetRequest(SQLModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(max_length=320)


class PasswordResetConfirm(SQLModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=20, max_length=100, description="The token from the mail")
    new_password: str = Field(min_length=8, max_length=128)


class UserPublic(SQLModel):
    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    is_active: bool
    created_at: datetime


class AccountUpdate(SQLModel):
    """What an account may change of itself: its name, and its password given the current one.
    Fields left out stay as they are (an empty change changes nothing)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"dependentRequired": {"new_password": ["current_password"]}},
    )

    name: str = Field(default=None, min_length=1, max_length=200)
    current_password: str = Field(default=None, max_length=128)
    new_password: str = Field(default=None, min_length=8, max_length=128)

    @model_validator(mode="after")
    def _current_with_new(self) -> "AccountUpdate":
        if self.new_password is not None and self.current_password is None:
            raise ValueError("a new password needs the current one")
        return self


class Token(SQLModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(SQLModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


class ApiKeyCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyPublic(SQLModel):
    id: uuid.UUID
    name: str
    role: Role
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, never again")


class RoleChange(SQLModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
