"""The e-mails people receive, in their account's language (the gettext catalogues):
one notice, or a day's notices in a digest. Text only, and only this: what happened, the
case's short reference and a link to the node, where the person signs in to see more.

No message ever holds patient data or clinical text (no name, no patient id, no
question, no report, no message's text): the inputs here are a kind, a case id and
``figures`` made by the node (counts, weeks, people's display names for coordinators'
nudges), never the form or a document.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from tsfnode.i18n import N_, texts

# kind -> (title key, body key)
KINDS: dict[str, tuple[str, str]] = {
    "case_for_you": (N_("mail_title_case_for_you"), N_("mail_body_case_for_you")),
    "case_offered": (N_("mail_title_case_offered"), N_("mail_body_case_offered")),
    "report_back": (N_("mail_title_report_back"), N_("mail_body_report_back")),
    "case_update": (N_("mail_title_case_update"), N_("mail_body_case_update")),
    "message": (N_("mail_title_message"), N_("mail_body_message")),
    "due_soon": (N_("mail_title_due_soon"), N_("mail_body_due_soon")),
    "overdue": (N_("mail_title_overdue"), N_("mail_body_overdue")),
    "application": (N_("mail_title_application"), N_("mail_body_application")),
    "silent_pair": (N_("mail_title_silent_pair"), N_("mail_body_silent_pair")),
    "silent_member": (N_("mail_title_silent_member"), N_("mail_body_silent_member")),
    "quota_unused": (N_("mail_title_quota_unused"), N_("mail_body_quota_unused")),
    "escalated_reader": (N_("mail_title_escalated_reader"), N_("mail_body_escalated_reader")),
}
COORDINATOR_KINDS = frozenset(
    {"application", "silent_pair", "silent_member", "quota_unused", "escalated_reader"}
)


@dataclass(frozen=True)
class Notice:
    """One thing to tell a person."""

    kind: str
    case_id: bytes | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def reference(case_id: bytes) -> str:
    """A case's short reference, as the pages show it."""
    return case_id.hex()[:8]


def link(base: str, notice: Notice) -> str:
    base = base.rstrip("/")
    if notice.kind in COORDINATOR_KINDS:
        return f"{base}/web/coordinator"
    if notice.case_id is not None:
        return f"{base}/web/cases/{notice.case_id.hex()}"
    return f"{base}/web/"


def _fields(notice: Notice) -> dict[str, Any]:
    ref = reference(notice.case_id) if notice.case_id is not None else ""
    return {"ref": ref, **notice.figures}


def title(notice: Notice, lang: str) -> str:
    return texts(lang)(KINDS[notice.kind][0], **_fields(notice))


def compose(
    notices: list[Notice],
    *,
    lang: str,
    node_name: str,
    base_url: str,
    from_address: str,
    to_address: str,
    message_id: str,
    now_ms: int,
) -> EmailMessage:
    """One e-mail: a notice alone, or several as a digest."""
    _ = texts(lang)
    message = EmailMessage()
    if len(notices) == 1:
        (notice,) = notices
        subject = f"[tsf · {node_name}] {title(notice, lang)}"
        lines = [
            _(KINDS[notice.kind][1], node=node_name, **_fields(notice)),
            "",
            link(base_url, notice),
        ]
    else:
        subject = f"[tsf · {node_name}] " + _.plural("mail_subject_digest", len(notices))
        lines = [_.plural("mail_digest_intro", len(notices), node=node_name)]
        for notice in notices:
            lines += ["", f"- {title(notice, lang)}", f"  {link(base_url, notice)}"]
    settings_url = base_url.rstrip("/") + "/web/account"
    lines += ["", "-- ", _("mail_footer", url=settings_url)]
    # One line whatever the names in it say (a group's name comes from a record signed
    # elsewhere): a line break there would be refused by the e-mail library, and that
    # notice would then stop every e-mail queued after it.
    message["Subject"] = " ".join(subject.split())
    message["From"] = from_address
    message["To"] = to_address
    message["Date"] = email.utils.formatdate(now_ms / 1000, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")  # (it sets the Content-* headers)
    message["Content-Language"] = lang
    return message
