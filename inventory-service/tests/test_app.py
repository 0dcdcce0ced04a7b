import time
import uuid

import httpx
import jwt
import pytest

from bookstore_shared.identity import ALGORITHM, ASSERTION_HEADER, AUDIENCE, ISSUER


def forged(secret: str, **claims: object) -> dict[str, str]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "roles": ["staff"],
        "iat": now,
        "exp": now + 30,
        **claims,
    }
    return {ASSERTION_HEADER: jwt.encode(body, secret, algorithm=ALGORITHM)}


async def test_request_without_assertion_is_unauthorized(client: httpx.AsyncClient) -> None:
    reply = await client.get("/books")
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"


async def test_request_with_forged_user_header_is_unauthorized(client: httpx.AsyncClient) -> None:
    headers = {"X-User-Id": str(uuid.uuid4()), "X-User-Roles": "admin"}
    assert (await client.post("/books", json={}, headers=headers)).status_code == 401


async def test_request_with_well_forged_assertion_is_accepted(
    client: httpx.AsyncClient, identity_secret: str
) -> None:
    # The control for the refusals below: `forged` with nothing changed is a good assertion.
    assert (await client.get("/books", headers=forged(identity_secret))).status_code == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 5},
        {"aud": "someone-else"},
        {"iss": "someone-else"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer"],
)
async def test_request_with_bad_assertion_is_unauthorized(
    client: httpx.AsyncClient, identity_secret: str, claims: dict[str, object]
) -> None:
    reply = await client.get("/books", headers=forged(identity_secret, **claims))
    assert reply.status_code == 401


async def test_request_with_assertion_signed_by_another_key_is_unauthorized(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/books", headers=forged("not-the-gateway-secret-" * 2))
    assert reply.status_code == 401


async def test_request_with_unsigned_assertion_is_unauthorized(client: httpx.AsyncClient) -> None:
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": int(time.time()) + 30,
            "iat": int(time.time()),
            "roles": ["admin"],
        },
        None,
        algorithm="none",
    )
    assert (await client.get("/books", headers={ASSERTION_HEADER: token})).status_code == 401


async def test_unknown_route_is_a_problem_404(
    client: httpx.AsyncClient, anonymous: dict[str, str]
) -> None:
    reply = await client.get("/no-such-thing", headers=anonymous)
    assert reply.status_code == 404
    assert reply.json()["code"] == "not_found"


async def test_wrong_method_is_a_problem_405(
    client: httpx.AsyncClient, anonymous: dict[str, str]
) -> None:
    reply = await client.put("/books", headers=anonymous)
    assert reply.status_code == 405
    assert reply.headers["content-type"] == "application/problem+json"


async def test_health_is_open_and_ready_checks_database_and_broker(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
