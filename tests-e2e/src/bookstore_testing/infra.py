"""Where the tests find Postgres and RabbitMQ, and the databases each run makes for itself.

Testcontainers starts both where a Docker engine answers; otherwise TEST_DATABASE_URL and
TEST_AMQP_URL (or the local defaults) are used. Either way every run works in databases and
broker names of its own, so runs never see each other's data.

On the Docker host itself containers are reached at 127.0.0.1 (no settings needed, even where
/.dockerenv exists); an image that cannot be had stops the run at once with one line.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from bookstore_shared.db import asyncpg_dsn

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class Infra:
    server_url: str  # any database on the server; ours are made beside it
    amqp_url: str
    source: str  # "testcontainers" or "local"


def _docker_answers() -> bool:
    if os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_AMQP_URL"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # no client config, no socket, no daemon: all mean "no Docker here"
        return False
    return True


POSTGRES_IMAGE = "postgres:16-alpine"
RABBITMQ_IMAGE = "rabbitmq:3.13-management-alpine"
LOOPBACK = "127.0.0.1"


class InfraUnavailable(RuntimeError):
    """The test services cannot be had: the message says what to do instead, in one line."""


def _ensure_images(*images: str) -> None:
    import docker
    from docker.errors import DockerException, ImageNotFound

    client = docker.from_env(timeout=120)
    for image in images:
        try:
            client.images.get(image)
            continue
        except ImageNotFound:
            pass
        try:
            client.images.pull(image)
        except DockerException as exc:
            raise InfraUnavailable(
                f"Docker answers but the image {image} cannot be had ({type(exc).__name__}); "
                "run against running services instead: TEST_DATABASE_URL=postgresql+asyncpg://"
                "user@host:5432/postgres TEST_AMQP_URL=amqp://user:pass@host:5672/"
            ) from None


def _reach_containers_from_the_docker_host() -> None:
    """On the machine the engine runs on, reach containers at their published ports there.

    testcontainers takes a host with /.dockerenv for a container and looks for the bridge's
    gateway, which fails where ports are published on loopback only (as here). A host that
    has the engine's bridge (docker0) in its own network namespace is the Docker host, not
    a container; an explicit TESTCONTAINERS_HOST_OVERRIDE / TC_HOST or connection mode wins."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    if testcontainers_config.tc_host_override or testcontainers_config.connection_mode_override:
        return
    if Path("/sys/class/net/docker0").exists():
        testcontainers_config.tc_host_override = LOOPBACK
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host


@contextlib.contextmanager
def provide_infra() -> Iterator[Infra]:
    if not _docker_answers():
        yield Infra(
            server_url=os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL),
            amqp_url=os.environ.get("TEST_AMQP_URL", DEFAULT_AMQP_URL),
            source="local",
        )
        return
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.rabbitmq import RabbitMqContainer

    _ensure_images(POSTGRES_IMAGE, RABBITMQ_IMAGE)
    _reach_containers_from_the_docker_host()
    with (
        PostgresContainer(POSTGRES_IMAGE, driver="asyncpg") as pg,
        RabbitMqContainer(RABBITMQ_IMAGE) as mq,
    ):
        amqp = (
            f"amqp://{mq.username}:{mq.password}@{mq.get_container_host_ip()}:"
            f"{mq.get_exposed_port(mq.port)}/"
        )
        yield Infra(server_url=pg.get_connection_url(), amqp_url=amqp, source="testcontainers")


class Databases:
    """Creates databases named for this run and drops every one of them at the end."""

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self.run_id = uuid.uuid4().hex[:10]
        self.created: list[str] = []

    def url_for(self, name: str) -> str:
        return make_url(self.infra.server_url).set(database=name).render_as_string(False)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.infra.server_url), timeout=10)

    async def create(self, purpose: str) -> str:
        name = f"bookstore_test_{self.run_id}_{purpose}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self.url_for(name)

    async def drop_all(self) -> None:
        conn = await self._admin()
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.clear()
