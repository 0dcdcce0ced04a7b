"""Fixtures every test directory shares (registered as a pytest plugin by this package)."""

import asyncio
import importlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from bookstore_shared.messaging import Broker
from bookstore_shared.stack import APPS, LocalStack
from bookstore_testing.harness import free_port
from bookstore_testing.infra import Databases, Infra, provide_infra

# The top-level folder `gateway/` holds the package `gateway/gateway`. Under
# --import-mode=importlib pytest names `gateway/tests/conftest.py` "gateway.tests.conftest"
# and would invent an empty `gateway` parent module, hiding the real package; importing the
# real one first makes pytest hang the test modules under it instead.
importlib.import_module("gateway")

DEMO_PASSWORD = "e2e-demo-password"  # noqa: S105 - test accounts only


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide_infra() as found:
        yield found


@pytest.fixture(scope="session")
async def databases(infra: Infra) -> AsyncIterator[Databases]:
    made = Databases(infra)
    yield made
    await made.drop_all()


@pytest.fixture(scope="session")
async def broker_namespace(databases: Databases, infra: Infra) -> AsyncIterator[str]:
    """This run's prefix for queue and exchange names; they are all deleted at the end."""
    namespace = f"bookstore-test-{databases.run_id}"
    yield namespace
    for ns in (namespace, f"{namespace}-e2e"):
        broker = Broker(infra.amqp_url, namespace=ns)
        await broker.connect()
        try:
            await broker.delete_namespace()
        finally:
            await broker.close()


@pytest.fixture(scope="session")
def identity_secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="session")
async def service_database_url(databases: Databases) -> str:
    """One database for the in-process service tests; each app migrates its schema into it."""
    return await databases.create("svc")


@pytest.fixture(scope="session")
def service_settings(
    infra: Infra, service_database_url: str, broker_namespace: str, identity_secret: str
) -> dict[str, Any]:
    """Settings fields for an app under test (pass to the app's Settings(**...))."""
    return {
        "database_url": service_database_url,
        "amqp_url": infra.amqp_url,
        "broker_namespace": broker_namespace,
        "identity_secret": identity_secret,
        "db_pool_size": 5,
        "log_json": False,
        "log_level": "WARNING",
    }


@pytest.fixture(scope="session")
async def stack(
    databases: Databases,
    infra: Infra,
    broker_namespace: str,
    identity_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LocalStack]:
    """The gateway and the three apps as real processes on free ports, migrated and seeded."""
    database_url = await databases.create("e2e")
    running = LocalStack(
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        ports={app.name: free_port() for app in APPS},
        env={
            "DATABASE_URL": database_url,
            "AMQP_URL": infra.amqp_url,
            "BROKER_NAMESPACE": f"{broker_namespace}-e2e",
            "IDENTITY_SECRET": identity_secret,
            "JWT_SECRET": secrets.token_hex(32),
            "DEMO_PASSWORD": DEMO_PASSWORD,
            "PYTHONUNBUFFERED": "1",
            # The suite sends far more than a person would; limits have tests of their own.
            "RATE_LIMIT_PER_IP": "1000000/minute",
            "RATE_LIMIT_PER_PRINCIPAL": "1000000/minute",
            "LOGIN_FAILURES_PER_ACCOUNT": "1000000/minute",
            "LOGIN_FAILURES_PER_IP": "1000000/minute",
        },
    )
    try:
        await asyncio.to_thread(running.migrate)
        await asyncio.to_thread(running.seed)
        running.start()
        await asyncio.to_thread(running.wait_ready, 90.0)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
async def gateway(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
async def e2e_broker(stack: LocalStack, infra: Infra) -> AsyncIterator[Broker]:
    """A connection to the stack's broker namespace, to publish or inspect messages directly."""
    broker = Broker(infra.amqp_url, namespace=stack.env["BROKER_NAMESPACE"])
    await broker.connect()
    yield broker
    await broker.close()
