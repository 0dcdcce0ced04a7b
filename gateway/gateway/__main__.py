import sys
from pathlib import Path

from bookstore_shared.cli import ServiceDefinition, main
from gateway.config import get_settings
from gateway.seed import seed_demo_users

SERVICE = ServiceDefinition(
    name="gateway",
    app_factory="gateway.main:create_app",
    migrations_dir=Path(__file__).parent / "migrations",
    default_port=8000,
    settings=get_settings,
    seed=seed_demo_users,
    needs_broker=False,
    edge=True,
)

if __name__ == "__main__":
    sys.exit(main(SERVICE))
