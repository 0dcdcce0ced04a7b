"""Mail as a test sees it: the files a mail sink (`bookstore_shared.mailsink`) saved."""

import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import cast

from bookstore_shared.mailsink import file_name_part
from bookstore_testing.shop import eventually

RESET_TOKEN = re.compile(r"^Token: (\S+)", re.MULTILINE)


class Mailbox:
    """The messages a sink saved in `directory`, by recipient."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Every message received for this address so far, oldest first."""
        # <timestamp>-<recipient>[-n].eml: sorted by name is sorted by arrival.
        name = re.compile(rf"^\d{{8}}T[\d.]+Z-{re.escape(file_name_part(address))}(-\d+)?\.eml$")
        files = sorted(p for p in self.directory.glob("*.eml") if name.match(p.name))
        return [
            cast(EmailMessage, message_from_bytes(p.read_bytes(), policy=default_policy))
            for p in files
        ]

    async def wait_for(self, address: str, *, count: int = 1, within: float = 15) -> EmailMessage:
        """The `count`-th message to this address, once it has arrived."""

        async def arrived() -> EmailMessage | None:
            messages = self.messages_to(address)
            return messages[count - 1] if len(messages) >= count else None

        return await eventually(arrived, within=within, what=f"mail #{count} to {address}")


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None, "the mail has no text part"
    return cast(str, body.get_content())


def reset_token(message: EmailMessage) -> str:
    """The password reset token a mail carries."""
    found = RESET_TOKEN.search(text_of(message))
    assert found, text_of(message)
    return found.group(1)
