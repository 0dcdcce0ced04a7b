"""Request bodies over a size limit are refused with a 413 problem before they are read whole.

A declared Content-Length over the limit is refused at once; a body without one is counted as
it arrives, and reading stops with the 413 as soon as it passes the limit. (Starlette's own
limiter answers in plain text, outside the problem-details contract.)
"""

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore_shared.errors import DomainError, problem_from_error


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class BodyLimitMiddleware:
    """`max_bytes` for every route but those `larger` names by (method, path)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get((scope["method"], scope["path"]), self.max_bytes)
        too_large = PayloadTooLarge(f"Bodies are limited to {limit} bytes.")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem_from_error(too_large)(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            if started:
                raise
            await problem_from_error(too_large)(scope, receive, send)
