import time
from collections.abc import Callable

import httpx
import pytest

from bookstore_testing.shop import eventually

Forge = Callable[..., str]  # the `forge` fixture (conftest)

CREDENTIALS = {"email": "ann@example.com", "password": "correct-horse"}


async def test_register_creates_a_customer_without_exposing_the_hash(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post(
        "/api/auth/register", json={**CREDENTIALS, "email": "Ann@Example.com"}
    )
    assert reply.status_code == 201, reply.text
    user = reply.json()
    assert (user["email"], user["role"], user["is_active"]) == ("ann@example.com", "customer", True)
    assert not {"password", "password_hash"} & user.keys()


async def test_register_twice_with_the_same_email_conflicts(client: httpx.AsyncClient) -> None:
    await client.post("/api/auth/register", json=CREDENTIALS)
    reply = await client.post(
        "/api/auth/register", json={**CREDENTIALS, "email": "ANN@example.com"}
    )
    assert reply.status_code == 409
    assert reply.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    "body",
    [
        {**CREDENTIALS, "role": "admin"},
        {**CREDENTIALS, "password": "short"},
        {**CREDENTIALS, "email": "not-an-email"},
        {"email": "ann@example.com"},
    ],
    ids=["role-field", "short-password", "bad-email", "no-password"],
)
async def test_register_with_bad_body_is_rejected(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    reply = await client.post("/api/auth/register", json=body)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"


async def test_token_then_me_returns_the_account(client: httpx.AsyncClient) -> None:
    await client.post("/api/auth/register", json=CREDENTIALS)
    token = await client.post(
        "/api/auth/token", data={"username": "ANN@example.com", "password": "correct-horse"}
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"


@pytest.mark.parametrize(
    "form",
    [
        {"username": "ann@example.com", "password": "wrong-horse"},
        {"username": "nobody@example.com", "password": "correct-horse"},
    ],
    ids=["wrong-password", "unknown-email"],
)
async def test_token_with_bad_credentials_is_unauthorized_alike(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    await client.post("/api/auth/register", json=CREDENTIALS)
    reply = await client.post("/api/auth/token", data=form)
    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_credentials"
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_me_without_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_forged_token_without_changes_is_accepted(
    client: httpx.AsyncClient, forge: Forge
) -> None:
    # The control for the refusals below: the forgery itself is sound.
    reply = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {forge()}"})
    assert reply.status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": int(time.time()) - 10},
        {"aud": "other"},
        {"iss": "other"},
        {"typ": "refresh"},
        {"nbf": int(time.time()) + 600},
        {"sub": None},
        {"jti": None},
    ],
    ids=[
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "not-access",
        "not-yet-valid",
        "no-subject",
        "no-token-id",
    ],
)
async def test_me_with_bad_token_is_unauthorized(
    client: httpx.AsyncClient, forge: Forge, changes: dict[str, object]
) -> None:
    reply = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {forge(**changes)}"}
    )
    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_token"


async def test_a_token_verified_before_is_refused_once_it_expires(
    client: httpx.AsyncClient, forge: Forge
) -> None:
    """Verified tokens are kept, but only until they expire."""
    headers = {"Authorization": f"Bearer {forge(exp=int(time.time()) + 2)}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200

    async def refused() -> bool:
        return (await client.get("/api/auth/me", headers=headers)).status_code == 401

    await eventually(refused, within=10, what="the expired token refused")


async def test_me_with_token_signed_by_another_key_is_unauthorized(
    client: httpx.AsyncClient, forge: Forge
) -> None:
    token = forge(key="another-secret-" + "y" * 64)
    reply = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


async def test_me_with_unsigned_token_is_unauthorized(
    client: httpx.AsyncClient, forge: Forge
) -> None:
    token = forge(algorithm="none")
    reply = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
