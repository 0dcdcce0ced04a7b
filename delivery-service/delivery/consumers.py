"""What delivery does with the messages it receives: one handler per type."""

from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.messages import CancelDelivery, ScheduleDelivery
from delivery import service


def handlers(*, served_countries: frozenset[str]) -> Handlers:
    async def schedule(ctx: HandlerContext, message: ScheduleDelivery) -> None:
        await ctx.send(
            await service.schedule_delivery(
                ctx.tx,
                ctx.writes,
                order_id=message.order_id,
                customer_id=message.customer_id,
                address=message.address,
                served_countries=served_countries,
            )
        )

    async def cancel(ctx: HandlerContext, message: CancelDelivery) -> None:
        await ctx.send(
            await service.cancel_delivery(
                ctx.tx,
                ctx.writes,
                order_id=message.order_id,
                customer_id=message.customer_id,
                address=message.address,
            )
        )

    return {ScheduleDelivery: schedule, CancelDelivery: cancel}
