"""The command line every app shares:
`python -m <app> migrate | seed | serve | replay-dead-letters`."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError
from sqlalchemy import Table

from bookstore_shared import migrations
from bookstore_shared.db import Database, ensure_database
from bookstore_shared.messaging import Broker
from bookstore_shared.outbox import unpark
from bookstore_shared.preflight import broker_problem, postgres_problem
from bookstore_shared.settings import ServiceSettings

Seed = Callable[[ServiceSettings], Coroutine[Any, Any, str]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    app_factory: str  # "inventory.main:create_app", for uvicorn --factory
    migrations_dir: Path
    default_port: int
    settings: Callable[[], ServiceSettings]
    seed: Seed | None = None
    needs_broker: bool = True
    queues: tuple[str, ...] = ()  # the broker queues the app consumes (by purpose)
    outbox: Table | None = None
    # The edge faces clients, so their X-Forwarded-* headers are not believed there unless
    # FORWARDED_ALLOW_IPS (uvicorn's own setting) names a proxy in front of it. Apps behind
    # the gateway take the gateway's headers.
    edge: bool = False


def _settings_problem(exc: ValidationError) -> str:
    """The first thing wrong with the settings, in one line, named as its variable."""
    error = exc.errors()[0]
    where = "_".join(str(part) for part in error["loc"]).upper()
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _migrate(service: ServiceDefinition, settings: ServiceSettings) -> int:
    if problem := asyncio.run(postgres_problem(settings.database_url)):
        return _fail(problem)
    created = asyncio.run(ensure_database(settings.database_url))
    migrations.upgrade(service.migrations_dir, settings.database_url)
    note = " (database created)" if created else ""
    print(f"{service.name}: schema migrated to head{note}")
    return 0


def _seed(service: ServiceDefinition, settings: ServiceSettings) -> int:
    if service.seed is None:
        print(f"{service.name}: nothing to seed")
        return 0
    if problem := asyncio.run(postgres_problem(settings.database_url)):
        return _fail(problem)
    print(f"{service.name}: {asyncio.run(service.seed(settings))}")
    return 0


def _replay_dead_letters(service: ServiceDefinition, settings: ServiceSettings) -> int:
    """Dead letters back to their queues, and parked outbox rows back in line."""
    if not service.queues and service.outbox is None:
        print(f"{service.name}: has no queues and no outbox, so nothing to replay")
        return 0
    for problem in (
        asyncio.run(postgres_problem(settings.database_url)),
        asyncio.run(broker_problem(settings.amqp_url)),
    ):
        if problem:
            return _fail(problem)

    async def replay() -> list[str]:
        said = []
        broker = Broker(settings.amqp_url, namespace=settings.broker_namespace)
        await broker.connect()
        try:
            for queue in service.queues:
                moved = await broker.replay_dead_letters(queue)
                said.append(f"{moved} dead letters of {queue} sent back to it")
        finally:
            await broker.close()
        if service.outbox is not None:
            db = Database.from_settings(settings)
            try:
                said.append(f"{await unpark(db, service.outbox)} parked outbox rows back in line")
            finally:
                await db.dispose()
        return said

    for line in asyncio.run(replay()):
        print(f"{service.name}: {line}")
    return 0


def _serve(service: ServiceDefinition, settings: ServiceSettings, args: argparse.Namespace) -> int:
    problems = [asyncio.run(postgres_problem(settings.database_url))]
    if service.needs_broker:
        problems.append(asyncio.run(broker_problem(settings.amqp_url)))
    if found := [p for p in problems if p]:
        return _fail(found[0])
    uvicorn.run(
        service.app_factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # The standard asyncio loop: measured here it serves as fast as uvloop with a shorter
        # tail (README, Performance), and no thread-safety slip can crash it (proxy.py).
        loop="asyncio",
        http="httptools",
        log_config=None,  # the app configures logging itself (JSON, with request ids)
        proxy_headers=not service.edge or "FORWARDED_ALLOW_IPS" in os.environ,
        server_header=False,
        timeout_keep_alive=int(settings.http_keepalive_seconds),
        # In-flight requests (the longest is a `Prefer: wait`) may finish after SIGTERM.
        timeout_graceful_shutdown=int(settings.order_wait_max_seconds) + 5,
    )
    return 0


def main(service: ServiceDefinition, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {service.name}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if needed and upgrade the schema")
    commands.add_parser("seed", help="load demo data (idempotent)")
    commands.add_parser(
        "replay-dead-letters",
        help="send the app's dead letters back to their queues (safe to run twice)",
    )
    serve = commands.add_parser("serve", help="run the HTTP app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=service.default_port)
    serve.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    try:
        settings = service.settings()
    except ValidationError as exc:
        return _fail(f"{service.name}: configuration: {_settings_problem(exc)}")
    if args.command == "migrate":
        return _migrate(service, settings)
    if args.command == "seed":
        return _seed(service, settings)
    if args.command == "replay-dead-letters":
        return _replay_dead_letters(service, settings)
    return _serve(service, settings, args)
