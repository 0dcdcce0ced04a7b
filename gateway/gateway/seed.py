"""Accounts the gateway brings: the demo ones for development, and the first admin named in
the settings. Loading either twice changes nothing."""

from bookstore_shared.db import Database
from bookstore_shared.settings import ServiceSettings
from gateway.config import Settings
from gateway.errors import EmailTaken
from gateway.models import Role, User
from gateway.security import Passwords
from gateway.service import find_user, register_user

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


async def ensure_admin(db: Database, passwords: Passwords, settings: Settings) -> str | None:
    """ADMIN_EMAIL becomes an admin: created with ADMIN_PASSWORD if it has no account, promoted
    (and reactivated) if it has one, whose password stays as it is. Replicas starting at once
    may race: whichever registers first, the others promote."""
    if settings.admin_email is None or settings.admin_password is None:
        return None
    email, password = settings.admin_email, settings.admin_password.get_secret_value()
    async with db.unit_of_work() as session:
        user: User | None = await find_user(session, email=email)
        if user is None:
            try:
                async with session.begin_nested():
                    admin = Role.ADMIN
                    await register_user(
                        session, passwords=passwords, email=email, password=password, role=admin
                    )
                return f"admin {email.lower()} created"
            except EmailTaken:
                user = await find_user(session, email=email)
                assert user is not None
        if user.role == Role.ADMIN and user.is_active:
            return f"admin {user.email} present"
        user.role, user.is_active = Role.ADMIN, True
    return f"admin {user.email} promoted"
