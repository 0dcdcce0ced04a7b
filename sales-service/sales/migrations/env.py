from alembic import context
from sqlmodel import SQLModel

from bookstore_shared.migrations import run_migrations
from sales import models

run_migrations(context, schema=models.SCHEMA, metadata=SQLModel.metadata)
