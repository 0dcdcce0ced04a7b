"""`/health/live` (the process answers) and `/health/ready` (its dependencies answer)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bookstore_shared.errors import problem_response

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 3.0

router = APIRouter(prefix="/health", tags=["ops"])


async def _run(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # a readiness probe reports, it never raises
        return f"failed: {type(exc).__name__}: {exc}"[:200]
    return "ok"


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(request: Request) -> dict[str, Any] | JSONResponse:
    """Every dependency this app needs (database, broker, upstreams) answers."""
    checks: dict[str, Check] = request.app.state.health_checks
    results = await asyncio.gather(*(_run(c) for c in checks.values()))
    report = dict(zip(checks, results, strict=True))
    if all(r == "ok" for r in results):
        return {"status": "ok", "checks": report}
    failing = ", ".join(name for name, r in report.items() if r != "ok")
    return problem_response(
        503, detail=f"Not ready: {failing}", checks=report, headers={"Retry-After": "5"}
    )
