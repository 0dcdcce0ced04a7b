from bookstore_shared.errors import NotFound


class DeliveryNotFound(NotFound):
    code, title = "delivery_not_found", "Delivery not found"
