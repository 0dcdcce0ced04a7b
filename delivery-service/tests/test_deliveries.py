import uuid
from collections.abc import Awaitable, Callable

import httpx

from bookstore_testing.harness import assertion_headers
from delivery.models import Delivery

ScheduleDelivery = Callable[[uuid.UUID], Awaitable[Delivery]]


async def test_get_delivery_as_its_owner_shows_status_and_address(
    client: httpx.AsyncClient, identity_secret: str, schedule_delivery: ScheduleDelivery
) -> None:
    owner = uuid.uuid4()
    row = await schedule_delivery(owner)
    reply = await client.get(
        f"/deliveries/{row.id}",
        headers=assertion_headers(identity_secret, user_id=owner, roles=["customer"]),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "scheduled"
    assert reply.json()["order_id"] == str(row.order_id)
    assert reply.json()["address"]["city"] == "Bath"


async def test_get_delivery_of_another_customer_is_not_found(
    client: httpx.AsyncClient, identity_secret: str, schedule_delivery: ScheduleDelivery
) -> None:
    row = await schedule_delivery(uuid.uuid4())
    stranger = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])
    reply = await client.get(f"/deliveries/{row.id}", headers=stranger)
    assert reply.status_code == 404
    assert reply.json()["code"] == "delivery_not_found"


async def test_get_delivery_as_staff_shows_any_delivery(
    client: httpx.AsyncClient, identity_secret: str, schedule_delivery: ScheduleDelivery
) -> None:
    row = await schedule_delivery(uuid.uuid4())
    staff = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])
    assert (await client.get(f"/deliveries/{row.id}", headers=staff)).status_code == 200


async def test_get_delivery_anonymously_is_unauthorized(
    client: httpx.AsyncClient, identity_secret: str, schedule_delivery: ScheduleDelivery
) -> None:
    row = await schedule_delivery(uuid.uuid4())
    reply = await client.get(f"/deliveries/{row.id}", headers=assertion_headers(identity_secret))
    assert reply.status_code == 401


async def test_list_deliveries_by_order_shows_only_the_callers_own(
    client: httpx.AsyncClient, identity_secret: str, schedule_delivery: ScheduleDelivery
) -> None:
    ann = uuid.uuid4()
    mine = await schedule_delivery(ann)
    theirs = await schedule_delivery(uuid.uuid4())
    as_ann = assertion_headers(identity_secret, user_id=ann, roles=["customer"])
    listing = (await client.get("/deliveries", headers=as_ann)).json()
    assert [d["id"] for d in listing["data"]] == [str(mine.id)]
    by_their_order = (
        await client.get(f"/deliveries?order_id={theirs.order_id}", headers=as_ann)
    ).json()
    assert by_their_order["count"] == 0
    staff = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])
    as_staff = (await client.get(f"/deliveries?order_id={theirs.order_id}", headers=staff)).json()
    assert [d["id"] for d in as_staff["data"]] == [str(theirs.id)]
