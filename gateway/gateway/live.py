"""Live updates over a WebSocket: `/api/ws` sends what `GET /api/orders/events` sends.

Signing in without a long-lived token in the URL (URLs end up in logs and histories):
- a client that can set headers sends `Authorization: Bearer <access token>` (or `X-API-Key`)
  with the handshake;
- a browser, which cannot, opens the socket bare and sends a first message within
  `AUTH_WINDOW_SECONDS`: `{"type": "auth", "access_token": "<access token>"}`.
Either may add `"last_event_id": N` (or `Last-Event-ID`) to resume. A later `auth` message
with a fresh access token keeps the socket open past the first token's expiry.

Each event is a text message `{"type": "order", "id": "<event id>", "data": {...}}`; the first,
`{"type": "ready", ...}`, says the socket is signed in and listening (sent again after the
gateway had to reopen its stream, which resumes where it was). The gateway
reads the events from sales' stream for this account with the caller's identity assertion,
like any forwarded request. The sign-in is checked again every `auth_cache_seconds`: when the
session ends (sign-out, password change or reset, deactivation, an expired token) the socket
is closed with code 4401; a client that is not signed in gets 4401 at once, and one that says
nothing readable 4400.
"""

import asyncio
import contextlib
import json
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from httpx_sse import aconnect_sse
from starlette.datastructures import Headers

from bookstore_shared.errors import DomainError
from bookstore_shared.identity import ASSERTION_HEADER, Principal

log = structlog.get_logger(__name__)
router = APIRouter()
AUTH_WINDOW_SECONDS = 10.0
SIGNED_OUT, BAD_MESSAGE = 4401, 4400


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Caller:
    """Who is on the socket, as the gateway's own checks see them, checked again on demand."""

    def __init__(self, websocket: WebSocket) -> None:
        self.state = websocket.app.state
        self.headers = {k: v for k, v in websocket.headers.items() if k in _CREDENTIALS}
        self.last_event_id = websocket.headers.get("last-event-id")

    @property
    def presented(self) -> bool:
        return bool(self.headers)

    def take(self, message: dict[str, Any]) -> None:
        """Credentials from an `auth` message."""
        token = message.get("access_token")
        if message.get("type") != "auth" or not isinstance(token, str) or not token:
            raise Closed(BAD_MESSAGE, 'expected {"type": "auth", "access_token": "..."}')
        self.headers = {"authorization": f"Bearer {token}"}
        if isinstance(message.get("last_event_id"), int | str):
            self.last_event_id = str(message["last_event_id"])

    async def principal(self) -> Principal:
        try:
            principal: Principal = await self.state.identities.principal(
                Headers(self.headers), request_id=None
            )
        except DomainError as exc:
            raise Closed(SIGNED_OUT, exc.detail or exc.title) from exc
        if not principal.is_authenticated:
            raise Closed(SIGNED_OUT, "sign in first")
        return principal


_CREDENTIALS = ("authorization", "x-api-key")


@router.websocket("/api/ws")
async def live_updates(websocket: WebSocket) -> None:
    await websocket.accept()
    caller = Caller(websocket)
    try:
        if not caller.presented:
            caller.take(await _first_message(websocket))
        principal = await caller.principal()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_relay(websocket, caller, principal))
            tasks.create_task(_listen(websocket, caller))
            tasks.create_task(_recheck(caller))
    except* Closed as group:
        closed = group.exceptions[0]
        assert isinstance(closed, Closed)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=closed.code, reason=closed.reason[:120])
    except* WebSocketDisconnect:
        pass  # the client left


async def _next_message(websocket: WebSocket) -> dict[str, Any]:
    try:
        message = json.loads(await websocket.receive_text())
    except ValueError as exc:
        raise Closed(BAD_MESSAGE, "messages are JSON objects") from exc
    if not isinstance(message, dict):
        raise Closed(BAD_MESSAGE, "messages are JSON objects")
    return message


async def _first_message(websocket: WebSocket) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(_next_message(websocket), AUTH_WINDOW_SECONDS)
    except TimeoutError as exc:
        raise Closed(SIGNED_OUT, "no sign-in in time") from exc


async def _listen(websocket: WebSocket, caller: Caller) -> None:
    """A later `auth` message with a fresh token extends the sign-in."""
    while True:
        caller.take(await _next_message(websocket))
        await caller.principal()


async def _recheck(caller: Caller) -> None:
    every = max(1.0, caller.state.settings.auth_cache_seconds)
    while True:
        await asyncio.sleep(every)
        await caller.principal()  # Closed when the session has ended


async def _relay(websocket: WebSocket, caller: Caller, principal: Principal) -> None:
    """Sales' event stream for this caller, each event sent on as it comes; the stream is
    opened again (from the last event sent) if it breaks."""
    state = websocket.app.state
    client: httpx.AsyncClient = state.client
    while True:
        replicas = await state.upstreams["sales"].attempts()
        assertion = state.signer.sign(
            user_id=principal.user_id, roles=principal.roles, request_id=None
        )
        headers = {ASSERTION_HEADER: assertion}
        if caller.last_event_id:
            headers["last-event-id"] = caller.last_event_id
        try:
            async with aconnect_sse(
                client,
                "GET",
                f"{replicas[0].base_url}/orders/events",
                headers={"host": replicas[0].host, **headers},
                timeout=httpx.Timeout(30.0, connect=5.0),
            ) as source:
                if source.response.status_code != 200:
                    raise Closed(1011, f"the event stream answered {source.response.status_code}")
                async for event in source.aiter_sse():
                    if event.event not in ("ready", "order"):
                        continue
                    caller.last_event_id = event.id
                    await websocket.send_text(
                        json.dumps({"type": event.event, "id": event.id, "data": event.json()})
                    )
        except httpx.HTTPError as exc:
            log.warning("live_updates_stream_broke", error=repr(exc))
        await asyncio.sleep(1.0)
