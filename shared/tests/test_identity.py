import uuid

import pytest

from bookstore_shared.errors import Unauthorized
from bookstore_shared.identity import IdentitySigner, IdentityVerifier, Principal

SECRET = "identity-test-secret-" + "z" * 32


def test_signed_assertion_round_trips_the_principal() -> None:
    user = uuid.uuid4()
    token = IdentitySigner(SECRET).sign(user_id=user, roles=["staff"], request_id="r1")
    principal = IdentityVerifier(SECRET).verify(token)
    assert principal == Principal(user_id=user, roles=frozenset({"staff"}), request_id="r1")
    assert principal.is_staff
    assert not principal.is_admin


def test_anonymous_assertion_has_no_user() -> None:
    token = IdentitySigner(SECRET).sign(user_id=None, roles=(), request_id=None)
    principal = IdentityVerifier(SECRET).verify(token)
    assert not principal.is_authenticated
    assert not principal.can_see(uuid.uuid4())


def test_expired_assertion_is_refused() -> None:
    token = IdentitySigner(SECRET, ttl_seconds=-1).sign(user_id=None, roles=(), request_id=None)
    with pytest.raises(Unauthorized):
        IdentityVerifier(SECRET).verify(token)


def test_tampered_assertion_is_refused() -> None:
    token = IdentitySigner(SECRET).sign(user_id=uuid.uuid4(), roles=["customer"], request_id=None)
    header, payload, signature = token.split(".")
    with pytest.raises(Unauthorized):
        IdentityVerifier(SECRET).verify(f"{header}.{payload}x.{signature}")


def test_principal_sees_only_its_own_unless_staff() -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    customer = Principal(user_id=me, roles=frozenset({"customer"}))
    admin = Principal(user_id=uuid.uuid4(), roles=frozenset({"admin"}))
    assert customer.can_see(me)
    assert not customer.can_see(other)
    assert admin.can_see(other)
