"""One-line answers to "is Postgres there?" and "is RabbitMQ there?", for commands a person runs."""

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import aio_pika
import asyncpg
from sqlalchemy import make_url

from bookstore_shared.db import asyncpg_dsn

TIMEOUT_SECONDS = 5.0


def safe_url(url: str) -> str:
    """The URL with any password masked, fit to print."""
    return make_url(url).render_as_string(hide_password=True) if "://" in url else url


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


async def postgres_problem(database_url: str) -> str | None:
    """None if the server answers (the database itself may not exist yet)."""
    server = make_url(database_url).set(database="postgres").render_as_string(False)
    try:
        conn = await asyncpg.connect(asyncpg_dsn(server), timeout=TIMEOUT_SECONDS)
        await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return (
            f"Postgres is not answering at {safe_url(database_url)} ({_reason(exc)}). "
            "Start one (e.g. `docker compose up -d postgres`, or your distribution's "
            "postgresql package) or point DATABASE_URL at one."
        )
    return None


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The client libraries log their own connect failures; here we report them ourselves."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


async def broker_problem(amqp_url: str) -> str | None:
    try:
        with _quiet("aiormq", "aio_pika"):
            conn = await asyncio.wait_for(aio_pika.connect(amqp_url), TIMEOUT_SECONDS)
            await conn.close()
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        return (
            f"RabbitMQ is not answering at {safe_url(amqp_url)} ({_reason(exc)}). "
            "Start one (e.g. `docker compose up -d rabbitmq`, or `rabbitmq-server -detached`) "
            "or point AMQP_URL at one."
        )
    return None
