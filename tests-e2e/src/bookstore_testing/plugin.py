"""Fixtures every test directory shares (registered as a pytest plugin by this package)."""

import contextlib
import importlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from bookstore_shared.messaging import Broker
from bookstore_shared.stack import LocalStack
from bookstore_testing.infra import Databases, Infra, InfraUnavailable, provide_infra
from bookstore_testing.mailbox import Mailbox
from bookstore_testing.shop import eventually
from bookstore_testing.stacks import STACK_PURPOSES, delete_namespace, running_stack

# The top-level folder `gateway/` holds the package `gateway/gateway`. Under
# --import-mode=importlib pytest names `gateway/tests/conftest.py` "gateway.tests.conftest"
# and would invent an empty `gateway` parent module, hiding the real package; importing the
# real one first makes pytest hang the test modules under it instead.
importlib.import_module("gateway")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with contextlib.ExitStack() as cleanup:
        try:
            found = cleanup.enter_context(provide_infra())
        except InfraUnavailable as exc:
            pytest.exit(f"test services: {exc}", returncode=3)
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
    for ns in (namespace, *(f"{namespace}-{purpose}" for purpose in STACK_PURPOSES)):
        await delete_namespace(infra, ns)


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
    """The stack most end-to-end tests share: one process of each app."""
    async with running_stack(
        databases=databases,
        infra=infra,
        namespace=f"{broker_namespace}-e2e",  # one of STACK_PURPOSES
        identity_secret=identity_secret,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        mail_dir=tmp_path_factory.mktemp("stack-mail"),
        purpose="e2e",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def mailbox(stack: LocalStack) -> Mailbox:
    """The mail the stack's gateway sent, as its mail sink saved it."""
    assert stack.mail_dir is not None
    return Mailbox(stack.mail_dir)


@pytest.fixture(scope="session")
async def gateway(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
async def _e2e_broker(stack: LocalStack, infra: Infra) -> AsyncIterator[Broker]:
    broker = Broker(infra.amqp_url, namespace=stack.env["BROKER_NAMESPACE"])
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture
async def e2e_broker(_e2e_broker: Broker) -> Broker:
    """A connection to the stack's broker namespace, to publish or inspect messages directly;
    connected again first if a test restarted the broker."""

    async def connected() -> bool:
        connection = _e2e_broker.connection
        return not connection.is_closed and connection.transport is not None

    await eventually(connected, within=60, what="the test's broker connection to be back")
    return _e2e_broker
