"""The gate every /api request passes: who is it, may they call this route, not too often.

It runs before routing, for the gateway's own routes and forwarded ones alike, and leaves the
caller's `Principal` in `request.state.principal` (as apps find theirs), so the routes behind
it never look at credentials themselves.
"""

from asgi_correlation_id import correlation_id
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore_shared.errors import DomainError, problem_from_error
from gateway import access
from gateway.proxy import RouteNotFound
from gateway.ratelimit import Decision, RateLimits, TooManyRequests
from gateway.security import Identities

PROTECTED_PREFIX = "/api/"


class GatewayGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        identities: Identities = state.identities
        limits: RateLimits = state.rate_limits
        client_ip = scope["client"][0] if scope.get("client") else "unknown"
        decision: Decision | None = None
        try:
            principal = await identities.principal(
                Headers(scope=scope), request_id=correlation_id.get()
            )
            rule = access.rule_for(scope["method"], scope["path"])
            if rule is None:
                raise RouteNotFound(f"No route for {scope['method']} {scope['path']}.")
            access.check(rule, principal)
            decision = await limits.hit(principal, client_ip)
            if not decision.allowed:
                raise TooManyRequests("Too many requests; slow down.", decision)
        except DomainError as exc:
            await problem_from_error(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        scope["state"]["client_ip"] = client_ip

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and decision is not None:
                headers = MutableHeaders(scope=message)
                for name, value in decision.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_limits)
