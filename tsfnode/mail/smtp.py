"""Sending one message through the operator's SMTP server, with the standard library's
smtplib (called in a worker thread by the sender), and telling a refusal for good
(a 5xx answer) from one worth retrying (a 4xx answer, a timeout, no server).

Nothing here logs; the errors it raises carry the server's code and a short reason,
never the recipient's address (servers often echo it: it is cut out).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tsfnode.config import NodeConfig
from tsfnode.errors import NodeError


class SendError(Exception):
    """The message was not sent; ``permanent``: sending it again will not help."""

    def __init__(self, reason: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    username: str
    password: str
    from_address: str
    timeout_s: float

    @classmethod
    def from_config(cls, config: NodeConfig, base: Path) -> SmtpSettings | None:
        """The settings of ``[smtp]`` (None: no server, no e-mail); the password read
        from ``password_file`` (relative to the node directory) when it is given."""
        if not config.smtp_host:
            return None
        password = config.smtp_password
        if config.smtp_password_file:
            path = Path(config.smtp_password_file)
            path = path if path.is_absolute() else base / path
            try:
                password = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise NodeError(
                    f"[smtp] password_file {path} cannot be read ({exc.strerror})"
                ) from None
        return cls(
            host=config.smtp_host,
            port=config.smtp_port,
            security=config.smtp_security,
            username=config.smtp_username,
            password=password,
            from_address=config.smtp_from_address,
            timeout_s=float(config.smtp_timeout_s),
        )


def _without(text: str, hidden: list[str]) -> str:
    for word in hidden:
        if word:
            text = text.replace(word, "<address>")
    return " ".join(text.split())[:200]


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    """Connected, greeted (EHLO), secured (TLS or STARTTLS) and signed in."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_s, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
    try:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _classified(exc: Exception, hidden: list[str]) -> SendError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        answers = "; ".join(
            f"{code} {msg.decode(errors='replace')}" for code, msg in exc.recipients.values()
        )
        permanent = bool(codes) and all(500 <= c < 600 for c in codes)
        return SendError(_without(answers, hidden), permanent=permanent, code=max(codes or [0]))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # the operator's settings: worth retrying once they are fixed
        return SendError(f"{exc.smtp_code} sign-in refused", permanent=False, code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        code = int(exc.smtp_code)
        return SendError(_without(f"{code} {text}", hidden), permanent=500 <= code < 600, code=code)
    if isinstance(exc, TimeoutError):
        return SendError("the mail server did not answer in time", permanent=False)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendError("the mail server closed the connection", permanent=False)
    if isinstance(exc, smtplib.SMTPException):
        return SendError(_without(str(exc), hidden), permanent=False)
    if isinstance(exc, OSError):
        return SendError(f"cannot reach the mail server ({exc.strerror or exc})", permanent=False)
    raise exc


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send ``message`` (blocking: call it in a worker thread); ``SendError`` if not."""
    hidden = [str(message["To"] or "")]
    try:
        with _connect(settings) as smtp:
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise _classified(exc, hidden) from None


def check(settings: SmtpSettings) -> str:
    """Connect, greet, secure and sign in, send nothing (``tsfnode doctor``): what the
    server said; ``SendError`` if it cannot be done."""
    try:
        with _connect(settings) as smtp:
            code, _ = smtp.noop()
            return f"{settings.host}:{settings.port} ({settings.security}) answers {code}"
    except (smtplib.SMTPException, OSError) as exc:
        raise _classified(exc, []) from None
