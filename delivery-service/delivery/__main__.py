import sys
from pathlib import Path

from bookstore_shared.cli import ServiceDefinition, main
from bookstore_shared.messaging import DELIVERY_COMMANDS
from delivery.config import get_settings
from delivery.models import OUTBOX

SERVICE = ServiceDefinition(
    name="delivery",
    app_factory="delivery.main:create_app",
    migrations_dir=Path(__file__).parent / "migrations",
    default_port=8003,
    settings=get_settings,
    queues=(DELIVERY_COMMANDS,),
    outbox=OUTBOX,
)

if __name__ == "__main__":
    sys.exit(main(SERVICE))
