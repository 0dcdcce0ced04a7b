"""The domain's metrics, one set per process (so per replica), on prometheus-client's default
registry; each app's `GET /metrics` shows them beside its request metrics.

Counters count from the process's start (Prometheus' `rate()` copes with restarts). Gauges
read from the database (the outbox backlog) are refreshed when /metrics is asked for.
"""

from prometheus_client import Counter, Gauge, Histogram

ORDERS_FINISHED = Counter(
    "bookstore_orders_finished",
    "Orders whose saga reached a final status, by status and cancel reason.",
    ("status", "reason"),
)
SAGA_DURATION = Histogram(
    "bookstore_saga_duration_seconds",
    "From an order's placing to its final status.",
    ("status",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
STEP_RESENDS = Counter(
    "bookstore_saga_step_resends",
    "Saga commands sent again because no reply came in time, by step.",
    ("step",),
)
COMPENSATIONS = Counter(
    "bookstore_saga_compensations",
    "Compensations the saga asked for (stock released, payment refunded...), by action.",
    ("action",),
)
MESSAGES_HANDLED = Counter(
    "bookstore_messages_handled",
    "Messages taken from a queue, by queue and outcome (processed, duplicate, failed).",
    ("queue", "outcome"),
)
MESSAGES_REDELIVERED = Counter(
    "bookstore_messages_redelivered",
    "Messages the broker delivered again (a consumer died or lost its channel holding them).",
    ("queue",),
)
MESSAGES_DEAD_LETTERED = Counter(
    "bookstore_messages_dead_lettered",
    "Messages parked in a queue's dead letters (unreadable, or failed on every try).",
    ("queue",),
)
OUTBOX_BACKLOG = Gauge(
    "bookstore_outbox_backlog", "Outbox rows committed and not published yet (parked ones apart)."
)
OUTBOX_OLDEST_AGE = Gauge(
    "bookstore_outbox_oldest_age_seconds", "Age of the oldest outbox row not published yet."
)
OUTBOX_PARKED = Gauge(
    "bookstore_outbox_parked", "Outbox rows the broker refused on every try (replay to resend)."
)
DB_POOL_IN_USE = Gauge("bookstore_db_pool_in_use", "Database connections checked out now.")
DB_POOL_SIZE = Gauge("bookstore_db_pool_size", "Database connections the pool may hold.")
RATE_LIMIT_REJECTIONS = Counter(
    "bookstore_ratelimit_rejections",
    "Requests refused with 429, by the limit that refused them.",
    ("limit",),
)
BREAKER_STATE = Gauge(
    "bookstore_breaker_state",
    "Circuit breaker of each upstream replica: 0 closed, 1 half-open, 2 open.",
    ("upstream",),
)
