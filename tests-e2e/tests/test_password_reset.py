"""Password reset end to end: the gateway mails the token through SMTP to the stack's mail
sink, and the token sets a new password that signs the old sessions out."""

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from bookstore_shared.stack import LocalStack
from bookstore_testing.harness import assert_problem
from bookstore_testing.mailbox import Mailbox, reset_token, text_of

pytestmark = pytest.mark.e2e
SignIn = Callable[[str, str], Awaitable[dict[str, str]]]


async def test_forgotten_password_is_reset_with_the_mailed_token(
    gateway: httpx.AsyncClient, mailbox: Mailbox, stack: LocalStack, sign_in: SignIn
) -> None:
    email = f"forgetful-{uuid.uuid4().hex[:8]}@example.com"
    registered = await gateway.post(
        "/api/auth/register", json={"email": email, "password": "first-passphrase"}
    )
    assert registered.status_code == 201, registered.text
    old = (
        await gateway.post(
            "/api/auth/token", data={"username": email, "password": "first-passphrase"}
        )
    ).json()

    asked = await gateway.post("/api/auth/password-reset", json={"email": email})
    assert asked.status_code == 202, asked.text
    mail = await mailbox.wait_for(email, within=30)
    assert f"{stack.url('gateway')}/api/auth/password-reset/confirm" in text_of(mail)

    confirmed = await gateway.post(
        "/api/auth/password-reset/confirm",
        json={"token": reset_token(mail), "new_password": "second-passphrase"},
    )
    assert confirmed.status_code == 204, confirmed.text
    refreshed = await gateway.post(
        "/api/auth/refresh", json={"refresh_token": old["refresh_token"]}
    )
    assert_problem(refreshed, 401, "invalid_refresh_token")
    refused = await gateway.post(
        "/api/auth/token", data={"username": email, "password": "first-passphrase"}
    )
    assert_problem(refused, 401, "invalid_credentials")
    me = await gateway.get("/api/auth/me", headers=await sign_in(email, "second-passphrase"))
    assert me.json()["email"] == email
    again = await gateway.post(
        "/api/auth/password-reset/confirm",
        json={"token": reset_token(mail), "new_password": "third-passphrase"},
    )
    assert_problem(again, 400, "invalid_reset_token")
