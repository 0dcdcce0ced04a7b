from bookstore_shared.errors import Conflict, DomainError, NotFound


class OrderNotFound(NotFound):
    code, title = "order_not_found", "Order not found"


class OrderNotCancellable(Conflict):
    code, title = "order_not_cancellable", "The order can no longer be cancelled"


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "A request with this Idempotency-Key is in progress"
    headers = {"Retry-After": "1"}


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key used for another request"
