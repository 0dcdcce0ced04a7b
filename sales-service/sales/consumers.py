"""Sales consumes on two queues: the saga's answers, and the payment commands."""

from datetime import timedelta

from bookstore_shared.consumer import Handlers
from bookstore_shared.messaging import SALES_PAYMENTS, SALES_SAGA
from bookstore_shared.outbox import Outbox
from sales import payments, saga


def queues(
    *, outbox: Outbox, step_timeout: timedelta, provider: payments.CardProvider
) -> dict[str, Handlers]:
    return {
        SALES_SAGA: saga.handlers(outbox=outbox, step_timeout=step_timeout),
        SALES_PAYMENTS: payments.handlers(provider),
    }
