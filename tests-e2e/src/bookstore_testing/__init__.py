"""The test harness: real Postgres and RabbitMQ, a database and broker namespace per run."""
