from bookstore_shared.errors import Conflict, NotFound


class DeliveryNotFound(NotFound):
    code, title = "delivery_not_found", "Delivery not found"


class InvalidStatusChange(Conflict):
    code, title = "invalid_status_change", "A delivery cannot move to that status from where it is"
