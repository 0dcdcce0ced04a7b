from bookstore_shared.errors import NotFound


class OrderNotFound(NotFound):
    code, title = "order_not_found", "Order not found"
