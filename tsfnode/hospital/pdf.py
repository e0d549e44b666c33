"""The printed report (fpdf2): A4, in the sender's language, for the patient's paper
chart. The hospital's name, the patient as the sender knows them, the question, the
findings, impression and recommendations (wrapped, on as many pages as they need), the
reader's name and qualification, the signature's date and the verification code, on
every page's foot with the page number.

Text is set in DejaVu Sans when the system has it (any accent, any script the font
covers), else in fpdf2's core Helvetica, whose latin-1 covers French; a character it
lacks becomes "?" rather than stopping the printing.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from fpdf import FPDF

from tsfnode.hospital.report import ReportOut
from tsfnode.i18n import N_, texts

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
PRODUCER = "tsfnode"


def _font_files() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _date(value: str) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    return (
        f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
    )


def patient_name(dicom_name: str) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix) as people write it."""
    parts = [p.strip() for p in dicom_name.split("=")[0].split("^")]
    parts += [""] * (5 - len(parts))
    family, given, middle, prefix, suffix = parts[:5]
    return " ".join(p for p in (prefix, given, middle, family, suffix) if p) or dicom_name


class _Printed(FPDF):
    code = ""
    foot = ""
    font_name = "helvetica"
    unicode = False

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(self.font_name, size=8)
        self.cell(0, 5, self.latin(f"{self.foot} · {self.page_no()}/{{nb}}"), align="C")

    def latin(self, value: str) -> str:
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")


def build_pdf(report: ReportOut, zone: zoneinfo.ZoneInfo | None = None) -> bytes:
    """The printed report as PDF bytes, its times in ``zone`` (the zone said; UTC when
    none is given)."""
    _ = texts(report.language)
    pdf = _Printed(format="A4")
    fonts = _font_files()
    if fonts is not None:
        pdf.add_font("dejavu", "", str(fonts[0]))
        pdf.add_font("dejavu", "B", str(fonts[1]))
        pdf.font_name, pdf.unicode = "dejavu", True
    code = report.code
    pdf.foot = _("print_footer", code=code)
    pdf.set_title(pdf.latin(_("print_title")))
    pdf.set_lang(report.language)
    pdf.set_creation_date(dt.datetime.fromtimestamp(report.signed_ms / 1000, dt.UTC))
    pdf.set_creator(PRODUCER)
    pdf.set_producer(PRODUCER)
    pdf.set_subject(f"tsfnode verification code {code}")
    pdf.set_keywords(code)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str, size: int = 12) -> None:
        pdf.set_font(pdf.font_name, "B", size)
        pdf.multi_cell(width, 7, pdf.latin(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def body(text: str) -> None:
        pdf.set_font(pdf.font_name, "", 11)
        pdf.multi_cell(width, 5.5, pdf.latin(text or "—"), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    def line(label: str, value: str) -> None:
        pdf.set_font(pdf.font_name, "B", 10)
        pdf.cell(45, 6, pdf.latin(label))
        pdf.set_font(pdf.font_name, "", 10)
        pdf.multi_cell(
            width - 45, 6, pdf.latin(value or "—"), align="L", new_x="LMARGIN", new_y="NEXT"
        )

    original = report.original
    heading(report.hospital, 16)
    heading(_("print_title"), 13)
    pdf.ln(2)
    line(_("print_patient"), patient_name(original.patient_name))
    line(_("print_patient_id"), original.patient_id)
    if report.local_reference:  # how the hospital knows a photo's patient, above all
        line(_("print_local_reference"), report.local_reference)
    line(_("print_birth_date"), _date(original.birth_date))
    line(_("print_study_date"), _date(original.study_date))
    line(_("print_modality"), report.modality)
    pdf.ln(3)
    heading(_("question"))
    body(report.question)
    heading(_("findings"))
    body(report.findings)
    heading(_("impression"))
    body(report.impression)
    if report.recommendations:
        heading(_("recommendations"))
        body(report.recommendations)
    pdf.ln(2)
    line(_("print_reader"), report.reader_name)
    line(_("print_qualification"), report.reader_qualification)
    if report.reader_registration:
        line(_("print_registration"), report.reader_registration)
    line(_("print_signed_on"), _.time(report.signed_ms, zone))
    state = N_("print_signature_verified") if report.verified else N_("print_signature_unverified")
    line(_("print_signature"), _(state))
    if report.addenda:
        line(_("print_version"), _.plural("print_addenda", report.addenda))
    if report.reader_images:
        kinds = ", ".join(dict.fromkeys(_(k) for k in report.reader_images))
        line(_("print_reader_images"), f"{_.number(len(report.reader_images))} · {kinds}")
    line(_("print_code"), code)
    pdf.ln(2)
    pdf.set_font(pdf.font_name, "", 8)
    pdf.multi_cell(width, 4, pdf.latin(_("print_code_help", code=code)), align="L")
    return bytes(pdf.output())
