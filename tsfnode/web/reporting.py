"""The report form of a case, the same on the case page and beside the images in the
viewer: the reader types, sees what will be signed (the preview), then signs it
unchanged. What the form needs to be drawn, and the draft as posted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tsfnode.web.report_templates import all_templates

# What a report signs, as the reader typed it: previewed, then signed only unchanged.
REPORT_FIELDS = (
    "language",
    "findings",
    "impression",
    "recommendations",
    "image_quality",
    "quality_reason",
)
# The states in which the reader who has the case writes its report (then addenda).
REPORTING = ("assigned", "reported", "report_delivered", "evaluated")
# The pages the form is on: where its preview is drawn and its answer goes back to.
REPORT_PAGES = {"case": "", "viewer": "/viewer"}


def report_draft(form: Mapping[str, Any]) -> dict[str, str]:
    """The report's fields as posted, line ends as one (a browser sends CRLF)."""
    return {k: str(form.get(k, "")).replace("\r\n", "\n") for k in REPORT_FIELDS}


def draft_digest(draft: Mapping[str, str]) -> str:
    """The digest of the previewed text: signing checks the text is still the same."""
    data = json.dumps([draft[k] for k in REPORT_FIELDS], ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def may_report(kept_as: str, reader: str | None, me: str, state: str) -> bool:
    """Whether the person (``me``, hex) writes this case's report here: the reader who
    has it, on the reader's node (a copy)."""
    return kept_as == "copy" and reader == me and state in REPORTING


def report_form(
    form: Mapping[str, Any],
    *,
    draft: dict[str, str] | None,
    failed: bool,
    page: str,
) -> dict[str, Any]:
    """What ``_report_form.html`` needs besides the case: the draft (typed, drawn again),
    the digest of its preview (none after a refusal: typed again, previewed again), the
    templates in the answer's language, the page it is on (a key of REPORT_PAGES)."""
    return {
        "draft": draft,
        "previewed": None if draft is None or failed else draft_digest(draft),
        "templates": all_templates(str(form.get("answer_language", "fr"))),
        "report_from": page,
    }
