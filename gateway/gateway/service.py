"""Accounts, sign-ins, password resets and API keys. Functions flush, never commit: the
caller's unit of work does."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.pagination import PageParams
from gateway.errors import (
    ApiKeyNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetToken,
    UserNotFound,
)
from gateway.models import ApiKey, AuthSession, PasswordReset, RefreshToken, Role, User
from gateway.security import (
    Passwords,
    Tokens,
    new_api_key,
    new_refresh_token,
    new_reset_token,
    secret_hash,
)


@dataclass(frozen=True)
class SignIn:
    access_token: str
    refresh_token: str


async def register_user(
    session: AsyncSession,
    *,
    passwords: Passwords,
    email: str,
    password: str,
    role: Role = Role.CUSTOMER,
) -> User:
    email = email.lower()
    # Hashed before the first query, so no pooled connection waits on argon2.
    password_hash = await passwords.hash(password)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    user = User(email=email, password_hash=password_hash, role=role)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # registered concurrently
        raise EmailTaken() from exc
    return user


async def find_user(session: AsyncSession, *, email: str) -> User | None:
    user: User | None = await session.scalar(select(User).where(User.email == email.lower()))
    return user


async def check_password(passwords: Passwords, *, user: User | None, password: str) -> User:
    """The user, if the password is theirs and the account active. Call it outside any session:
    argon2 takes tens of milliseconds, and a pooled connection should not wait on it."""
    valid = await passwords.verify(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise InvalidCredentials()
    return user


async def _issue(
    session: AsyncSession, *, tokens: Tokens, user: User, session_id: uuid.UUID
) -> SignIn:
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            session_id=session_id,
            token_hash=secret_hash(refresh),
            expires_at=utcnow() + tokens.refresh_ttl,
        )
    )
    await session.flush()
    return SignIn(access_token=tokens.issue_access(user, session_id), refresh_token=refresh)


async def start_session(session: AsyncSession, *, tokens: Tokens, user: User) -> SignIn:
    auth_session = AuthSession(user_id=user.id)
    session.add(auth_session)
    await session.flush()
    return await _issue(session, tokens=tokens, user=user, session_id=auth_session.id)


async def rotate_refresh_token(
    session: AsyncSession, *, tokens: Tokens, refresh_token: str
) -> SignIn | InvalidRefreshToken:
    """A new pair for a good refresh token. A token used twice ends its whole sign-in session
    (someone has a copy), and that must be committed even though the caller gets a 401: so the
    refusal is returned, not raised."""
    token = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == secret_hash(refresh_token))  # type: ignore[arg-type]
        .with_for_update()
    )
    if token is None:
        return InvalidRefreshToken()
    auth_session = await session.get(AuthSession, token.session_id, with_for_update=True)
    assert auth_session is not None
    user = await session.get(User, auth_session.user_id)
    if auth_session.revoked_at is not None or user is None or not user.is_active:
        return InvalidRefreshToken("This sign-in has ended; sign in again.")
    if token.used_at is not None:
        auth_session.revoked_at, auth_session.revoked_reason = utcnow(), "refresh_token_reused"
        return InvalidRefreshToken("This refresh token was used already; the sign-in has ended.")
    if token.expires_at < utcnow():
        return InvalidRefreshToken("This refresh token has expired; sign in again.")
    token.used_at = utcnow()
    return await _issue(session, tokens=tokens, user=user, session_id=auth_session.id)


async def end_session(session: AsyncSession, *, refresh_token: str) -> None:
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == secret_hash(refresh_token))  # type: ignore[arg-type]
    )
    if token is not None:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == token.session_id, AuthSession.revoked_at.is_(None))  # type: ignore[arg-type, union-attr]
            .values(revoked_at=utcnow(), revoked_reason="signed_out")
        )


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def list_users(session: AsyncSession, *, page: PageParams) -> tuple[list[User], int]:
    count = await session.scalar(select(func.count()).select_from(User))
    users = await session.scalars(
        select(User).order_by(User.created_at, User.id).offset(page.offset).limit(page.size)  # type: ignore[arg-type]
    )
    return list(users.all()), count or 0


async def change_role(session: AsyncSession, *, user_id: uuid.UUID, role: Role) -> User:
    user = await get_user(session, user_id=user_id)
    user.role = role
    await session.flush()
    return user


async def sign_out_everywhere(
    session: AsyncSession, *, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
) -> None:
    """End every session of the account still open (but `keep`), saying why."""
    still_open = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]  # type: ignore[arg-type, union-attr]
    if keep is not None:
        still_open.append(AuthSession.id != keep)  # type: ignore[arg-type]
    await session.execute(
        update(AuthSession).where(*still_open).values(revoked_at=utcnow(), revoked_reason=reason)
    )


async def deactivate_user(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await get_user(session, user_id=user_id)
    user.is_active = False
    await sign_out_everywhere(session, user_id=user_id, reason="deactivated")
    await session.flush()
    return user


async def create_api_key(
    session: AsyncSession, *, name: str, role: Role, created_by: uuid.UUID
) -> tuple[ApiKey, str]:
    key = new_api_key()
    api_key = ApiKey(
        name=name, role=role, key_hash=secret_hash(key), prefix=key[:10], created_by=created_by
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    keys = await session.scalars(select(ApiKey).order_by(ApiKey.created_at))  # type: ignore[arg-type]
    return list(keys.all())


async def revoke_api_key(session: AsyncSession, *, key_id: uuid.UUID) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise ApiKeyNotFound()
    key.revoked_at = key.revoked_at or utcnow()
    await session.flush()


async def update_account(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    name: str | None,
    password_hash: str | None,
    keep_session: uuid.UUID | None,
) -> User:
    """Change an account's name and password; a new password signs out every other session."""
    user = await get_user(session, user_id=user_id)
    if name is not None:
        user.name = name
    if password_hash is not None:
        user.password_hash = password_hash
        await sign_out_everywhere(
            session, user_id=user_id, reason="password_changed", keep=keep_session
        )
    await session.flush()
    return user


@dataclass(frozen=True)
class ResetStarted:
    email: str
    token: str


async def start_password_reset(
    session: AsyncSession, *, email: str, valid_for: timedelta
) -> ResetStarted | None:
    """A reset token for the account with this address, or None if there is no such active
    account (the caller answers the same either way)."""
    user = await find_user(session, email=email)
    if user is None or not user.is_active:
        return None
    token = new_reset_token()
    session.add(
        PasswordReset(
            user_id=user.id, token_hash=secret_hash(token), expires_at=utcnow() + valid_for
        )
    )
    await session.flush()
    return ResetStarted(email=user.email, token=token)


async def _usable_reset(
    session: AsyncSession, *, token: str, for_update: bool = False
) -> PasswordReset:
    query = select(PasswordReset).where(PasswordReset.token_hash == secret_hash(token))  # type: ignore[arg-type]
    reset = await session.scalar(query.with_for_update() if for_update else query)
    if reset is None or reset.used_at is not None or reset.expires_at < utcnow():
        raise InvalidResetToken()
    return reset


async def check_reset_token(session: AsyncSession, *, token: str) -> None:
    """Refuse a used, expired or unknown token before the new password is hashed."""
    await _usable_reset(session, token=token)


async def reset_password(session: AsyncSession, *, token: str, password_hash: str) -> User:
    """Set the account's password; the token, and any other the account still holds, stop
    working, and every session of the account is signed out."""
    reset = await _usable_reset(session, token=token, for_update=True)
    user = await session.get(User, reset.user_id)
    if user is None or not user.is_active:
        raise InvalidResetToken()
    user.password_hash = password_hash
    await session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))  # type: ignore[arg-type, union-attr]
        .values(used_at=utcnow())
    )
    await sign_out_everywhere(session, user_id=user.id, reason="password_reset")
    await session.flush()
    return user
