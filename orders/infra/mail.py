"""Outgoing mail over SMTP (``SMTP_URL``), e.g. ``smtp://user:pass@host:587?starttls=1``."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from orders.errors import MailError


@dataclass(frozen=True)
class OutgoingEmail:
    to_addr: str
    subject: str
    body_text: str
    body_html: str
    message_id: str


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> None: ...


class SmtpMailer:
    """Send one message per call; SMTP failures become retryable :class:`MailError`."""

    def __init__(self, url: str, mail_from: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.use_ssl = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.mail_from = mail_from
        self.timeout = timeout

    def send(self, email: OutgoingEmail) -> None:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = email.to_addr
        message["Subject"] = email.subject
        message["Message-ID"] = email.message_id
        message.set_content(email.body_text)
        message.add_alternative(email.body_html, subtype="html")
        try:
            smtp_class = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
            with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                # explicit envelope: the server delivers to this one address, whatever
                # the headers say (send_message would otherwise read To/Cc/Bcc)
                smtp.send_message(
                    message, from_addr=parseaddr(self.mail_from)[1], to_addrs=[email.to_addr]
                )
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP send to {email.to_addr} failed: {exc}") from exc
