from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from bookstore_shared.db import SessionDep
from gateway import service
from gateway.models import Token, UserPublic, UserRegister
from gateway.security import CurrentUser

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(data: UserRegister, session: SessionDep, request: Request) -> UserPublic:
    """Open a customer account."""
    user = await service.register_user(
        session, passwords=request.app.state.passwords, email=data.email, password=data.password
    )
    return UserPublic.model_validate(user, from_attributes=True)


@router.post("/token")
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, request: Request
) -> Token:
    """Sign in with the OAuth2 password form (username is the email) and get an access token."""
    user = await service.authenticate_user(
        session, passwords=request.app.state.passwords, email=form.username, password=form.password
    )
    tokens = request.app.state.tokens
    return Token(
        access_token=tokens.issue_access(user), expires_in=int(tokens.access_ttl.total_seconds())
    )


@router.get("/me")
async def me(principal: CurrentUser, session: SessionDep) -> UserPublic:
    """The signed-in account."""
    assert principal.user_id is not None
    user = await service.get_user(session, user_id=principal.user_id)
    return UserPublic.model_validate(user, from_attributes=True)
