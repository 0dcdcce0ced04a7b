"""Demo accounts for development. Loading them twice changes nothing."""

from bookstore_shared.db import Database
from bookstore_shared.settings import ServiceSettings
from gateway.config import Settings
from gateway.errors import EmailTaken
from gateway.models import Role
from gateway.security import Passwords
from gateway.service import register_user

DEMO_USERS = (
    ("admin@bookstore.local", Role.ADMIN),
    ("staff@bookstore.local", Role.STAFF),
    ("customer@bookstore.local", Role.CUSTOMER),
)


async def seed_demo_users(settings: ServiceSettings) -> str:
    assert isinstance(settings, Settings), "the gateway's command line passes its own settings"
    if settings.environment == "production":
        return "demo users skipped: they are never created in production"
    password = settings.demo_password.get_secret_value()
    passwords = Passwords(concurrency=1)
    db = Database(settings.database_url, pool_size=1)
    added = []
    try:
        async with db.unit_of_work() as session:
            for email, role in DEMO_USERS:
                try:
                    await register_user(
                        session, passwords=passwords, email=email, password=password, role=role
                    )
                except EmailTaken:
                    continue
                added.append(email)
    finally:
        await db.dispose()
    return f"demo users: {len(added)} added, {len(DEMO_USERS) - len(added)} already present"
