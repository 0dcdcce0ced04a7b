"""Mail the gateway sends (password resets), over SMTP with aiosmtplib.

Mail is sent after the request's transaction commits, in a task of its own: the answer never
waits on the mail server, and a server that is down or refuses costs a warning in the log,
never an error to the client.
"""

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib
import structlog

from gateway.config import Settings

log = structlog.get_logger(__name__)
# At shutdown, mail already on its way has this long to go out.
CLOSE_GRACE_SECONDS = 10.0


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._server = settings.smtp_server()
        self._timeout = settings.smtp_timeout_seconds
        self.mail_from = settings.mail_from
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._server is not None

    def send_soon(self, message: EmailMessage, *, purpose: str) -> None:
        """Send in the background; the caller goes on at once."""
        if self._server is None:
            log.info("mail_not_sent", purpose=purpose, reason="SMTP_URL is not set")
            return
        task = asyncio.create_task(self.send(message, purpose=purpose))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def send(self, message: EmailMessage, *, purpose: str) -> bool:
        """Hand the message to the SMTP server; False (and a warning) if that failed."""
        server = self._server
        if server is None:
            return False
        try:
            await aiosmtplib.send(
                message,
                hostname=server.hostname,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.use_tls,
                start_tls=server.start_tls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning(
                "mail_failed",
                purpose=purpose,
                server=f"{server.hostname}:{server.port}",
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        except Exception:
            log.exception("mail_failed", purpose=purpose)
            return False
        log.info("mail_sent", purpose=purpose, message_id=message["Message-ID"])
        return True

    async def close(self) -> None:
        """Let mail already on its way go out (for a while), then stop."""
        if not self._sending:
            return
        _, pending = await asyncio.wait(set(self._sending), timeout=CLOSE_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("mail_abandoned", count=len(pending))


def password_reset_mail(
    *, mail_from: str, to: str, token: str, public_url: str, valid_minutes: int
) -> EmailMessage:
    api = public_url.rstrip("/")
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = "Reset your Bookstore password"
    message["Date"] = formatdate(usegmt=True)
    # The sender's domain: make_msgid would look up this machine's name, which can hang.
    message["Message-ID"] = make_msgid(
        domain=parseaddr(mail_from)[1].rpartition("@")[2] or "bookstore.local"
    )
    message.set_content(
        "Someone asked to reset the password of this Bookstore account:\n"
        "\n"
        f"  {to}\n"
        "\n"
        f"If it was you, choose a new password within {valid_minutes} minutes with this\n"
        "token (it works once):\n"
        "\n"
        f"Token: {token}\n"
        "\n"
        "For example:\n"
        "\n"
        f"  curl -X POST {api}/api/auth/password-reset/confirm \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"token": "{token}",\n'
        '         "new_password": "your new password"}\'\n'
        "\n"
        "A new password signs every session of the account out. The API is described at\n"
        f"{api}/docs\n"
        "\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n"
    )
    return message
