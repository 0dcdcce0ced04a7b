import sys
from pathlib import Path

from bookstore_shared.cli import ServiceDefinition, main
from bookstore_shared.messaging import INVENTORY_COMMANDS
from inventory.config import get_settings
from inventory.models import OUTBOX
from inventory.seed import seed_catalog

SERVICE = ServiceDefinition(
    name="inventory",
    app_factory="inventory.main:create_app",
    migrations_dir=Path(__file__).parent / "migrations",
    default_port=8001,
    settings=get_settings,
    queues=(INVENTORY_COMMANDS,),
    outbox=OUTBOX,
    seed=seed_catalog,
)

if __name__ == "__main__":
    sys.exit(main(SERVICE))
