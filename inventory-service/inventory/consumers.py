"""What inventory does with the messages it receives: one handler per type."""

from datetime import timedelta

from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.messages import CommitStock, ReleaseStock, ReserveStock, ReturnStock
from inventory import stock


def handlers(*, lease: timedelta) -> Handlers:
    async def reserve(ctx: HandlerContext, message: ReserveStock) -> None:
        await ctx.send(
            await stock.reserve_stock(
                ctx.tx,
                ctx.writes,
                order_id=message.order_id,
                lines=message.lines,
                lease=lease,
                customer_id=message.customer_id,
            )
        )

    async def commit(ctx: HandlerContext, message: CommitStock) -> None:
        await ctx.send(await stock.commit_stock(ctx.tx, ctx.writes, order_id=message.order_id))

    async def release(ctx: HandlerContext, message: ReleaseStock) -> None:
        await ctx.send(await stock.release_stock(ctx.tx, ctx.writes, order_id=message.order_id))

    async def return_(ctx: HandlerContext, message: ReturnStock) -> None:
        await ctx.send(await stock.return_stock(ctx.tx, ctx.writes, order_id=message.order_id))

    return {ReserveStock: reserve, CommitStock: commit, ReleaseStock: release, ReturnStock: return_}
