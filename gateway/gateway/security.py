"""Credentials: passwords (argon2id), access tokens (JWT), refresh tokens and API keys.

An access token names its user and sign-in session. Every request's session and account (or
API key) is checked against the database, through a cache of a few seconds, so signing out,
deactivating an account, changing a role or revoking a key takes effect within that time.
"""

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import anyio.to_thread
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select
from starlette.datastructures import Headers

from bookstore_shared.db import Database
from bookstore_shared.identity import Principal
from gateway.config import Settings
from gateway.errors import InvalidApiKey, InvalidToken
from gateway.models import ApiKey, AuthSession, Role, User

JWT_ALGORITHM = "HS256"
VERIFIED_TOKENS_KEPT = 50_000
API_KEY_PREFIX = "bk_"
# OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
_ARGON2 = Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1)
T = TypeVar("T")


def secret_hash(secret: str) -> str:
    """Refresh tokens, reset tokens and API keys are long random strings: a plain SHA-256 is
    enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_reset_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class Passwords:
    def __init__(self, *, concurrency: int) -> None:
        self._hasher = PasswordHash((_ARGON2,))
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Checks against a throwaway hash when there is no user, so timing gives nothing away."""
        if password_hash is None:
            self._dummy_hash = self._dummy_hash or await self.hash(uuid.uuid4().hex)
            password_hash = self._dummy_hash
        async with self._slots:
            return await anyio.to_thread.run_sync(self._hasher.verify, password, password_hash)


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.access_ttl = timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = timedelta(days=settings.refresh_token_days)
        # Access tokens verified already: token → (expiry, what it names).
        self._verified: dict[str, tuple[float, tuple[uuid.UUID, uuid.UUID]]] = {}

    def issue_access(self, user: User, session_id: uuid.UUID) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user.id),
            "sid": str(session_id),
            "roles": [user.role.value],
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def read_access(self, token: str) -> tuple[uuid.UUID, uuid.UUID]:
        """The (user id, session id) a valid access token names. A token once verified is
        kept until it expires (its signature and claims cannot change): a client's next
        requests skip the HMAC and the claim checks."""
        verified = self._verified.get(token)
        if verified is not None and verified[0] > time.time():
            return verified[1]
        return self._verify_access(token)

    def _verify_access(self, token: str) -> tuple[uuid.UUID, uuid.UUID]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["iss", "aud", "sub", "sid", "exp", "iat", "nbf", "jti"]},
            )
            if claims.get("typ") != "access":
                raise InvalidToken("Not an access token.")
            named = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken() from exc
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), named)
        return named


class _TtlCache:
    def __init__(self, seconds: float, max_entries: int = 50_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[object, tuple[float, object]] = {}

    async def get(self, key: object, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]  # type: ignore[return-value]
        value = await load()
        if self.seconds > 0:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (now + self.seconds, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


class Identities:
    """Who the credentials on a request belong to, or a 401."""

    def __init__(self, *, db: Database, tokens: Tokens, cache_seconds: float) -> None:
        self._db = db
        self._tokens = tokens
        self._cache = _TtlCache(cache_seconds)

    def forget(self) -> None:
        """Drop cached checks (this replica changed an account, a session or a key)."""
        self._cache.clear()

    async def principal(self, headers: Headers, *, request_id: str | None) -> Principal:
        if api_key := headers.get("x-api-key"):
            found = await self._cache.get(("key", api_key), lambda: self._load_key(api_key))
            if found is None:
                raise InvalidApiKey()
            key_id, role = found
            return Principal(user_id=key_id, roles=frozenset({role}), request_id=request_id)
        authorization = headers.get("authorization")
        if not authorization:
            return Principal(request_id=request_id)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Use `Authorization: Bearer <access token>`.")
        user_id, session_id = self._tokens.read_access(token.strip())
        role = await self._cache.get(
            ("session", session_id), lambda: self._load_session(user_id, session_id)
        )
        if role is None:
            raise InvalidToken("This sign-in has ended; sign in again.")
        # The role is read from the account, so a role change applies to tokens already out.
        return Principal(user_id=user_id, roles=frozenset({role}), request_id=request_id)

    async def _load_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(User.role, User.is_active, AuthSession.revoked_at)
                    .join(AuthSession, AuthSession.user_id == User.id)  # type: ignore[arg-type]
                    .where(User.id == user_id, AuthSession.id == session_id)  # type: ignore[arg-type]
                )
            ).first()
        if row is None or not row.is_active or row.revoked_at is not None:
            return None
        return Role(row.role).value

    async def _load_key(self, api_key: str) -> tuple[uuid.UUID, str] | None:
        if not api_key.startswith(API_KEY_PREFIX):
            return None
        async with self._db.sessions() as session:
            key = await session.scalar(
                select(ApiKey).where(
                    ApiKey.key_hash == secret_hash(api_key),  # type: ignore[arg-type]
                    ApiKey.revoked_at.is_(None),  # type: ignore[union-attr]
                )
            )
        return (key.id, Role(key.role).value) if key is not None else None
