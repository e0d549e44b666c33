"""Media types of WADO-RS (PS3.18 8.7): the Accept header, the transfer syntax each
part is sent in, and multipart/related bodies."""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Iterable
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
DICOM_JSON = "application/dicom+json"
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
# The transfer syntax of a frame media type named without one (PS3.18 Table 8.7.3-5).
DEFAULT_FRAME_SYNTAX = {
    "image/jpeg": JPEGLosslessSV1,
    "image/jls": JPEGLSLossless,
    "image/jp2": JPEG2000Lossless,
    "image/dicom-rle": RLELossless,
}
LOSSY_FRAME_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless}
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


def _names(syntaxes: Iterable[str]) -> str:
    return ", ".join(sorted(syntaxes))


def choose_instance_syntax(
    ranges: list[MediaRange], stored: str, can: Collection[str] = (ExplicitVRLittleEndian,)
) -> str:
    """The transfer syntax to send a whole instance in (application/dicom), for the
    first range (highest q) the node can answer: the stored one for
    ``transfer-syntax=*`` or its UID, Explicit VR Little Endian when none is named (the
    default, PS3.18 Table 8.7.3-2), else the syntax named if the instance can be
    transcoded to it (``can``: transcode.can_produce)."""
    for r in ranges:
        if not _fits(r.type, "application/dicom"):
            continue
        if r.syntax in (ANY, stored):
            return stored
        if r.syntax is None:
            return ExplicitVRLittleEndian
        if r.syntax in can:
            return r.syntax
    raise NotAcceptable(
        'instances are sent as multipart/related; type="application/dicom" with '
        f"transfer-syntax={stored} (as stored, or *) or one of {_names(set(can) - {stored})}"
    )


@dataclass(frozen=True)
class FrameChoice:
    media: str  # the media type of each frame
    syntax: str  # its transfer syntax
    multipart: bool  # False: a single frame as the whole body (Accept: image/jpeg)


def frame_media(syntax: str) -> str:
    return FRAME_TYPES.get(syntax, "application/octet-stream")


def _frame_candidates(r: MediaRange, stored: str) -> list[str]:
    """The syntaxes a media range asks frames in, best first."""
    stored_media = frame_media(stored)
    if r.syntax == ANY:
        if _fits(r.type, stored_media) or r.type == "application/octet-stream":
            return [stored]  # any syntax: the stored one, as viewers ask
        return []
    if r.syntax is not None:
        return [r.syntax] if _fits(r.type, frame_media(r.syntax)) else []
    if r.type in ("*/*", "*", "application/octet-stream"):
        return [ExplicitVRLittleEndian]
    found = [stored] if _fits(r.type, stored_media) else []
    default = DEFAULT_FRAME_SYNTAX.get(r.type)
    return found + ([default] if default else [])


def choose_frames(
    ranges: list[MediaRange], stored: str, can: Collection[str] = (), count: int = 1
) -> FrameChoice:
    """How to send ``count`` frames: for the first range (highest q) with a syntax that
    is stored or can be produced (``can``, lossy ones only when named), its media type
    and syntax; a single-part media type (``Accept: image/jpeg``) only for one frame
    (PS3.18 8.7.3.5.2)."""
    producible = {*can, ExplicitVRLittleEndian} - {DeflatedExplicitVRLittleEndian}
    for r in ranges:
        single = not r.multipart and r.type not in ("*/*", "*")
        if single and count != 1:
            continue
        for syntax in _frame_candidates(r, stored):
            named = r.syntax == syntax
            if syntax == stored or (
                syntax in producible and (named or syntax not in LOSSY_FRAME_SYNTAXES)
            ):
                media = frame_media(syntax)
                if syntax == stored and syntax in NATIVE:
                    syntax, media = ExplicitVRLittleEndian, "application/octet-stream"
                return FrameChoice(media, syntax, not single)
    offered = [f"{frame_media(s)} with transfer-syntax={s}" for s in sorted(producible - NATIVE)]
    can_say = ["application/octet-stream (uncompressed)"]
    stored_media = FRAME_TYPES.get(stored)
    if stored_media:
        can_say.append(f"{stored_media} with transfer-syntax={stored} (as stored)")
    can_say += [o for o in offered if stored not in o]
    single_note = " (a single-part type for one frame only)" if count != 1 else ""
    raise NotAcceptable(
        "frames are sent as multipart/related; type=" + " or ".join(can_say) + single_note
    )


def choose_frame_syntax(
    ranges: list[MediaRange], stored: str, can: Collection[str] = ()
) -> tuple[str, str]:
    """(media type, transfer syntax) of frames sent as multipart/related."""
    choice = choose_frames([r for r in ranges if r.multipart or r.type in ("*/*", "*")]
                           or ranges, stored, can, count=2)  # fmt: skip
    return choice.media, choice.syntax


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


def choose_rendered_parts(ranges: list[MediaRange], count: int) -> tuple[str, bool]:
    """(media type, multipart) of a rendered study or series (PS3.18 10.4.1.1): every
    image of it as multipart/related (the default), or a single-part image/jpeg or
    image/png when it holds one image only."""
    for r in ranges:
        for offered in ("image/jpeg", "image/png"):
            if not _fits(r.type, offered):
                continue
            if r.multipart or r.type in ("*/*", "*"):
                return offered, True
            if count == 1:
                return offered, False
    raise NotAcceptable(
        'a rendered study or series is sent as multipart/related; type="image/jpeg" (or'
        ' "image/png"), one part per image; a single image/jpeg only when it holds one image'
    )


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
