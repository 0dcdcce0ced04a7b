"""Live updates for a whole account through the gateway: Server-Sent Events (resumable with
Last-Event-ID) and the same events over a WebSocket that is closed when the sign-in ends."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from httpx_sse import aconnect_sse
from websockets.exceptions import ConnectionClosed

from bookstore_testing.shop import Shop

pytestmark = pytest.mark.e2e
PASSWORD = "a-long-passphrase"


async def _account(shop: Shop) -> dict[str, str]:
    """A new customer's tokens: `access_token` and `refresh_token`."""
    email = f"live-{uuid.uuid4().hex[:12]}@example.com"
    registered = await shop.gateway.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    tokens: dict[str, str] = (
        await shop.gateway.post("/api/auth/token", data={"username": email, "password": PASSWORD})
    ).json()
    return tokens


def _bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@contextlib.asynccontextmanager
async def _stream(
    shop: Shop, headers: dict[str, str]
) -> AsyncIterator[asyncio.Queue[tuple[str, dict[str, Any]]]]:
    """The account's event stream, read in the background: (id, data) of each `order` event."""
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        async with aconnect_sse(
            shop.gateway, "GET", "/api/orders/events", headers=headers, timeout=60
        ) as source:
            assert source.response.status_code == 200, await source.response.aread()
            async for event in source.aiter_sse():
                if event.event == "ready":
                    opened.set()  # listening: every change from now on is sent
                elif event.event == "order":
                    await events.put((event.id, event.json()))

    reader = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 15)
    try:
        yield events
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _next(events: asyncio.Queue[Any], within: float = 20) -> Any:
    return await asyncio.wait_for(events.get(), within)


async def test_an_account_sees_its_own_orders_change_and_resumes_where_it_left_off(
    shop: Shop,
) -> None:
    book = await shop.new_book(stock=5)
    ann, bob = _bearer(await _account(shop)), _bearer(await _account(shop))
    async with _stream(shop, ann) as events, _stream(shop, shop.staff) as everyone:
        order = (await shop.place_order(ann, [(book, 1)])).json()
        assert order["status"] == "confirmed"
        first_id, first = await _next(events)
        second_id, second = await _next(events)
        assert [(first["order_id"], first["status"]), (second["order_id"], second["status"])] == [
            (order["id"], "pending"),
            (order["id"], "confirmed"),
        ]
        assert int(second_id) > int(first_id)
        theirs = (await shop.place_order(bob, [(book, 1)])).json()
        seen_by_staff = {(await _next(everyone))[1]["order_id"] for _ in range(4)}
        assert seen_by_staff == {order["id"], theirs["id"]}
        cancel = await shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=ann)
        assert cancel.status_code == 202, cancel.text
        _, cancelled = await _next(events)
        assert (cancelled["order_id"], cancelled["status"]) == (order["id"], "cancelled")
        assert events.empty()  # nothing of Bob's

    # Back after a break: from the event after the first, not from now.
    async with _stream(shop, {**ann, "Last-Event-ID": first_id}) as resumed:
        statuses = [(await _next(resumed))[1]["status"] for _ in range(2)]
        assert statuses == ["confirmed", "cancelled"]


def _ws_url(shop: Shop) -> str:
    return str(shop.gateway.base_url.copy_with(scheme="ws", path="/api/ws"))


async def test_the_websocket_sends_the_same_events_and_closes_when_the_session_ends(
    shop: Shop,
) -> None:
    book = await shop.new_book(stock=5)
    tokens = await _account(shop)
    async with websockets.connect(_ws_url(shop)) as socket:  # no token in the URL
        await socket.send(json.dumps({"type": "auth", "access_token": tokens["access_token"]}))
        ready = json.loads(await asyncio.wait_for(socket.recv(), 15))
        assert ready["type"] == "ready"
        order = (await shop.place_order(_bearer(tokens), [(book, 1)])).json()
        received = [json.loads(await asyncio.wait_for(socket.recv(), 20)) for _ in range(2)]
        assert [(m["type"], m["data"]["order_id"], m["data"]["status"]) for m in received] == [
            ("order", order["id"], "pending"),
            ("order", order["id"], "confirmed"),
        ]
        signed_out = await shop.gateway.post(
            "/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert signed_out.status_code == 204, signed_out.text
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 20)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401


async def test_the_websocket_refuses_strangers(shop: Shop) -> None:
    for first_message, code in (
        ({"type": "auth", "access_token": "not-a-token"}, 4401),
        ({"type": "hello"}, 4400),
    ):
        async with websockets.connect(_ws_url(shop)) as socket:
            await socket.send(json.dumps(first_message))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 15)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
    headers = {"Authorization": "Bearer not-a-token"}
    async with websockets.connect(_ws_url(shop), additional_headers=headers) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 15)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
    anonymous: httpx.Response = await shop.gateway.get("/api/orders/events")
    assert anonymous.status_code == 401
