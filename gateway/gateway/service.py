"""Accounts. Functions flush, never commit: the caller's unit of work does."""

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import EmailTaken, InvalidCredentials, UserNotFound
from gateway.models import Role, User
from gateway.security import Passwords


async def register_user(
    session: AsyncSession,
    *,
    passwords: Passwords,
    email: str,
    password: str,
    role: Role = Role.CUSTOMER,
) -> User:
    email = email.lower()
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    user = User(email=email, password_hash=await passwords.hash(password), role=role)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # registered concurrently
        raise EmailTaken() from exc
    return user


async def authenticate_user(
    session: AsyncSession, *, passwords: Passwords, email: str, password: str
) -> User:
    user = await session.scalar(select(User).where(User.email == email.lower()))
    valid = await passwords.verify(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise InvalidCredentials()
    return user


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user
