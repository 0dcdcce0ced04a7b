"""Payments: a card provider interface, the fake provider, authorisation (run by the saga
in-process), and the payment consumer (refunds).

The card number is handed to the provider once, when the order is placed, in exchange for a
token; only the token and the last four digits are kept. The fake provider answers by card:
4242424242424242 is approved, 4000000000000002 declined, 4000000000009995 declined for
insufficient funds, an expired card declined; any other valid number is approved.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Table, bindparam, select, update

from bookstore_shared.columns import utcnow
from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.messages import (
    AuthorizePayment,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
)
from bookstore_shared.writes import Writes, insert_row, row
from sales.models import Payment, PaymentStatus

DeclineReason = Literal["payment_declined", "insufficient_funds"]


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


class CardDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str = Field(
        pattern=r"^[0-9]{12,19}$",
        repr=False,
        description="Its check digit must be right (Luhn)",
        json_schema_extra={"format": "card-number"},
    )
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(pattern=r"^[0-9]{3,4}$", repr=False)

    @field_validator("card_number")
    @classmethod
    def _luhn(cls, value: str) -> str:
        if not luhn_valid(value):
            raise ValueError("not a valid card number")
        return value

    @property
    def expired(self) -> bool:
        """Past its expiry month. Not refused here: the provider declines it, as real ones do
        (the date decides, which no schema can say)."""
        now = datetime.now(UTC)
        return (self.exp_year, self.exp_month) < (now.year, now.month)

    @property
    def last4(self) -> str:
        return self.card_number[-4:]


@dataclass(frozen=True)
class Authorization:
    approved: bool
    reference: str | None = None
    decline_reason: DeclineReason | None = None


class CardProvider(Protocol):
    def tokenize(self, card: CardDetails) -> str: ...

    async def authorize(
        self, *, token: str, amount_cents: int, idempotency_key: str
    ) -> Authorization: ...

    async def refund(self, *, reference: str, amount_cents: int, idempotency_key: str) -> None: ...


class FakeCardProvider:
    """A stand-in for a card provider, with the provider's well-known test cards."""

    OUTCOMES: dict[str, DeclineReason] = {
        "4000000000000002": "payment_declined",
        "4000000000009995": "insufficient_funds",
    }

    def tokenize(self, card: CardDetails) -> str:
        outcome = "payment_declined" if card.expired else self.OUTCOMES.get(card.card_number)
        return f"fake_{outcome or 'approved'}_{uuid.uuid4().hex}"

    async def authorize(
        self, *, token: str, amount_cents: int, idempotency_key: str
    ) -> Authorization:
        outcome = token.removeprefix("fake_").rsplit("_", 1)[0]
        if outcome in ("payment_declined", "insufficient_funds"):
            return Authorization(approved=False, decline_reason=outcome)  # type: ignore[arg-type]
        reference = uuid.uuid5(uuid.NAMESPACE_URL, f"fake-auth:{idempotency_key}").hex
        return Authorization(approved=True, reference=f"fake_auth_{reference}")

    async def refund(self, *, reference: str, amount_cents: int, idempotency_key: str) -> None:
        return None


PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]
_PAYMENT_OF_ORDER = select(
    PAYMENTS.c.id,
    PAYMENTS.c.status,
    PAYMENTS.c.amount_cents,
    PAYMENTS.c.decline_reason,
    PAYMENTS.c.provider_reference,
    PAYMENTS.c.refunded_cents,
).where(PAYMENTS.c.order_id == bindparam("order"))
# One payment an order (a unique order_id): a second one, written meanwhile, fails the write.
_INSERT_PAYMENT = insert_row(PAYMENTS, "payment")
_REFUNDED = (  # the guard of a refund: the payment is still authorised, as it was read
    update(PAYMENTS)
    .where(PAYMENTS.c.id == bindparam("payment"), PAYMENTS.c.status == PaymentStatus.AUTHORIZED)
    .values(
        status=PaymentStatus.REFUNDED,
        refunded_cents=PAYMENTS.c.amount_cents,
        updated_at=bindparam("now"),
    )
    .returning(PAYMENTS.c.id)
)


def _new_payment(writes: Writes, **values: Any) -> dict[str, Any]:
    """A payment row, written with the caller's other writes."""
    now = utcnow()
    payment = {
        "id": uuid.uuid4(),
        "provider_reference": None,
        "decline_reason": None,
        "refunded_cents": 0,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    writes.add(_INSERT_PAYMENT, row("payment", payment))
    return payment


async def authorize(
    writes: Writes,
    provider: CardProvider,
    command: AuthorizePayment,
    *,
    found: Mapping[str, Any] | None,
) -> PaymentAuthorized | PaymentDeclined:
    """Authorise an order's payment once: the provider's idempotency key is the order (asked
    again, as when the write is tried again, it answers the same), and the payment row goes
    with the caller's `writes`. Asked again (a retried command), the same answer as the first
    time; after a refund that came first, declined. `found`: the order's payment row as the
    caller read it (None: it has none)."""
    if found is not None:
        payment = dict(found)
    else:
        result = await provider.authorize(
            token=command.payment_token,
            amount_cents=command.amount_cents,
            idempotency_key=str(command.order_id),
        )
        payment = _new_payment(
            writes,
            order_id=command.order_id,
            amount_cents=command.amount_cents,
            status=PaymentStatus.AUTHORIZED if result.approved else PaymentStatus.DECLINED,
            provider_reference=result.reference,
            decline_reason=result.decline_reason,
        )
    if payment["status"] == PaymentStatus.VOIDED:
        return PaymentDeclined(order_id=command.order_id, reason="voided")
    if payment["status"] == PaymentStatus.DECLINED:
        reason: DeclineReason = payment["decline_reason"] or "payment_declined"
        return PaymentDeclined(order_id=command.order_id, reason=reason)
    return PaymentAuthorized(
        order_id=command.order_id, payment_id=payment["id"], amount_cents=payment["amount_cents"]
    )


def handlers(provider: CardProvider) -> Handlers:
    """The payment commands' consumer. The saga authorises in-process (`authorize`, from its
    StockReserved handler); an AuthorizePayment message is still answered: one sent, or resent
    by the deadline sweeper, for a step begun before payment was folded into the saga."""

    async def authorize_command(ctx: HandlerContext, message: AuthorizePayment) -> None:
        found = await ctx.tx.row(_PAYMENT_OF_ORDER, {"order": message.order_id})
        await ctx.send(await authorize(ctx.writes, provider, message, found=found))

    async def refund(ctx: HandlerContext, message: RefundPayment) -> None:
        payment = await ctx.tx.row(_PAYMENT_OF_ORDER, {"order": message.order_id})
        refunded = 0
        if payment is None:
            # Nothing authorised yet (the command is late, or lost): a voided payment is kept,
            # so that the authorisation, should it come, is refused and never made.
            voided = PaymentStatus.VOIDED
            _new_payment(ctx.writes, order_id=message.order_id, amount_cents=0, status=voided)
        elif payment["status"] == PaymentStatus.AUTHORIZED:
            assert payment["provider_reference"] is not None
            await provider.refund(
                reference=payment["provider_reference"],
                amount_cents=payment["amount_cents"],
                idempotency_key=f"refund:{message.order_id}",
            )
            ctx.writes.guard(_REFUNDED, {"payment": payment["id"], "now": utcnow()})
            refunded = payment["amount_cents"]
        else:
            refunded = payment["refunded_cents"]
        await ctx.send(PaymentRefunded(order_id=message.order_id, refunded_cents=refunded))

    return {AuthorizePayment: authorize_command, RefundPayment: refund}
