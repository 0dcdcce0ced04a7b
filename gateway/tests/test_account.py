"""PATCH /api/auth/me: an account changes its name, and its password given the current one."""

from typing import Any

import httpx
import pytest

from bookstore_testing.harness import assert_problem

CREDENTIALS = {"email": "ann@example.com", "password": "correct-horse"}


async def _sign_in(
    client: httpx.AsyncClient, password: str = CREDENTIALS["password"]
) -> httpx.Response:
    return await client.post(
        "/api/auth/token", data={"username": CREDENTIALS["email"], "password": password}
    )


async def _session(client: httpx.AsyncClient) -> dict[str, Any]:
    reply = await _sign_in(client)
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def account(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/auth/register", json=CREDENTIALS)).status_code == 201


@pytest.mark.usefixtures("account")
async def test_name_is_changed_and_shown(client: httpx.AsyncClient) -> None:
    tokens = await _session(client)
    reply = await client.patch("/api/auth/me", json={"name": "Ann Reader"}, headers=_bearer(tokens))
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "Ann Reader"
    me = await client.get("/api/auth/me", headers=_bearer(tokens))
    assert (me.json()["name"], me.json()["email"]) == ("Ann Reader", "ann@example.com")


@pytest.mark.usefixtures("account")
async def test_new_password_signs_out_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient,
) -> None:
    here, elsewhere = await _session(client), await _session(client)
    reply = await client.patch(
        "/api/auth/me",
        json={"current_password": "correct-horse", "new_password": "battery-staple"},
        headers=_bearer(here),
    )
    assert reply.status_code == 200, reply.text
    assert (await client.get("/api/auth/me", headers=_bearer(here))).status_code == 200
    assert_problem(await client.get("/api/auth/me", headers=_bearer(elsewhere)), 401)
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}
    )
    assert_problem(refreshed, 401)
    assert_problem(await _sign_in(client, "correct-horse"), 401)
    assert (await _sign_in(client, "battery-staple")).status_code == 200


@pytest.mark.usefixtures("account")
async def test_wrong_current_password_changes_nothing(client: httpx.AsyncClient) -> None:
    here, elsewhere = await _session(client), await _session(client)
    reply = await client.patch(
        "/api/auth/me",
        json={"current_password": "not-my-password", "new_password": "battery-staple", "name": "X"},
        headers=_bearer(here),
    )
    assert_problem(reply, 403, "wrong_password")
    assert (await client.get("/api/auth/me", headers=_bearer(elsewhere))).json()["name"] is None
    assert (await _sign_in(client)).status_code == 200


@pytest.mark.usefixtures("account")
@pytest.mark.parametrize(
    "body",
    [
        {"new_password": "battery-staple"},
        {"current_password": "correct-horse", "new_password": "short"},
        {"name": ""},
        {"name": "Ann", "role": "admin"},
    ],
)
async def test_bad_changes_are_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    tokens = await _session(client)
    assert_problem(await client.patch("/api/auth/me", json=body, headers=_bearer(tokens)), 422)
    assert (await client.get("/api/auth/me", headers=_bearer(tokens))).json()["role"] == "customer"


@pytest.mark.usefixtures("account")
async def test_empty_change_changes_nothing(client: httpx.AsyncClient) -> None:
    tokens = await _session(client)
    reply = await client.patch("/api/auth/me", json={}, headers=_bearer(tokens))
    assert reply.status_code == 200, reply.text
    assert (reply.json()["email"], reply.json()["name"]) == ("ann@example.com", None)
    assert (await _sign_in(client)).status_code == 200


async def test_stranger_is_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/api/auth/me", json={"name": "Eve"}), 401)
