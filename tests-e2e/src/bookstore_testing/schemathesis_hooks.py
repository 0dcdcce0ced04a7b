"""Schemathesis hooks for this API (`SCHEMATHESIS_HOOKS=bookstore_testing.schemathesis_hooks`):
the string formats it documents beyond JSON Schema's own, generated with the right check digit,
as a client that knows what an ISBN or a card number is would send them."""

import schemathesis
from hypothesis import strategies as st
from stdnum import ean, luhn


def _isbn13(digits: str) -> str:
    body = "978" + digits
    return body + ean.calc_check_digit(body)


schemathesis.openapi.format("isbn", st.text("0123456789", min_size=9, max_size=9).map(_isbn13))


def _card_number(digits: str) -> str:
    return digits + luhn.calc_check_digit(digits)


schemathesis.openapi.format(
    "card-number", st.text("0123456789", min_size=15, max_size=15).map(_card_number)
)
