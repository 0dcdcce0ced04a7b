"""The gateway is the edge: a client cannot choose the address its limits are counted under."""

import asyncio

import httpx
import pytest

from bookstore_shared.stack import LocalStack

pytestmark = pytest.mark.e2e


async def test_forwarded_for_sent_by_a_client_does_not_change_its_address(
    stack: LocalStack,
) -> None:
    await asyncio.to_thread(stack.restart, "gateway", {"RATE_LIMIT_PER_IP": "3/hour"})
    try:
        async with httpx.AsyncClient(base_url=stack.url("gateway")) as client:
            codes = [
                (
                    await client.get(
                        "/api/books?size=1", headers={"X-Forwarded-For": f"203.0.113.{i}"}
                    )
                ).status_code
                for i in range(4)
            ]
    finally:
        await asyncio.to_thread(stack.restart, "gateway")
    assert codes == [200, 200, 200, 429]
