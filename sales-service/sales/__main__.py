import sys
from pathlib import Path

from bookstore_shared.cli import ServiceDefinition, main
from bookstore_shared.messaging import SALES_PAYMENTS, SALES_SAGA
from sales.config import get_settings
from sales.models import OUTBOX

SERVICE = ServiceDefinition(
    name="sales",
    app_factory="sales.main:create_app",
    migrations_dir=Path(__file__).parent / "migrations",
    default_port=8002,
    settings=get_settings,
    queues=(SALES_SAGA, SALES_PAYMENTS),
    outbox=OUTBOX,
)

if __name__ == "__main__":
    sys.exit(main(SERVICE))
