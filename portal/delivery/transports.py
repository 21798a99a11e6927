"""Where a message goes: an SMTP server (MAIL_SERVER set), or .eml files, the embedded default."""

from __future__ import annotations

import os
import smtplib
from pathlib import Path

from flask import current_app
from flask_mail import Connection, Message

from ..extensions import mail as flask_mail
from ..models import OutboxEmail


class DeliveryError(Exception):
    """A message was not delivered. `permanent`: retrying cannot help (bad address, 5xx refusal);
    `stop_pass`: the server or the directory is unusable, so the rest of the pass waits."""

    def __init__(self, reason: str, *, permanent: bool = False, stop_pass: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.stop_pass = stop_pass


class _SmtpConnection(Connection):
    """Flask-Mail's connection with a socket timeout, so a stuck server cannot outlive a claim."""

    def configure_host(self) -> smtplib.SMTP:
        timeout = current_app.config["MAIL_TIMEOUT"]
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


class SmtpTransport:
    """One SMTP connection per pass, opened on the first message; settings read from the config."""

    def __init__(self) -> None:
        self.connection: _SmtpConnection | None = None

    def deliver(self, message: Message, email: OutboxEmail) -> None:
        if self.connection is None:
            state = flask_mail.init_mail(current_app.config, current_app.debug, testing=False)
            connection = _SmtpConnection(state)
            try:
                connection.host = connection.configure_host()
            except (OSError, smtplib.SMTPException) as error:
                raise DeliveryError(describe(error), stop_pass=True) from error
            self.connection = connection
        try:
            self.connection.send(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _message in error.recipients.values()]
            raise DeliveryError(describe(error), permanent=all(c >= 500 for c in codes)) from error
        except smtplib.SMTPDataError as error:
            raise DeliveryError(describe(error), permanent=error.smtp_code >= 500) from error
        except (OSError, smtplib.SMTPException) as error:
            # Disconnection, sender refused, authentication…: a server or configuration matter.
            self.close()
            raise DeliveryError(describe(error), stop_pass=True) from error

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None or connection.host is None:
            return
        try:
            connection.host.quit()
        except (OSError, smtplib.SMTPException):
            connection.host.close()


class FileTransport:
    """The embedded default: each message becomes an .eml file (rewritten, not doubled, on retry)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def deliver(self, message: Message, email: OutboxEmail) -> None:
        path = self.directory / f"{email.created_at:%Y%m%d-%H%M%S}-{email.id:06d}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(message.as_bytes())
            os.replace(partial, path)
        except OSError as error:
            raise DeliveryError(describe(error), stop_pass=True) from error

    def close(self) -> None:
        pass


Transport = SmtpTransport | FileTransport


def configured_transport() -> Transport:
    """SMTP when MAIL_SERVER is set, else files in MAIL_OUTBOX_DIR."""
    if current_app.config.get("MAIL_SERVER"):
        return SmtpTransport()
    return FileTransport(current_app.config["MAIL_OUTBOX_DIR"])


def describe(error: BaseException) -> str:
    """A delivery failure as one line for the outbox row (the server's code and reply)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{address} : {code} {_text(reply)}"
                         for address, (code, reply) in error.recipients.items())
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
