"""Media types of WADO-RS (PS3.18 8.7): the Accept header, the transfer syntax each
part is sent in, and multipart/related bodies."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

ANY = "*"
NATIVE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
# The media type of a frame in each compressed syntax (PS3.18 Table 8.7.3-5).
FRAME_TYPES: dict[str, str] = {
    JPEGBaseline8Bit: "image/jpeg",
    JPEGExtended12Bit: "image/jpeg",
    JPEGLossless: "image/jpeg",
    JPEGLosslessSV1: "image/jpeg",
    JPEGLSLossless: "image/jls",
    JPEGLSNearLossless: "image/jls",
    JPEG2000Lossless: "image/jp2",
    JPEG2000: "image/jp2",
    RLELossless: "image/dicom-rle",
}
ALIASES = {"image/x-jls": "image/jls", "image/x-dicom-rle": "image/dicom-rle"}


class NotAcceptable(ValueError):
    """None of the accepted media types can be served; the message says which can."""


@dataclass(frozen=True)
class MediaRange:
    type: str  # of the part (the type= of multipart/related), or of a single body
    syntax: str | None  # transfer-syntax=, None when not given
    multipart: bool


def _split(header: str) -> list[str]:
    """Comma-separated items, commas inside quotes kept."""
    return [m.strip() for m in re.findall(r'(?:[^,"]|"[^"]*")+', header) if m.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, highest q first (none: ``*/*``)."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for n, item in enumerate(_split(header or "*/*")):
        main, *params = (p.strip() for p in re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', item))
        values = {}
        for p in params:
            key, _, value = p.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.get("q", "1"))
        except ValueError:
            q = 1.0
        main = main.lower()
        multipart = main == "multipart/related"
        part = values.get("type", "*/*").lower() if multipart else main
        ranges.append(
            (-q, n, MediaRange(ALIASES.get(part, part), values.get("transfer-syntax"), multipart))
        )
    return [r for q, _, r in sorted(ranges) if q < 0]


def _fits(wanted: str, offered: str) -> bool:
    if wanted in ("*/*", "*"):
        return True
    if wanted.endswith("/*"):
        return offered.startswith(wanted[:-1])
    return wanted == offered


def choose_instance_syntax(ranges: list[MediaRange], stored: str) -> str:
    """The transfer syntax to send a whole instance in (application/dicom): the stored
    one when asked for (``transfer-syntax=*`` or its UID), else Explicit VR Little Endian
    (the default, PS3.18 Table 8.7.3-2)."""
    for r in ranges:
        if not _fits(r.type, "application/dicom"):
            continue
        if r.syntax in (ANY, stored):
            return stored
        if r.syntax in (None, ExplicitVRLittleEndian):
            return ExplicitVRLittleEndian
    raise NotAcceptable(
        'instances are sent as multipart/related; type="application/dicom" with '
        f"transfer-syntax={stored} (as stored, or *) or {ExplicitVRLittleEndian}"
    )


def choose_frame_syntax(ranges: list[MediaRange], stored: str) -> tuple[str, str]:
    """(media type, transfer syntax) to send frames in: their stored compressed form
    when asked for, else uncompressed (application/octet-stream, the default)."""
    stored_type = FRAME_TYPES.get(stored)
    for r in ranges:
        if stored_type and r.syntax in (ANY, stored) and _fits(r.type, stored_type):
            return stored_type, stored
        if stored_type and r.syntax == ANY and r.type == "application/octet-stream":
            return stored_type, stored  # any syntax: the stored one, as viewers ask
        if _fits(r.type, "application/octet-stream") and r.syntax in (
            None,
            ANY,
            ExplicitVRLittleEndian,
        ):
            return "application/octet-stream", ExplicitVRLittleEndian
    can = ["application/octet-stream (uncompressed)"]
    if stored_type:
        can.append(f"{stored_type} with transfer-syntax={stored} (as stored)")
    raise NotAcceptable("frames are sent as multipart/related; type=" + " or ".join(can))


SEARCH_TYPES = ("application/dicom+json", "application/json")


def choose_search_media(ranges: list[MediaRange]) -> str:
    """The media type of a search's answer (PS3.18 8.7.5, 10.6.3): DICOM JSON (the
    default), or application/json when that alone is asked for. The XML form
    (multipart/related; type="application/dicom+xml") is not offered."""
    for r in ranges:
        for offered in SEARCH_TYPES:
            if not r.multipart and _fits(r.type, offered):
                return offered
    raise NotAcceptable(
        "search results are sent as application/dicom+json (or application/json);"
        " DICOM XML is not offered"
    )


def choose_rendered(ranges: list[MediaRange]) -> str:
    """image/jpeg (the default) or image/png, for rendered images and thumbnails."""
    for r in ranges:
        for offered in ("image/jpeg", "image/png"):
            if not r.multipart and _fits(r.type, offered):
                return offered
    raise NotAcceptable("rendered images are sent as image/jpeg or image/png")


class Multipart:
    """A multipart/related body, written part by part (PS3.18 8.7.1.2): ``head`` before
    each part's bytes, ``end`` after the last."""

    def __init__(self, part_type: str) -> None:
        self.boundary = secrets.token_hex(16)
        self.content_type = f'multipart/related; type="{part_type}"; boundary={self.boundary}'
        self._parts = 0

    def head(self, content_type: str, location: str = "") -> bytes:
        lines = [f"--{self.boundary}", f"Content-Type: {content_type}"]
        if location:
            lines.append(f"Content-Location: {location}")
        before = "\r\n" if self._parts else ""  # the line break ending the previous part
        self._parts += 1
        return (before + "\r\n".join(lines) + "\r\n\r\n").encode()

    def end(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()
