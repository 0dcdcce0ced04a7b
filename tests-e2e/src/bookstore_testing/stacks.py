"""Stacks started for a purpose (the end-to-end suite, the benchmark, the soak check): each in
a database and a broker namespace of its own, removed afterwards."""

import asyncio
import contextlib
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from bookstore_shared.messaging import Broker
from bookstore_shared.stack import APPS, LocalStack, replica_names
from bookstore_testing.harness import free_port
from bookstore_testing.infra import Databases, Infra, provide_infra

# Each stack a test run starts has its own database and broker namespace, named by purpose.
STACK_PURPOSES = ("e2e", "replicas", "traces")
DEMO_PASSWORD = "e2e-demo-password"  # noqa: S105 - test accounts only
# Far more than a person would send; the limits have tests of their own.
NO_RATE_LIMITS = {
    "RATE_LIMIT_PER_IP": "1000000/minute",
    "RATE_LIMIT_PER_PRINCIPAL": "1000000/minute",
    "LOGIN_FAILURES_PER_ACCOUNT": "1000000/minute",
    "LOGIN_FAILURES_PER_IP": "1000000/minute",
    "PASSWORD_RESET_PER_ADDRESS": "1000000/minute",
    "PASSWORD_RESET_PER_IP": "1000000/minute",
}


@contextlib.asynccontextmanager
async def running_stack(
    *,
    databases: Databases,
    infra: Infra,
    namespace: str,
    identity_secret: str,
    log_dir: Path,
    purpose: str,
    replicas: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
    mail_dir: Path | None = None,
    python: str | None = None,
) -> AsyncIterator[LocalStack]:
    """The gateway and the three apps as real processes on free ports, migrated and seeded,
    in a database of their own (`purpose` names it) and a broker namespace of their own, with
    a mail sink keeping the gateway's mail in `mail_dir` (by default `<log_dir>/mail`)."""
    database_url = await databases.create(purpose)
    replicas = replicas or {}
    running = LocalStack(
        log_dir=log_dir,
        ports={
            name: free_port()
            for app in APPS
            for name in replica_names(app.name, replicas.get(app.name, 1))
        },
        replicas=replicas,
        mail_dir=mail_dir or log_dir / "mail",
        python=python or sys.executable,
        env={
            "DATABASE_URL": database_url,
            "AMQP_URL": infra.amqp_url,
            "BROKER_NAMESPACE": namespace,
            "IDENTITY_SECRET": identity_secret,
            "JWT_SECRET": secrets.token_hex(32),
            "DEMO_PASSWORD": DEMO_PASSWORD,
            "PYTHONUNBUFFERED": "1",
            **NO_RATE_LIMITS,
            **(env or {}),
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


@contextlib.asynccontextmanager
async def standalone_stack(
    purpose: str,
    *,
    env: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
    python: str | None = None,
) -> AsyncIterator[tuple[LocalStack, str]]:
    """A stack for a command outside pytest (bench, soak), with the infrastructure the tests
    would use; yields it and its identity secret. Everything it made is removed at the end.
    `python`: the interpreter of another checkout, to run that checkout's apps instead."""
    async with contextlib.AsyncExitStack() as cleanup:
        infra = cleanup.enter_context(provide_infra())
        databases = Databases(infra)
        cleanup.push_async_callback(databases.drop_all)
        namespace = f"bookstore-{purpose}-{databases.run_id}"
        cleanup.push_async_callback(delete_namespace, infra, namespace)
        identity_secret = secrets.token_hex(32)
        print(f"starting a stack of our own ({namespace}) ...", flush=True)
        stack = await cleanup.enter_async_context(
            running_stack(
                databases=databases,
                infra=infra,
                namespace=namespace,
                identity_secret=identity_secret,
                log_dir=Path(tempfile.mkdtemp(prefix=f"bookstore-{purpose}-")),
                purpose=purpose,
                env=env,
                replicas=replicas,
                python=python,
            )
        )
        yield stack, identity_secret


async def delete_namespace(infra: Infra, namespace: str) -> None:
    broker = Broker(infra.amqp_url, namespace=namespace)
    await broker.connect()
    try:
        await broker.delete_namespace()
    finally:
        await broker.close()
