"""Sign-in sessions, refresh tokens, API keys and admin actions: each must take effect."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

Forge = Callable[..., str]  # the `forge` fixture (conftest)

CREDENTIALS = {"email": "ann@example.com", "password": "correct-horse"}


async def _sign_in(client: httpx.AsyncClient) -> dict[str, Any]:
    await client.post("/api/auth/register", json=CREDENTIALS)
    reply = await client.post(
        "/api/auth/token",
        data={"username": CREDENTIALS["email"], "password": CREDENTIALS["password"]},
    )
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_refresh_rotates_and_the_old_refresh_token_stops_working(
    client: httpx.AsyncClient,
) -> None:
    first = await _sign_in(client)
    second = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/auth/me", headers=_bearer(second.json()))).status_code == 200


async def test_reused_refresh_token_ends_the_whole_sign_in(client: httpx.AsyncClient) -> None:
    first = await _sign_in(client)
    second = (
        await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    reused = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_refresh_token"
    # Someone holds a copy: every token of that sign-in is dead now, the newest included.
    later = await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert later.status_code == 401
    assert (await client.get("/api/auth/me", headers=_bearer(second))).status_code == 401
    assert (await client.get("/api/auth/me", headers=_bearer(first))).status_code == 401


async def test_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/auth/refresh", json={"refresh_token": "made-up"})
    assert reply.status_code == 401


async def test_logout_ends_access_and_refresh_tokens(client: httpx.AsyncClient) -> None:
    tokens = await _sign_in(client)
    other_sign_in = await _sign_in(client)
    logout = await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert logout.status_code == 204
    assert (await client.get("/api/auth/me", headers=_bearer(tokens))).status_code == 401
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    # Only that sign-in ends: the same person's other session goes on.
    assert (await client.get("/api/auth/me", headers=_bearer(other_sign_in))).status_code == 200


async def test_deactivated_user_loses_tokens_and_sign_in(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    tokens = await _sign_in(client)
    me = (await client.get("/api/auth/me", headers=_bearer(tokens))).json()
    reply = await client.post(f"/api/users/{me['id']}/deactivate", headers=admin)
    assert reply.status_code == 200, reply.text
    assert reply.json()["is_active"] is False
    assert (await client.get("/api/auth/me", headers=_bearer(tokens))).status_code == 401
    again = await client.post(
        "/api/auth/token",
        data={"username": CREDENTIALS["email"], "password": CREDENTIALS["password"]},
    )
    assert again.status_code == 401


async def test_role_change_applies_to_tokens_already_issued(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    tokens = await _sign_in(client)
    assert (await client.get("/api/users", headers=_bearer(tokens))).status_code == 403
    me = (await client.get("/api/auth/me", headers=_bearer(tokens))).json()
    promoted = await client.put(
        f"/api/users/{me['id']}/role", json={"role": "admin"}, headers=admin
    )
    assert promoted.json()["role"] == "admin"
    listing = await client.get("/api/users", headers=_bearer(tokens))
    assert listing.status_code == 200
    assert listing.json()["count"] == 2


@pytest.mark.parametrize("body", [{"role": "emperor"}, {"role": "staff", "extra": 1}, {}])
async def test_role_change_with_bad_body_is_rejected(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    reply = await client.put(f"/api/users/{uuid.uuid4()}/role", json=body, headers=admin)
    assert reply.status_code == 422


async def test_admin_routes_refuse_customers_and_strangers(client: httpx.AsyncClient) -> None:
    tokens = await _sign_in(client)
    for method, path in (
        ("GET", "/api/users"),
        ("GET", "/api/auth/api-keys"),
        ("POST", f"/api/users/{uuid.uuid4()}/deactivate"),
    ):
        assert (await client.request(method, path)).status_code == 401
        assert (await client.request(method, path, headers=_bearer(tokens))).status_code == 403


async def test_api_key_is_shown_once_works_for_its_role_and_stops_when_revoked(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post(
        "/api/auth/api-keys", json={"name": "warehouse", "role": "staff"}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    listing = (await client.get("/api/auth/api-keys", headers=admin)).json()
    assert [k["name"] for k in listing] == ["warehouse"]
    assert "key" not in listing[0]
    assert key not in str(listing)
    # Staff-only route, forwarded to the (echo) app with the key's identity.
    forwarded = await client.post(
        f"/api/deliveries/{uuid.uuid4()}/status",
        headers={"X-API-Key": key},
        json={"status": "dispatched"},
    )
    assert forwarded.status_code != 403
    assert (await client.get("/api/users", headers={"X-API-Key": key})).status_code == 403
    revoked = await client.delete(f"/api/auth/api-keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    after = await client.get("/api/books", headers={"X-API-Key": key})
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_api_key"


async def test_unknown_api_key_is_refused_even_on_public_routes(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/books", headers={"X-API-Key": "bk_not-a-real-key"})
    assert reply.status_code == 401


@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
async def test_token_signed_with_another_algorithm_is_refused(
    client: httpx.AsyncClient, forge: Forge, algorithm: str
) -> None:
    token = forge(algorithm=algorithm)
    reply = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


async def test_well_signed_token_for_a_session_that_never_existed_is_refused(
    client: httpx.AsyncClient, forge: Forge
) -> None:
    token = forge(sid=str(uuid.uuid4()))
    reply = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
