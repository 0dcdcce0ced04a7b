"""Demo accounts for development. Loading them twice changes nothing."""

from sqlalchemy import select

from bookstore_shared.db import Database
from bookstore_shared.settings import ServiceSettings
from gateway.config import get_settings
from gateway.models import Role, User
from gateway.security import Passwords

DEMO_USERS = (
    ("admin@bookstore.local", Role.ADMIN),
    ("staff@bookstore.local", Role.STAFF),
    ("customer@bookstore.local", Role.CUSTOMER),
)


async def seed_demo_users(settings: ServiceSettings) -> str:
    gateway_settings = get_settings()
    if gateway_settings.environment == "production":
        return "demo users skipped: they are never created in production"
    password = gateway_settings.demo_password.get_secret_value()
    passwords = Passwords(concurrency=1)
    db = Database(settings.database_url, pool_size=1)
    added = []
    try:
        async with db.unit_of_work() as session:
            for email, role in DEMO_USERS:
                if await session.scalar(select(User.id).where(User.email == email)) is None:
                    session.add(
                        User(email=email, role=role, password_hash=await passwords.hash(password))
                    )
                    added.append(email)
    finally:
        await db.dispose()
    return f"demo users: {len(added)} added, {len(DEMO_USERS) - len(added)} already present"
