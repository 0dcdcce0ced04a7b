import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from bookstore_shared.db import Database, SessionDep
from bookstore_shared.identity import AdminUser, CurrentUser
from bookstore_shared.pagination import Page, PageDep
from gateway import service
from gateway.config import Settings
from gateway.errors import InvalidCredentials, UserNotFound, WrongPassword
from gateway.mail import Mailer, password_reset_mail
from gateway.models import (
    AccountUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RoleChange,
    Token,
    UserPublic,
    UserRegister,
)
from gateway.ratelimit import RateLimits
from gateway.security import Passwords, Tokens

router = APIRouter(prefix="/api/auth", tags=["auth"])
users = APIRouter(prefix="/api/users", tags=["users"])


def _token(sign_in: service.SignIn, tokens: Tokens) -> Token:
    return Token(
        access_token=sign_in.access_token,
        refresh_token=sign_in.refresh_token,
        expires_in=int(tokens.access_ttl.total_seconds()),
    )


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(data: UserRegister, session: SessionDep, request: Request) -> UserPublic:
    """Open a customer account."""
    user = await service.register_user(
        session, passwords=request.app.state.passwords, email=data.email, password=data.password
    )
    return UserPublic.model_validate(user, from_attributes=True)


@router.post("/token")
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request
) -> Token:
    """Sign in with the OAuth2 password form (username is the email): access + refresh token."""
    limits: RateLimits = request.app.state.rate_limits
    db: Database = request.app.state.db
    client_ip = request.state.client_ip
    await limits.check_sign_in(form.username, client_ip)
    # Two short transactions around the password check, so no connection waits on argon2.
    async with db.unit_of_work() as session:
        found = await service.find_user(session, email=form.username)
    try:
        user = await service.check_password(
            request.app.state.passwords, user=found, password=form.password
        )
    except InvalidCredentials:
        await limits.sign_in_failed(form.username, client_ip)
        raise
    tokens: Tokens = request.app.state.tokens
    async with db.unit_of_work() as session:
        sign_in = await service.start_session(session, tokens=tokens, user=user)
    return _token(sign_in, tokens)


@router.post("/refresh")
async def refresh(data: RefreshRequest, request: Request) -> Token:
    """A new token pair for a refresh token; each refresh token works once."""
    db: Database = request.app.state.db
    tokens: Tokens = request.app.state.tokens
    async with db.unit_of_work() as session:
        outcome = await service.rotate_refresh_token(
            session, tokens=tokens, refresh_token=data.refresh_token
        )
    if not isinstance(outcome, service.SignIn):
        request.app.state.identities.forget()
        raise outcome
    return _token(outcome, tokens)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(data: RefreshRequest, session: SessionDep, request: Request) -> None:
    """End the sign-in the refresh token belongs to: its access and refresh tokens stop working."""
    await service.end_session(session, refresh_token=data.refresh_token)
    request.app.state.identities.forget()


@router.get("/me")
async def me(principal: CurrentUser, session: SessionDep) -> UserPublic:
    """The signed-in account."""
    assert principal.user_id is not None
    try:
        user = await service.get_user(session, user_id=principal.user_id)
    except UserNotFound as exc:
        raise UserNotFound("API keys act for a role, not for an account.") from exc
    return UserPublic.model_validate(user, from_attributes=True)


def _current_session(request: Request) -> uuid.UUID | None:
    """The sign-in session of the bearer token the request came with (none for an API key)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    tokens: Tokens = request.app.state.tokens
    _, session_id = tokens.read_access(token.strip())
    return session_id


@router.patch("/me")
async def update_me(changes: AccountUpdate, principal: CurrentUser, request: Request) -> UserPublic:
    """Change your name, or your password given the current one (403 `wrong_password`
    otherwise): a new password signs out every other session; this one stays."""
    assert principal.user_id is not None
    db: Database = request.app.state.db
    passwords: Passwords = request.app.state.passwords
    async with db.sessions() as session:
        try:
            user = await service.get_user(session, user_id=principal.user_id)
        except UserNotFound as exc:
            raise UserNotFound("API keys act for a role, not for an account.") from exc
    new_hash = None
    if changes.new_password is not None:
        # argon2 outside any transaction: no pooled connection waits on it.
        assert changes.current_password is not None
        if not await passwords.verify(changes.current_password, user.password_hash):
            raise WrongPassword()
        new_hash = await passwords.hash(changes.new_password)
    async with db.unit_of_work() as session:
        user = await service.update_account(
            session,
            user_id=principal.user_id,
            name=changes.name,
            password_hash=new_hash,
            keep_session=_current_session(request),
        )
    request.app.state.identities.forget()
    return UserPublic.model_validate(user, from_attributes=True)


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={202: {"description": "A mail is on its way, if an account has this address"}},
)
async def request_password_reset(data: PasswordResetRequest, request: Request) -> Response:
    """Mail a single-use token to this address, if an account has it (the answer is the same
    either way): with it, `POST /api/auth/password-reset/confirm` sets a new password."""
    settings: Settings = request.app.state.settings
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit_password_reset(data.email, request.state.client_ip)
    db: Database = request.app.state.db
    async with db.unit_of_work() as session:
        started = await service.start_password_reset(
            session,
            email=data.email,
            valid_for=timedelta(minutes=settings.password_reset_minutes),
        )
    if started is not None:
        mailer: Mailer = request.app.state.mailer
        mail = password_reset_mail(
            mail_from=mailer.mail_from,
            to=started.email,
            token=started.token,
            public_url=settings.public_url,
            valid_minutes=settings.password_reset_minutes,
        )
        mailer.send_soon(mail, purpose="password_reset")
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={204: {"description": "The password is changed; every session is signed out"}},
)
async def confirm_password_reset(data: PasswordResetConfirm, request: Request) -> None:
    """Set a new password with the token from the mail (400 `invalid_reset_token` if it is
    used, expired or unknown); every session of the account is signed out."""
    db: Database = request.app.state.db
    passwords: Passwords = request.app.state.passwords
    async with db.reads() as session:
        await service.check_reset_token(session, token=data.token)
    # argon2 outside any transaction: no pooled connection waits on it.
    new_hash = await passwords.hash(data.new_password)
    async with db.unit_of_work() as session:
        await service.reset_password(session, token=data.token, password_hash=new_hash)
    request.app.state.identities.forget()


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    data: ApiKeyCreate, session: SessionDep, admin: AdminUser
) -> ApiKeyCreated:
    """Create an API key for a role (admins); the key is in this answer only."""
    assert admin.user_id is not None
    api_key, key = await service.create_api_key(
        session, name=data.name, role=data.role, created_by=admin.user_id
    )
    return ApiKeyCreated.model_validate({**api_key.model_dump(), "key": key})


@router.get("/api-keys")
async def list_api_keys(session: SessionDep, admin: AdminUser) -> list[ApiKeyPublic]:
    """Every API key, without its secret (admins)."""
    return [
        ApiKeyPublic.model_validate(k, from_attributes=True)
        for k in await service.list_api_keys(session)
    ]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: uuid.UUID, session: SessionDep, admin: AdminUser, request: Request
) -> Response:
    """Revoke an API key (admins); it stops working at once."""
    await service.revoke_api_key(session, key_id=key_id)
    request.app.state.identities.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users.get("")
async def list_users(session: SessionDep, admin: AdminUser, page: PageDep) -> Page[UserPublic]:
    """Every account (admins)."""
    rows, count = await service.list_users(session, page=page)
    return Page(
        data=[UserPublic.model_validate(u, from_attributes=True) for u in rows],
        count=count,
        page=page.page,
        size=page.size,
    )


@users.put("/{user_id}/role")
async def change_role(
    user_id: uuid.UUID,
    change: RoleChange,
    session: SessionDep,
    admin: AdminUser,
    request: Request,
) -> UserPublic:
    """Give an account another role (admins); it applies to tokens already issued."""
    user = await service.change_role(session, user_id=user_id, role=change.role)
    request.app.state.identities.forget()
    return UserPublic.model_validate(user, from_attributes=True)


@users.post("/{user_id}/deactivate")
async def deactivate_user(
    user_id: uuid.UUID, session: SessionDep, admin: AdminUser, request: Request
) -> UserPublic:
    """Deactivate an account (admins): it cannot sign in, and its tokens stop working."""
    user = await service.deactivate_user(session, user_id=user_id)
    request.app.state.identities.forget()
    return UserPublic.model_validate(user, from_attributes=True)
