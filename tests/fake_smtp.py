"""A tiny in-test SMTP server that records what it is sent (notifier and e-mail flow tests)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import attrs


@attrs.define
class FakeSmtp:
    """Speaks just enough SMTP; `rcpt_code` answers RCPT TO, `mails` holds DATA bodies."""

    port: int = 0
    rcpt_code: int = 250
    mails: list[tuple[list[str], str]] = attrs.field(factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rcpts: list[str] = []
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            verb = line.decode().strip().upper()
            if verb.startswith(("EHLO", "HELO")):
                writer.write(b"250 fake\r\n")
            elif verb.startswith("MAIL"):
                writer.write(b"250 ok\r\n")
            elif verb.startswith("RCPT"):
                rcpts.append(line.decode().split(":", 1)[1].strip(" <>\r\n"))
                writer.write(f"{self.rcpt_code} rcpt\r\n".encode())
            elif verb == "DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                body = (await reader.readuntil(b"\r\n.\r\n")).decode()
                self.mails.append((rcpts, body))
                writer.write(b"250 queued\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


def parsed(data: str) -> EmailMessage:
    """A recorded DATA body as a message (the terminating dot removed, dots unstuffed)."""
    lines = data.removesuffix("\r\n.\r\n").split("\r\n")
    text = "\r\n".join(line[1:] if line.startswith("..") else line for line in lines)
    message = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@asynccontextmanager
async def smtp_server() -> AsyncIterator[FakeSmtp]:
    """A FakeSmtp listening on a free loopback port while the block runs."""
    fake = FakeSmtp()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake
