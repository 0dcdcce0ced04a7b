"""Errors as RFC 9457 problem details, rendered the same way by every app.

Apps raise `DomainError` subclasses that carry their own status and code; the handlers
installed by `install_error_handlers` turn those, validation errors, unknown routes and
unexpected exceptions into `application/problem+json`. A stack trace never leaves the process.
"""

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.status import HTTP_500_INTERNAL_SERVER_ERROR

PROBLEM_CONTENT_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    request_id: str | None = None


class DomainError(Exception):
    """Base of every error an app raises on purpose. Subclasses set status, code and title."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Not authenticated"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class MethodNotAllowed(DomainError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"

    def __init__(self, allowed: Iterable[str]) -> None:
        methods = ", ".join(sorted(allowed))
        super().__init__(f"This path takes {methods}.")
        self.headers = {"Allow": methods}


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class DatabaseBusy(ServiceUnavailable):
    code, title = "database_busy", "The database is busy"
    headers = {"Retry-After": "2"}


class DatabaseUnavailable(ServiceUnavailable):
    code, title = "database_unavailable", "The database cannot be reached"
    headers = {"Retry-After": "5"}


# Postgres gave up on our behalf: statement_timeout, lock_timeout. Worth trying again soon.
_BUSY_SQLSTATES = frozenset({"57014", "55P03"})
# Connection failures (08...) and the server shutting down or restarting (57P...).
_LOST_SQLSTATE_PREFIXES = ("08", "57P")


def problem_type(code: str) -> str:
    return f"urn:bookstore:problem:{code}"


def problem_response(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    code = code or _HTTP_CODES.get(status, "error")
    body = {
        "type": problem_type(code),
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": correlation_id.get(),
        **extra,
    }
    return JSONResponse(
        jsonable_encoder(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def problem_from_error(exc: DomainError) -> JSONResponse:
    return problem_response(
        exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        **exc.extra,
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_from_error(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem_response(
        422, title="Invalid request", detail="The request failed validation.", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, detail=detail, headers=exc.headers)


def _lost_connection(exc: Exception, sqlstate: str | None) -> bool:
    """The connection to Postgres broke (it restarted, say), seen through SQLAlchemy or
    through asyncpg itself (`Tx`)."""
    return (
        isinstance(exc, ConnectionError | asyncpg.InterfaceError)
        or getattr(exc, "connection_invalidated", False)
        or (sqlstate or "").startswith(_LOST_SQLSTATE_PREFIXES)
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database away, a full pool, or a statement/lock timeout: a 503 with Retry-After.
    Anything else is a 500."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    if _lost_connection(exc, sqlstate):
        log.warning("database_unavailable", path=request.url.path, error=repr(exc))
        return problem_from_error(
            DatabaseUnavailable("The database cannot be reached just now; try again shortly.")
        )
    if isinstance(exc, PoolTimeout) or sqlstate in _BUSY_SQLSTATES:
        log.warning("database_busy", path=request.url.path, error=type(exc).__name__)
        return problem_from_error(
            DatabaseBusy("No database connection or lock was free in time; try again shortly.")
        )
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        title="Internal error",
        detail="Something went wrong on our side; the request id identifies it in our logs.",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(asyncpg.PostgresError, _database_error)
    app.add_exception_handler(asyncpg.InterfaceError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


# Added to every route's documented responses so the merged OpenAPI describes error bodies.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Problem, "description": "Problem details (RFC 9457)"},
    "5XX": {"model": Problem, "description": "Problem details (RFC 9457)"},
}


def document_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what its errors are sent as: every 4xx and 5xx
    answer is `application/problem+json`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for path_item in spec.get("paths", {}).values():
                for operation in path_item.values():
                    for code, response in operation.get("responses", {}).items():
                        # FastAPI files it under the route's own media type (JSON, or an
                        # event stream): an error is a problem document whatever the route.
                        if str(code)[0] in "45" and (content := response.get("content")):
                            response["content"] = {
                                PROBLEM_CONTENT_TYPE: next(iter(content.values()))
                            }
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
