"""Sales consumes on three queues: the saga's answers, the payment commands (refunds; the
saga authorises payments itself), and the catalog's changes (for carts). Each message type has
one function; this file is where they are bound."""

import functools
from datetime import timedelta
from typing import Any

import structlog

from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.messages import (
    DeliveryCancelled,
    DeliveryCancelRefused,
    DeliveryRejected,
    DeliveryScheduled,
    DeliveryStatusChanged,
    Message,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentRefunded,
    ReservationExpired,
    StockCommitRejected,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
    StockReturned,
)
from bookstore_shared.messaging import SALES_CATALOG, SALES_PAYMENTS, SALES_SAGA
from bookstore_shared.outbox import Outbox
from sales import cart, payments, saga, saga_store
from sales.watch import OrderWatch

log = structlog.get_logger(__name__)

SAGA_ANSWERS = {
    StockReserved: saga.on_stock_reserved,
    StockRejected: saga.on_stock_rejected,
    StockCommitted: saga.on_stock_committed,
    StockCommitRejected: saga.on_stock_commit_rejected,
    ReservationExpired: saga.on_reservation_expired,
    StockReleased: saga.on_stock_released,
    StockReturned: saga.on_stock_returned,
    PaymentAuthorized: saga.on_payment_authorized,
    PaymentDeclined: saga.on_payment_declined,
    PaymentRefunded: saga.on_payment_refunded,
    DeliveryScheduled: saga.on_delivery_scheduled,
    DeliveryRejected: saga.on_delivery_rejected,
    DeliveryCancelled: saga.on_delivery_cancelled,
    DeliveryCancelRefused: saga.on_delivery_cancel_refused,
    DeliveryStatusChanged: saga.on_delivery_status_changed,
}


def saga_handlers(
    *,
    outbox: Outbox,
    step_timeout: timedelta,
    provider: payments.CardProvider,
    watch: OrderWatch | None = None,
) -> Handlers:
    """Each answer is applied to its order as read (no lock: the save is guarded by the
    order's version, and a message whose order changed meanwhile is handled again on a fresh
    read); the payment is authorised in the same write (from StockReserved). An order made
    final here is handed to this process's waiters (`watch`) as it was written."""

    def bind(on_answer: Any) -> Any:
        async def handle(ctx: HandlerContext, message: Message) -> None:
            pays = on_answer is saga.on_stock_reserved
            order = await saga_store.read_order(ctx.tx, message.order_id, with_payment=pays)
            if order is None:
                log.warning("saga_reply_for_unknown_order", order_id=str(message.order_id))
                return
            run = saga_store.Saga(
                ctx.tx,
                outbox,
                step_timeout,
                causation_id=ctx.envelope.message_id,
                reply=message,
                reply_message_id=ctx.envelope.message_id,
                writes=ctx.writes,
                payments=functools.partial(
                    payments.authorize, ctx.writes, provider, found=order.payment
                ),
                settled=watch.settled if watch is not None else None,
            )
            await on_answer(run, order, message)
            await run.save(order)

        return handle

    return {message_type: bind(on_answer) for message_type, on_answer in SAGA_ANSWERS.items()}


def queues(
    *,
    outbox: Outbox,
    step_timeout: timedelta,
    provider: payments.CardProvider,
    watch: OrderWatch | None = None,
) -> dict[str, Handlers]:
    return {
        SALES_SAGA: saga_handlers(
            outbox=outbox, step_timeout=step_timeout, provider=provider, watch=watch
        ),
        SALES_PAYMENTS: payments.handlers(provider),
        SALES_CATALOG: cart.catalog_handlers(),
    }
