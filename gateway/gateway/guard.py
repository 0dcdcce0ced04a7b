"""The gate every /api request passes: who is it, may they call this route, not too often.

It runs before routing, for the gateway's own routes and forwarded ones alike. A request for
an app is forwarded from here, straight away (the hot path needs no router or dependency
injection); one for the gateway's own routes goes on to FastAPI with the caller's
`Principal` in `request.state.principal` (as apps find theirs), so those routes never look at
credentials themselves.
"""

import structlog
from asgi_correlation_id import correlation_id
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore_shared.errors import (
    DomainError,
    MethodNotAllowed,
    problem_from_error,
    problem_response,
)
from bookstore_shared.identity import Principal
from bookstore_shared.telemetry import set_route_template
from gateway import access
from gateway.proxy import RouteNotFound, forward, route_for
from gateway.ratelimit import Decision, RateLimits, TooManyRequests
from gateway.security import Identities

PROTECTED_PREFIX = "/api/"
log = structlog.get_logger(__name__)


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
            route = access.find_route(scope["method"], scope["path"])
            if route is None:
                if allowed := access.methods_for(scope["path"]):
                    raise MethodNotAllowed(allowed)
                raise RouteNotFound(f"No route for {scope['method']} {scope['path']}.")
            template, rule = route
            set_route_template(scope, template)
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

        if (app_name := route_for(scope["path"])) is not None:
            await _forward(scope, receive, send_with_limits, principal=principal, app=app_name)
            return
        await self.app(scope, receive, send_with_limits)


async def _forward(
    scope: Scope, receive: Receive, send: Send, *, principal: Principal, app: str
) -> None:
    state = scope["app"].state
    try:
        response = await forward(
            Request(scope, receive),
            hop=state.hop,
            upstream=state.upstreams[app],
            signer=state.signer,
            principal=principal,
            request_id=correlation_id.get() or "",
        )
    except DomainError as exc:
        response = problem_from_error(exc)
    except Exception:
        log.exception("forward_failed", path=scope["path"], app=app)
        response = problem_response(
            500,
            title="Internal error",
            detail="Something went wrong on our side; the request id identifies it in our logs.",
        )
    await response(scope, receive, send)
