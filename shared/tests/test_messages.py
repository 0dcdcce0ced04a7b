"""Messages between apps: tolerant of fields a newer sender adds, strict about the rest."""

import uuid

import pytest
from pydantic import ValidationError

from bookstore_shared.messages import Envelope, Line, ReserveStock, ScheduleDelivery


def _envelope(message_type: str, payload: dict[str, object]) -> Envelope:
    wrapped = Envelope.wrap(
        ReserveStock(order_id=uuid.uuid4(), lines=[Line(book_id=uuid.uuid4(), quantity=1)])
    )
    return wrapped.model_copy(update={"type": message_type, "payload": payload})


def test_message_with_fields_from_a_newer_sender_is_read() -> None:
    order_id, book_id = uuid.uuid4(), uuid.uuid4()
    envelope = _envelope(
        "ReserveStock",
        {
            "order_id": str(order_id),
            "lines": [{"book_id": str(book_id), "quantity": 2, "gift_wrap": True}],
            "priority": "express",
        },
    )
    message = envelope.message()
    assert message == ReserveStock(order_id=order_id, lines=[Line(book_id=book_id, quantity=2)])


def test_nested_address_with_a_new_field_is_read() -> None:
    address = {
        "name": "Ann",
        "line1": "1 High Street",
        "city": "Bath",
        "postal_code": "BA1 1AA",
        "country": "GB",
        "what3words": "index.home.raft",
    }
    payload = {"order_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()), "address": address}
    message = _envelope("ScheduleDelivery", payload).message()
    assert isinstance(message, ScheduleDelivery)
    assert message.address.city == "Bath"


def test_message_missing_a_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        _envelope("ReserveStock", {"order_id": str(uuid.uuid4())}).message()


def test_message_of_an_unknown_type_is_refused() -> None:
    with pytest.raises(KeyError):
        _envelope("ShipByDrone", {"order_id": str(uuid.uuid4())}).message()
