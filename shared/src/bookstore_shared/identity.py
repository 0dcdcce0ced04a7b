"""The identity assertion: how the gateway tells an app who is calling.

The gateway authenticates the client, then signs a short-lived JWT naming the principal
(user id, roles, request id) and sends it in `X-Identity-Assertion`. Apps trust nothing
else: `IdentityMiddleware` refuses any request without a valid assertion with a 401, so an
app is reachable only through the gateway. Client-sent identity headers mean nothing.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from bookstore_shared.errors import Forbidden, Unauthorized, problem_from_error

ASSERTION_HEADER = "x-identity-assertion"
# Headers a client might send to pose as someone; the gateway strips them all.
IDENTITY_HEADERS = frozenset({ASSERTION_HEADER, "x-user-id", "x-user-roles", "x-user-role"})
ISSUER = "bookstore-gateway"
AUDIENCE = "bookstore-apps"
ALGORITHM = "HS256"

ROLES = ("customer", "staff", "admin")


class Principal(BaseModel):
    """Who is calling. `user_id` is None for an anonymous client of a public route."""

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID | None = None
    roles: frozenset[str] = frozenset()
    request_id: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & {"staff", "admin"})

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def can_see(self, owner_id: uuid.UUID | None) -> bool:
        """Staff see everything; anyone else only what they own."""
        return self.is_staff or (self.user_id is not None and self.user_id == owner_id)


class IdentitySigner:
    def __init__(self, secret: str, *, ttl_seconds: int = 30) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)

    def sign(
        self, *, user_id: uuid.UUID | None, roles: Iterable[str], request_id: str | None
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "roles": sorted(roles),
            "rid": request_id,
            "iat": now,
            "exp": now + self._ttl,
        }
        if user_id is not None:  # anonymous callers carry no subject
            claims["sub"] = str(user_id)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


class IdentityVerifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
            sub = claims.get("sub")
            return Principal(
                user_id=uuid.UUID(sub) if sub else None,
                roles=frozenset(claims.get("roles") or ()),
                request_id=claims.get("rid"),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthorized("The identity assertion is missing, expired or invalid.") from exc


class IdentityMiddleware:
    """Refuses every request without a valid assertion, except the listed open paths."""

    def __init__(
        self, app: ASGIApp, *, verifier: IdentityVerifier, open_paths: Iterable[str]
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == ASSERTION_HEADER.encode()),
            None,
        )
        try:
            if token is None:
                raise Unauthorized("Requests must come through the gateway.")
            principal = self.verifier.verify(token)
        except Unauthorized as exc:
            await problem_from_error(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def get_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # only on open paths, which never ask for it
        raise Unauthorized()
    assert isinstance(principal, Principal)
    return principal


async def get_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_authenticated:
        raise Unauthorized("Sign in to use this route.")
    return principal


async def get_staff(principal: Annotated[Principal, Depends(get_user)]) -> Principal:
    if not principal.is_staff:
        raise Forbidden("This route is for staff.")
    return principal


async def get_admin(principal: Annotated[Principal, Depends(get_user)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This route is for admins.")
    return principal


# Async on purpose, as are all dependencies here: a plain `def` runs in a worker thread.
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CurrentUser = Annotated[Principal, Depends(get_user)]
StaffUser = Annotated[Principal, Depends(get_staff)]
AdminUser = Annotated[Principal, Depends(get_admin)]
