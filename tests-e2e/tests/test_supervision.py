"""`make run` keeps the stack up: an app that dies is started again, after a growing pause."""

import asyncio
import signal

import pytest

from bookstore_shared.stack import LocalStack
from bookstore_testing.shop import eventually

pytestmark = pytest.mark.e2e


async def _kill_and_watch_it_return(stack: LocalStack, name: str) -> list[str]:
    """Kill `name` and let the supervisor bring it back; what the supervisor said."""
    pid = stack.pid(name)
    stack.signal(name, signal.SIGKILL)
    said: list[str] = []

    async def back() -> bool:
        said.extend(stack.supervise())
        return name not in stack.exited() and stack.pid(name) != pid

    await eventually(back, within=30, what=f"{name} to be started again")
    await asyncio.to_thread(stack.wait_ready, 60.0, name)
    return said


async def test_dead_app_is_started_again_with_a_growing_pause(stack: LocalStack) -> None:
    first = await _kill_and_watch_it_return(stack, "delivery")
    assert first[0].startswith("delivery exited with code -9; starting it again in 1 s")
    assert first[1].startswith("delivery started again (pid ")
    second = await _kill_and_watch_it_return(stack, "delivery")  # within a minute: longer
    assert second[0].startswith("delivery exited with code -9; starting it again in 2 s")
    assert (await asyncio.to_thread(stack.exited)) == {}
