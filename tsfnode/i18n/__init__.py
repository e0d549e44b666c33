"""The user interface in French and English: the person's choice, else the browser's;
the words from gettext catalogues, numbers and times as each language writes them (Babel).

The catalogues are ``tsfnode/locale/<lang>/LC_MESSAGES/tsfnode.po``, read once per
language when first asked for (``babel.messages.pofile``, compiled in memory: no build
step). Message ids are keys (``case_sent``), not English sentences: templates say
``{{ t.case_sent }}`` or ``{{ t["case_sent"] }}``, and ``{{ plural("audit_intact",
count) }}`` where a count is shown (Babel's plural rules: French has three forms, English
two); ``plural_forms("key")`` gives a page's JavaScript every form by CLDR category, to
choose with ``Intl.PluralRules``. Each entry's ``#.`` comment gives the English text,
for translators. ``{name}`` fields in a text are filled by ``str.format``: keep them as they are.

To add a string:
  1. use its key: ``t.my_key`` / ``plural("my_key", n)`` in a template; in code
     ``_("my_key")`` (``_ = texts(lang)``), ``texts(lang).plural("my_key", n)``, or
     ``N_("my_key")`` for a key kept in a variable and looked up later;
  2. run ``python -m tsfnode.i18n.extract``: it finds the keys in templates and code
     (the methods named in ``babel.cfg``), rewrites ``tsfnode/locale/tsfnode.pot`` and
     adds each new key, empty, to every catalogue;
  3. write its text in ``en/.../tsfnode.po`` and ``fr/.../tsfnode.po`` (run step 2 again
     to copy the English into the comments); ``tests/tsfnode/test_i18n.py`` fails while
     any catalogue lacks it, or keeps a key nobody uses.
A key looked up by a value in a template (``t["state_" ~ case.state]``) is one of a
family: its values are listed in ``tsfnode.i18n.extract.FAMILIES``.

To add a language (Portuguese, say):
  1. ``python -m tsfnode.i18n.extract --init pt`` (or ``pybabel init -i
     tsfnode/locale/tsfnode.pot -d tsfnode/locale -D tsfnode -l pt``) makes
     ``tsfnode/locale/pt/LC_MESSAGES/tsfnode.po`` with the plural forms Babel knows for it;
  2. translate every entry (the ``#.`` comment gives the English);
  3. add ``"pt"`` to ``LANGUAGES`` below. The test checks that every entry is there.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
import os
import zoneinfo
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format, get_timezone_location
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

if TYPE_CHECKING:  # a type only: the CLI's commands need texts, not aiohttp
    from aiohttp import web

LANGUAGES = ("fr", "en")
DEFAULT = "fr"
DOMAIN = "tsfnode"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
# How numbers and dates are written for a language, when it is not the language's own
# locale: English day-month-year and a 24-hour clock, as readers in Europe and senders in
# anglophone Africa write them (Babel's plain "en" is the United States').
FORMAT_LOCALES = {"en": "en_GB"}
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "Etc/GMT", "GMT", "Etc/Zulu", "Zulu"})


def known_zone(name: str) -> bool:
    """Whether ``name`` is a time zone of the system's database (IANA: Africa/Porto-Novo)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.cache
def system_zone() -> str:
    """The system's time zone, by name (TZ, else what /etc/localtime points to), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = Path("/etc/localtime").resolve()
            name = str(target).split("/zoneinfo/", 1)[1] if "/zoneinfo/" in str(target) else ""
        except OSError:
            name = ""
    return name if name and known_zone(name) else "UTC"


def zone_named(*names: str) -> zoneinfo.ZoneInfo:
    """The first of ``names`` that is a known zone (a person's, then the node's...), else
    the system's."""
    for name in names:
        if name and known_zone(name):
            return zoneinfo.ZoneInfo(name)
    return zoneinfo.ZoneInfo(system_zone())


def N_(key: str) -> str:
    """Marks ``key`` as a catalogue key for the extraction; the text comes later."""
    return key


class Key(str):
    """A value of a text that is itself a catalogue key (a state, a role): said in the
    text's language when the text is (``texts(lang)("key", state=Key("state_closed"))``)."""

    __slots__ = ()


def catalogue_path(lang: str, root: Path = LOCALE_DIR) -> Path:
    return root / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _catalogue(lang: str) -> Catalog:
    with catalogue_path(lang).open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


@functools.cache
def _translations(lang: str) -> Translations:
    compiled = io.BytesIO()
    write_mo(compiled, _catalogue(lang))  # fuzzy entries left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@functools.cache
def translator(lang: str) -> Mapping[str, str]:
    """What templates call ``t``: each key of one text (not the plural ones) to its text."""
    translations = _translations(lang)
    keys = [m.id for m in _catalogue(lang) if isinstance(m.id, str) and m.id]
    return MappingProxyType({k: translations.gettext(k) for k in keys})


# The sub-speciality codes of group and member records that have a name in the
# catalogues (``subspeciality_<code>``); another code, from a record signed elsewhere, is
# shown as it is.
SUBSPECIALITIES = {
    "paediatrics": N_("subspeciality_paediatrics"),
    "chest": N_("subspeciality_chest"),
    "abdominal": N_("subspeciality_abdominal"),
    "thoraco_abdominal": N_("subspeciality_thoraco_abdominal"),
    "neuro": N_("subspeciality_neuro"),
    "head_neck": N_("subspeciality_head_neck"),
    "musculoskeletal": N_("subspeciality_musculoskeletal"),
    "womens_imaging": N_("subspeciality_womens_imaging"),
    "breast": N_("subspeciality_breast"),
    "cardiac": N_("subspeciality_cardiac"),
    "vascular": N_("subspeciality_vascular"),
    "interventional": N_("subspeciality_interventional"),
    "emergency": N_("subspeciality_emergency"),
    "oncology": N_("subspeciality_oncology"),
    "nuclear": N_("subspeciality_nuclear"),
    "general": N_("subspeciality_general"),
}

_UNITS = ((1e9, N_("gb"), 1), (1e6, N_("mb"), 1))  # then ko, whole


class Texts:
    """The words, numbers and times of one language, for code: ``_ = texts(lang)``, then
    ``_("key", name=value)``, ``_.plural("key", count)``, ``_.number(x, 1)``, ``_.time(ms)``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.locale = FORMAT_LOCALES.get(lang, lang)
        self._translations = _translations(lang)

    def __call__(self, key: str, **values: object) -> str:
        text = self._translations.gettext(key)
        return text.format(**{k: self._said(v) for k, v in values.items()}) if values else text

    def _said(self, value: object) -> object:
        """A value as a text shows it: a Key's text, each Key of a tuple's, listed."""
        if isinstance(value, Key):
            return self._translations.gettext(value)
        if isinstance(value, tuple) and value and all(isinstance(v, Key) for v in value):
            return ", ".join(self._translations.gettext(v) for v in value)
        return value

    def plural(self, key: str, count: int, **values: object) -> str:
        """The form of ``key``'s text for ``count`` (shown as ``{count}``, as the
        language writes numbers)."""
        text = self._translations.ngettext(key, key, count)
        return text.format(count=self.number(count), **values)

    def plural_forms(self, key: str) -> dict[str, str]:
        """Each form of ``key``'s text by its CLDR plural category (one, many, other...),
        for a page's JavaScript to choose with ``Intl.PluralRules``."""
        locale = Locale.parse(self.lang)
        forms: dict[str, str] = {}
        for n in (0, 1, 2, 3, 5, 11, 21, 101, 1_000_000):  # one of each category, or more
            forms.setdefault(str(locale.plural_form(n)), self._translations.ngettext(key, key, n))
        return forms

    def speciality(self, code: str) -> str:
        """A sub-speciality's name (``paediatrics``: pédiatrie); an unknown code as is."""
        return self(SUBSPECIALITIES[code]) if code in SUBSPECIALITIES else code

    def specialities(self, codes: Iterable[str]) -> str:
        """Sub-specialities named and listed: pédiatrie, thorax."""
        return ", ".join(self.speciality(c) for c in codes)

    def number(self, value: float, digits: int = 0) -> str:
        """1 234,5 in French, 1,234.5 in English (``digits`` after the decimal sign)."""
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def size(self, n_bytes: float) -> str:
        """A size in the unit its magnitude calls for: 12 ko, 7,4 Mo, 1,2 Go (12 kB, 7.4
        MB, 1.2 GB); a small file that is not empty is never "0 Mo" (at least 1 ko)."""
        for scale, key, digits in _UNITS:
            if n_bytes >= scale:
                return f"{self.number(n_bytes / scale, digits)} {self(key)}"
        return f"{self.number(math.ceil(n_bytes / 1e3))} {self(N_('kb'))}"

    def sizes(self, done: float, total: float) -> str:
        """What is done of a total, both in the total's unit: 0,0 / 11,1 Mo."""
        whole = self.size(total)
        for scale, _key, digits in _UNITS:
            if total >= scale:
                return f"{self.number(done / scale, digits)} / {whole}"
        return f"{self.number(math.ceil(done / 1e3))} / {whole}"

    def time(self, ms: int | None, zone: zoneinfo.ZoneInfo | None = None) -> str:
        """A moment in ``zone`` (default UTC), the zone said: 5 mars 2025, 14:03 UTC;
        5 Mar 2025, 15:03 UTC+1 (Porto-Novo); 5 juil. 2025, 16:03 UTC+2 (Bruxelles)."""
        if ms is None:
            return ""
        zone = zone or zoneinfo.ZoneInfo("UTC")
        moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zone)
        glue = str(get_datetime_format("medium", locale=self.locale))
        day = format_date(moment, "medium", locale=self.locale)
        clock = format_time(moment, "HH:mm", tzinfo=zone, locale=self.locale)
        shown = glue.replace("{1}", day).replace("{0}", clock)
        if zone.key in UTC_NAMES:
            return f"{shown} UTC"
        return f"{shown} {_offset(moment)} ({self.city(zone)})"

    def city(self, zone: zoneinfo.ZoneInfo) -> str:
        """The city that names ``zone``, in this language (Bruxelles, Brussels)."""
        return str(get_timezone_location(zone, locale=self.locale, return_city=True))

    def date(self, ms: int | None) -> str:
        """A day (in UTC): 5 mars 2025; 5 Mar 2025."""
        if ms is None:
            return ""
        return format_date(dt.datetime.fromtimestamp(ms / 1000, dt.UTC), "medium", self.locale)


def _offset(moment: dt.datetime) -> str:
    """The moment's offset from UTC: UTC+1, UTC-3, UTC+5:30."""
    minutes = int((moment.utcoffset() or dt.timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


@functools.cache
def texts(lang: str) -> Texts:
    return Texts(lang if lang in LANGUAGES else DEFAULT)


def choose_language(request: web.Request, person: str | None = None) -> str:
    """?lang= (remembered in a cookie), then the cookie, then the signed-in person's own
    language, then Accept-Language."""
    for candidate in (request.query.get("lang"), request.cookies.get("lang"), person):
        if candidate in LANGUAGES:
            return candidate
    header = request.headers.get("Accept-Language", "")
    ranked = []
    for part in header.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        ranked.append((weight, tag.split("-")[0].lower()))
    for _, lang in sorted(ranked, reverse=True):
        if lang in LANGUAGES:
            return lang
    return DEFAULT
