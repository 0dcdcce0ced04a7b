"""Password reset by mail: a token is mailed (to a real SMTP sink), works once, for 30 minutes,
and sets a new password that signs every session out."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text

from bookstore_shared.db import Database
from bookstore_shared.mailsink import mail_sink
from bookstore_testing.harness import assert_problem, free_port, serve_app
from bookstore_testing.mailbox import Mailbox, reset_token, text_of
from gateway.config import Settings
from gateway.mail import Mailer, password_reset_mail
from gateway.main import create_app

ANN = {"email": "ann@example.com", "password": "correct-horse"}
PUBLIC_URL = "https://books.example.com"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[tuple[Mailbox, int]]:
    """A real SMTP server saving what it receives, and its port."""
    async with mail_sink(tmp_path / "mail") as port:
        yield Mailbox(tmp_path / "mail"), port


def _with_mail(settings: Settings, smtp_port: int, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{smtp_port}"),
            "public_url": PUBLIC_URL,
            **changes,
        }
    )


@pytest.fixture
async def gateway(
    client: httpx.AsyncClient, gateway_settings: Settings, sink: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway that mails through the sink (`client`, migrated first, mails nothing)."""
    async with serve_app(create_app(_with_mail(gateway_settings, sink[1]))) as gateway:
        assert (await gateway.post("/api/auth/register", json=ANN)).status_code == 201
        yield gateway


@pytest.fixture
def inbox(sink: tuple[Mailbox, int]) -> Mailbox:
    return sink[0]


async def _sign_in(gateway: httpx.AsyncClient, password: str) -> httpx.Response:
    return await gateway.post(
        "/api/auth/token", data={"username": ANN["email"], "password": password}
    )


async def _ask_reset(gateway: httpx.AsyncClient, email: str = ANN["email"]) -> httpx.Response:
    return await gateway.post("/api/auth/password-reset", json={"email": email})


async def _confirm(gateway: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await gateway.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


async def test_reset_by_mail_sets_the_new_password_and_signs_out_every_session(
    gateway: httpx.AsyncClient, inbox: Mailbox
) -> None:
    sessions = [(await _sign_in(gateway, ANN["password"])).json() for _ in range(2)]

    asked = await _ask_reset(gateway, "Ann@Example.com")
    assert (asked.status_code, asked.content) == (202, b"")
    mail = await inbox.wait_for(ANN["email"])
    assert mail["To"] == ANN["email"]
    assert mail["From"] == "Bookstore <no-reply@bookstore.local>"
    assert "password" in mail["Subject"].lower()
    assert f"{PUBLIC_URL}/api/auth/password-reset/confirm" in text_of(mail)
    token = reset_token(mail)

    confirmed = await _confirm(gateway, token, "battery-staple")
    assert (confirmed.status_code, confirmed.content) == (204, b"")
    assert_problem(await _sign_in(gateway, ANN["password"]), 401, "invalid_credentials")
    assert (await _sign_in(gateway, "battery-staple")).status_code == 200
    for tokens in sessions:
        refreshed = await gateway.post(
            "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert_problem(refreshed, 401, "invalid_refresh_token")
        me = await gateway.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert_problem(me, 401)


async def test_unknown_address_is_answered_the_same_and_mailed_nothing(
    gateway: httpx.AsyncClient, inbox: Mailbox
) -> None:
    unknown = await _ask_reset(gateway, "nobody@example.com")
    known = await _ask_reset(gateway)
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
    assert unknown.status_code == 202
    # The known address's mail has arrived: one for the unknown would have been sent first.
    await inbox.wait_for(ANN["email"])
    assert inbox.messages_to("nobody@example.com") == []


async def test_token_works_once(gateway: httpx.AsyncClient, inbox: Mailbox) -> None:
    await _ask_reset(gateway)
    token = reset_token(await inbox.wait_for(ANN["email"]))
    assert (await _confirm(gateway, token, "battery-staple")).status_code == 204
    assert_problem(await _confirm(gateway, token, "another-password"), 400, "invalid_reset_token")
    assert (await _sign_in(gateway, "battery-staple")).status_code == 200


async def test_a_reset_ends_the_other_tokens_mailed_before(
    gateway: httpx.AsyncClient, inbox: Mailbox
) -> None:
    await _ask_reset(gateway)
    first = reset_token(await inbox.wait_for(ANN["email"]))
    await _ask_reset(gateway)
    second = reset_token(await inbox.wait_for(ANN["email"], count=2))
    assert first != second
    assert (await _confirm(gateway, second, "battery-staple")).status_code == 204
    assert_problem(await _confirm(gateway, first, "another-password"), 400, "invalid_reset_token")


async def test_expired_token_is_refused(
    gateway: httpx.AsyncClient, inbox: Mailbox, gateway_settings: Settings
) -> None:
    await _ask_reset(gateway)
    token = reset_token(await inbox.wait_for(ANN["email"]))
    db = Database(gateway_settings.database_url, pool_size=1)
    async with db.unit_of_work() as session:
        made = await session.scalar(
            text(
                "SELECT expires_at - created_at FROM gateway.password_resets"
                " WHERE user_id = (SELECT id FROM gateway.users WHERE email = :email)"
            ),
            {"email": ANN["email"]},
        )
        await session.execute(
            text(
                "UPDATE gateway.password_resets SET created_at = now() - interval '31 minutes',"
                " expires_at = now() - interval '1 minute'"
            )
        )
    await db.dispose()
    assert made.total_seconds() == pytest.approx(30 * 60, abs=5)
    assert_problem(await _confirm(gateway, token, "battery-staple"), 400, "invalid_reset_token")
    assert (await _sign_in(gateway, ANN["password"])).status_code == 200


async def test_unknown_token_is_refused(gateway: httpx.AsyncClient) -> None:
    reply = await _confirm(gateway, "x" * 43, "battery-staple")
    problem = assert_problem(reply, 400, "invalid_reset_token")
    assert "Traceback" not in str(problem)


async def test_resets_over_the_limit_per_address_get_429_with_retry_after(
    gateway: httpx.AsyncClient, inbox: Mailbox
) -> None:
    codes = [(await _ask_reset(gateway)).status_code for _ in range(3)]
    refused = await _ask_reset(gateway, "ANN@example.com")
    assert codes == [202] * 3
    assert_problem(refused, 429, "too_many_requests")
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    # Another address is counted on its own, and the limit holds for unknown ones too.
    assert (await _ask_reset(gateway, "bob@example.com")).status_code == 202
    await inbox.wait_for(ANN["email"], count=3)
    assert len(inbox.messages_to(ANN["email"])) == 3


async def test_resets_over_the_limit_per_ip_get_429(
    client: httpx.AsyncClient, gateway_settings: Settings, sink: tuple[Mailbox, int]
) -> None:
    settings = _with_mail(gateway_settings, sink[1], password_reset_per_ip="2/hour")
    async with serve_app(create_app(settings)) as gateway:
        codes = [
            (await _ask_reset(gateway, f"reader-{n}@example.com")).status_code for n in range(3)
        ]
    assert codes == [202, 202, 429]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/password-reset", {}),
        ("/api/auth/password-reset", {"email": "not-an-address"}),
        ("/api/auth/password-reset", {"email": "ann@example.com", "role": "admin"}),
        ("/api/auth/password-reset/confirm", {"token": "x" * 43}),
        ("/api/auth/password-reset/confirm", {"token": "x" * 43, "new_password": "short"}),
        ("/api/auth/password-reset/confirm", {"token": "x" * 43, "new_password": "y" * 129}),
        ("/api/auth/password-reset/confirm", {"token": "x" * 101, "new_password": "long-enough"}),
        ("/api/auth/password-reset/confirm", {"token": "", "new_password": "long-enough"}),
        (
            "/api/auth/password-reset/confirm",
            {"token": "x" * 43, "new_password": "long-enough", "email": "ann@example.com"},
        ),
    ],
)
async def test_bad_input_is_refused_with_422(
    gateway: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    assert_problem(await gateway.post(path, json=body), 422, "validation_error")


async def test_mail_server_down_still_answers_202(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    settings = _with_mail(gateway_settings, free_port())  # nothing listens there
    async with serve_app(create_app(settings)) as gateway:
        assert (await gateway.post("/api/auth/register", json=ANN)).status_code == 201
        assert (await _ask_reset(gateway)).status_code == 202
        assert (await _ask_reset(gateway)).status_code == 202
    mail = password_reset_mail(
        mail_from=settings.mail_from,
        to=ANN["email"],
        token="x" * 43,
        public_url=PUBLIC_URL,
        valid_minutes=30,
    )
    # What the background send met: a refusal, logged as a warning, never raised.
    assert await Mailer(settings).send(mail, purpose="password_reset") is False


async def test_without_smtp_url_a_reset_is_still_answered_202(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    assert (reply.status_code, reply.content) == (202, b"")


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://127.0.0.1:1025", ("127.0.0.1", 1025, False, False, None, None)),
        (
            "smtp+starttls://mailer%40shop.example:p%3Ass@mail.example.com",
            ("mail.example.com", 587, False, True, "mailer@shop.example", "p:ss"),
        ),
        ("smtps://mail.example.com", ("mail.example.com", 465, True, False, None, None)),
    ],
)
def test_smtp_url_names_the_server_and_how_to_speak_to_it(
    url: str, server: tuple[object, ...]
) -> None:
    found = Settings(smtp_url=url).smtp_server()
    assert found is not None
    assert (
        found.hostname,
        found.port,
        found.use_tls,
        found.start_tls,
        found.username,
        found.password,
    ) == server


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "smtp://user:s3cret@host:port"]
)
def test_unreadable_smtp_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(smtp_url=url)
    (error,) = refused.value.errors()
    assert error["loc"] == ("smtp_url",)
    assert "s3cret" not in error["msg"]
