"""The command line every app shares: `python -m <app> migrate | seed | serve`."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from bookstore_shared import migrations
from bookstore_shared.db import ensure_database
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
    # The edge faces clients, so their X-Forwarded-* headers are not believed there unless
    # FORWARDED_ALLOW_IPS (uvicorn's own setting) names a proxy in front of it. Apps behind
    # the gateway take the gateway's headers.
    edge: bool = False


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
        log_config=None,  # the app configures logging itself (JSON, with request ids)
        proxy_headers=not service.edge or "FORWARDED_ALLOW_IPS" in os.environ,
        server_header=False,
    )
    return 0


def main(service: ServiceDefinition, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {service.name}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if needed and upgrade the schema")
    commands.add_parser("seed", help="load demo data (idempotent)")
    serve = commands.add_parser("serve", help="run the HTTP app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=service.default_port)
    serve.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    settings = service.settings()
    if args.command == "migrate":
        return _migrate(service, settings)
    if args.command == "seed":
        return _seed(service, settings)
    return _serve(service, settings, args)
