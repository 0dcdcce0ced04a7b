"""Passwords (argon2id, off the event loop, capped) and access tokens (JWT, pinned algorithm)."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import anyio.to_thread
import jwt
from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from bookstore_shared.identity import Principal
from gateway.config import Settings
from gateway.errors import InvalidToken
from gateway.models import User

JWT_ALGORITHM = "HS256"
# OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
_ARGON2 = Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1)


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

    def issue_access(self, user: User) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user.id),
            "roles": [user.role.value],
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def principal_from_access(self, token: str, *, request_id: str | None) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["iss", "aud", "sub", "exp", "iat", "jti"]},
            )
            if claims.get("typ") != "access":
                raise InvalidToken("Not an access token.")
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                roles=frozenset(claims.get("roles") or ()),
                request_id=request_id,
            )
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc


def authenticate(request: Request) -> Principal:
    """The caller's principal from `Authorization: Bearer`; anonymous if there is none.

    A token that is present but bad is a 401, never a silent fall back to anonymous.
    """
    request_id = correlation_id.get()
    header = request.headers.get("authorization")
    if not header:
        return Principal(request_id=request_id)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Use `Authorization: Bearer <access token>`.")
    tokens: Tokens = request.app.state.tokens
    return tokens.principal_from_access(token.strip(), request_id=request_id)


def require_user(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_authenticated:
        raise InvalidToken("Sign in first: POST /api/auth/token.")
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]
