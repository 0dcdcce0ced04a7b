"""Background tasks that live as long as an app: started in its lifespan, stopped with it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from opentelemetry.instrumentation.utils import suppress_instrumentation

log = structlog.get_logger(__name__)


async def cancel(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel the tasks and wait until each has stopped."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def every(
    seconds: float, job: Callable[[], Awaitable[object]], name: str
) -> AsyncIterator[None]:
    """Run `job` every `seconds` while the block runs; a failing run is logged, not fatal.
    Its statements make no spans: a poll a second would bury the traces of real work."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                with suppress_instrumentation():
                    await job()
            except Exception:
                log.exception("periodic_job_failed", job=name)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        await cancel(task)
