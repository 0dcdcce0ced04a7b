import sys
from pathlib import Path

from bookstore_shared.cli import ServiceDefinition, main
from delivery.config import get_settings

SERVICE = ServiceDefinition(
    name="delivery",
    app_factory="delivery.main:create_app",
    migrations_dir=Path(__file__).parent / "migrations",
    default_port=8003,
    settings=get_settings,
)

if __name__ == "__main__":
    sys.exit(main(SERVICE))
