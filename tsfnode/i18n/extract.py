"""The catalogue keys that templates and code use, found as Babel extracts messages (the
methods and files are named in ``babel.cfg``); the template ``tsfnode/locale/tsfnode.pot``
written from them, every catalogue brought up to date; and what is wrong with the
catalogues, which ``tests/tsfnode/test_i18n.py`` asks.

    python -m tsfnode.i18n.extract            # the pot and the catalogues brought up to date
    python -m tsfnode.i18n.extract --init pt  # a new language's catalogue, from the pot
    python -m tsfnode.i18n.extract --check    # the problems listed; exit status 1 if any

In templates a key is ``t.key``, ``t["key"]``, ``t.get("key", ...)``, ``plural("key",
n)`` or ``plural_forms("key")`` (every form, for JavaScript to choose by the count);
``t["state_" ~ case.state]`` uses every key of a family, whose values are listed in
``FAMILIES``; ``t[name]`` with a key held in a variable is found
where the code marks it, ``N_("key")``. In code a key is ``_("key")``, ``N_("key")`` or
``.plural("key", n)``.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import jinja2
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir, extract_python
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po
from jinja2 import nodes

from protocol.caseform import AGE_UNITS, FIELDS
from protocol.cases import State
from protocol.documents import GROUP_KINDS
from tsfnode import __version__
from tsfnode.i18n import DOMAIN, LANGUAGES, catalogue_path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_LANGUAGE = "en"  # its catalogue's texts are copied into the others' comments
POT = Path("tsfnode") / "locale" / f"{DOMAIN}.pot"
WIDTH = 96
HEADER = """\
# The texts of tsfnode's user interface: the template of its catalogues.
# Message ids are keys; each #. comment gives the English text (en[0], en[1]: its
# plural forms). Written by python -m tsfnode.i18n.extract: do not edit by hand.
#"""

# The values a key is looked up by in templates (t["state_" ~ case.state]); where the
# values come from is said beside each, and tests/tsfnode/test_i18n.py compares them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "state_": tuple(s.value for s in State),  # a case's state
    "step_": (  # a case's timeline: tsfnode.web.cases.STEPS and "in_transit"
        "submitted",
        "in_transit",
        "delivered",
        "read",
        "report_back",
        "evaluated",
        "closed",
    ),
    "status_": ("alive", "suspect", "down", "unknown"),  # a peer's (network.peering)
    "direction_": ("out", "in", "relay"),  # a transfer's (transfers.progress)
    "folder_": (  # what the node stores (web.admin.storage)
        "blobs",
        "chunks",
        "intake",
        "received",
        "teaching",
        "uploads",
        "database",
    ),
    "join_": ("reader", "sender"),  # the role an applicant asks for
    "kind_": GROUP_KINDS,  # a group's kind
    # a member's role; a case's roles (protocol.cases.Role), as a refusal names them
    "role_": ("reader", "sender", "coordinator", "member", "node"),
    "transfer_": (  # a delivery's or a received bundle's state (transfers.progress)
        "pending",
        "sending",
        "deposited",
        "delivered",
        "failed",
        "receiving",
        "complete",
        "holding",
        "expired",
    ),
    "via_": ("direct", "relay"),  # a transfer's route (protocol.transfer.Route)
    # an audit entry's action (web.admin.action_code): the case table's events, what
    # people do with a case here, asked of the sender's node from a copy, refused
    "audit_": (
        *(
            "submit send deliver receive assign claim accept decline release escalate "
            "report deliver_report addendum message add_images evaluate close cancel purge "
            "offer_to_group view view_images teach pair_propose pair_accept pair_active "
            "pair_suspended pair_ended member_attest report_pdf report_fhir report_to_pacs "
            "report_to_pacs_automatic export_zip dicom_send dicomweb_search dicomweb_retrieve "
            "ask_claim ask_assign ask_release ask_accept ask_decline refused_report "
            "refused_evaluation refused_case_message refused_case_event "
            "attach_reader_image reader_image_in refused_reader_image download_reader_image"
        ).split(),
    ),
    "pair_": ("active", "suspended", "ended"),  # a pair's status
    "token_": ("valid", "expired", "revoked"),  # a DICOMweb token's state (web.tools)
    "send_": ("sending", "done", "failed"),  # a C-STORE sending's state (web.tools)
    "account_mode_": ("immediately", "digest", "never"),  # e-mail (store.mail.MODES)
    "mail_state_": ("queued", "sent", "failed", "dropped"),  # an e-mail's (web.admin)
    # what became of an image that did not arrive (images.export.FAILURES)
    "send_file_": ("refused", "no_context", "not_decoded", "error", "not_sent"),
    "unit_": tuple(u.name for u in AGE_UNITS),  # an age's unit (protocol.caseform)
    "modality_": (  # tsfnode.web.new_case.MODALITIES
        "CR",
        "DX",
        "CT",
        "MR",
        "US",
        "MG",
        "XA",
        "RF",
        "NM",
        "PT",
        "OT",
        "XC",
    ),
}
PLURALS = ("plural", "plural_forms")  # in templates: plural("key", n), plural_forms("key")
CODE_KEYWORDS = {"_": None, "N_": None, "gettext": None, "plural": None}

Found = tuple[int, str, tuple[str, ...], list[str]]


def _const(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _is_t(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "t"


def _key_uses(arg: nodes.Node, lineno: int) -> Iterator[Found]:
    """The keys ``t[arg]`` uses: one named, a family's, or none (a variable's)."""
    key = _const(arg)
    if key is not None:
        yield lineno, "gettext", (key,), []
        return
    if isinstance(arg, nodes.Concat) and arg.nodes and (prefix := _const(arg.nodes[0])):
        if prefix not in FAMILIES:
            raise ValueError(
                f"line {lineno}: t[{prefix!r} ~ ...]: list the values of the family "
                f"{prefix!r} in tsfnode.i18n.extract.FAMILIES"
            )
        for value in FAMILIES[prefix]:
            yield lineno, "gettext", (prefix + value,), []


def templates(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[Found]:
    """Babel extraction method for the web pages' jinja2 templates."""
    tree = jinja2.Environment(autoescape=True).parse(fileobj.read().decode("utf-8"))
    getters = set()
    for call in tree.find_all(nodes.Call):
        callee = call.node
        if isinstance(callee, nodes.Name) and callee.name in PLURALS and call.args:
            key = _const(call.args[0])
            if key is not None:
                yield call.lineno, "ngettext", (key, key), []
        elif (
            isinstance(callee, nodes.Getattr)
            and isinstance(callee.node, nodes.Name)
            and callee.node.name == "t"
            and callee.attr == "get"
            and call.args
        ):
            getters.add(id(callee))
            yield from _key_uses(call.args[0], call.lineno)
    for found in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(found, nodes.Getattr) and _is_t(found.node):
            if id(found) not in getters:
                yield found.lineno, "gettext", (found.attr,), []
        elif isinstance(found, nodes.Getitem) and _is_t(found.node):
            yield from _key_uses(found.arg, found.lineno)


def python(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[Found]:
    """Babel extraction method for the node's code: ``_``, ``N_``, ``gettext`` and
    ``plural`` calls whose first argument is a literal key."""
    for lineno, funcname, messages, comments in extract_python(
        fileobj,
        CODE_KEYWORDS,
        comment_tags,
        options,  # type: ignore[arg-type]
    ):
        key = messages[0] if isinstance(messages, tuple) else messages
        if not isinstance(key, str):
            continue
        if funcname == "plural":
            yield lineno, "ngettext", (key, key), comments
        else:
            yield lineno, "gettext", (key,), comments


def schema_keys() -> Iterator[tuple[str, bool]]:
    """(key, whether plural) of the words the clinical form's one schema names
    (``protocol.caseform.FIELDS``: labels, help, choices, ages and their units), which
    the pages look up by the schema's values."""
    for field in FIELDS:
        yield field.label, False
        yield field.shown, False
        if field.help:
            yield field.help, False
        for choice in field.choices:
            yield field.choice_key(choice), False
        for unit in field.units:
            yield f"unit_{unit.name}", False
            yield f"count_{unit.name}", True


def read_catalogue(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


def extracted(root: Path = ROOT) -> Catalog:
    """Every key used, with where, as a catalogue template; each entry's comment gives
    the source language's text."""
    with (root / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)  # type: ignore[no-untyped-call]
    out = Catalog(
        domain=DOMAIN,
        project="tsfnode",
        version=__version__,
        copyright_holder="the tsfnode authors",
        header_comment=HEADER,
        fuzzy=False,
    )
    for filename, lineno, message, _comments, context in extract_from_dir(
        root, method_map, options_map
    ):
        out.add(message, None, [(filename, lineno)], context=context)
    for key, plural in schema_keys() if (root / "protocol" / "caseform.py").exists() else ():
        out.add((key, key) if plural else key, None, [("protocol/caseform.py", 0)])
    source = catalogue_path(SOURCE_LANGUAGE, root / "tsfnode" / "locale")
    if source.exists():
        english = read_catalogue(source, SOURCE_LANGUAGE)
        for entry in out:
            known = english.get(entry.id) if entry.id else None
            if known is None:
                continue
            if isinstance(known.string, tuple):
                entry.auto_comments = [f"en[{i}]: {s}" for i, s in enumerate(known.string)]
            else:
                entry.auto_comments = [f"en: {known.string}"]
    return out


def _po(catalogue: Catalog, **options: Any) -> bytes:
    out = io.BytesIO()
    write_po(out, catalogue, sort_output=True, width=WIDTH, **options)
    return out.getvalue()


_DATES = re.compile(rb'^"(POT-Creation-Date|PO-Revision-Date): .*\n', re.M)


def _write(path: Path, text: bytes) -> bool:
    """Writes ``text`` unless only its dates differ from the file's; True if written."""
    if path.exists() and _DATES.sub(b"", path.read_bytes()) == _DATES.sub(b"", text):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return True


def update(root: Path = ROOT, new: tuple[str, ...] = ()) -> list[Path]:
    """The pot rewritten from the extraction; every catalogue (and a new one per language
    in ``new``) given the keys it lacks, empty, and rid of those nobody uses."""
    template = extracted(root)
    written = []
    if _write(root / POT, _po(template, include_lineno=False)):
        written.append(root / POT)
    locale = root / "tsfnode" / "locale"
    for lang in sorted({*LANGUAGES, *new, *(p.name for p in locale.iterdir() if p.is_dir())}):
        path = catalogue_path(lang, locale)
        catalogue = read_catalogue(path, lang) if path.exists() else Catalog(locale=lang)
        catalogue.domain = DOMAIN
        catalogue.update(template, no_fuzzy_matching=True)
        if _write(path, _po(catalogue, ignore_obsolete=True, include_lineno=False)):
            written.append(path)
    return written


_FIELD = re.compile(r"\{(\w*)[^{}]*\}")


def _fields(text: str) -> set[str]:
    return set(_FIELD.findall(text))


def _forms(message: Message) -> tuple[str, ...]:
    string = message.string
    return tuple(string) if isinstance(string, (tuple, list)) else (string or "",)


def problems(root: Path = ROOT) -> list[str]:
    """What is wrong, one line each: a key used without a text in some catalogue (or
    with a fuzzy, empty or differently numbered one), a text that lost or gained a
    ``{field}``, a key nobody uses, a stale pot, a language without its catalogue."""
    used = extracted(root)
    wanted = {m.id if isinstance(m.id, str) else m.id[0]: m for m in used if m.id}
    locale = root / "tsfnode" / "locale"
    on_disk = {p.name for p in locale.iterdir() if p.is_dir()}
    out = [f"{lang}: no catalogue" for lang in LANGUAGES if lang not in on_disk]
    out += [f"{lang}: a catalogue, but not in LANGUAGES" for lang in sorted(on_disk - {*LANGUAGES})]
    pot = root / POT
    if not pot.exists():
        out.append(f"{POT}: missing (python -m tsfnode.i18n.extract)")
    else:
        ids = {m.id for m in read_catalogue(pot) if m.id}
        if ids != {m.id for m in used if m.id}:
            out.append(
                f"{POT}: not what the code and templates use (python -m tsfnode.i18n.extract)"
            )
    source = {}
    if SOURCE_LANGUAGE in on_disk:
        english = read_catalogue(catalogue_path(SOURCE_LANGUAGE, locale), SOURCE_LANGUAGE)
        source = {m.id if isinstance(m.id, str) else m.id[0]: m for m in english if m.id}
    for lang in sorted(on_disk & {*LANGUAGES}):
        catalogue = read_catalogue(catalogue_path(lang, locale), lang)
        nplurals = get_plural(lang).num_plurals
        if catalogue.num_plurals != nplurals:
            out.append(f"{lang}: Plural-Forms has {catalogue.num_plurals} forms, Babel {nplurals}")
        have = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalogue if m.id}
        for key in sorted(wanted.keys() - have.keys()):
            out.append(f"{lang}: {key}: used but not in the catalogue")
        for key in sorted(have.keys() - wanted.keys()):
            out.append(f"{lang}: {key}: in the catalogue but used nowhere")
        for key in sorted(wanted.keys() & have.keys()):
            message, need = have[key], wanted[key]
            if message.pluralizable != need.pluralizable:
                kind = "a plural" if need.pluralizable else "one text"
                out.append(f"{lang}: {key}: used as {kind}, not so in the catalogue")
                continue
            forms = _forms(message)
            if message.fuzzy or not all(f.strip() for f in forms):
                out.append(f"{lang}: {key}: no translation (empty or fuzzy)")
                continue
            if message.pluralizable and len(forms) != nplurals:
                out.append(f"{lang}: {key}: {len(forms)} plural forms, {nplurals} wanted")
            if key in source:
                fields = set().union(*(_fields(f) for f in _forms(source[key])))
                for form in forms:
                    if _fields(form) != fields:
                        out.append(
                            f"{lang}: {key}: fields {sorted(_fields(form))}, not {sorted(fields)}"
                        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tsfnode.i18n.extract", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--init", metavar="LANG", action="append", default=[], help="start a catalogue for LANG"
    )
    parser.add_argument("--check", action="store_true", help="list the problems; change nothing")
    args = parser.parse_args(argv)
    if not args.check:
        for path in update(ROOT, tuple(args.init)):
            print(f"wrote {path.relative_to(ROOT)}")  # noqa: T201 - a command line
    found = problems(ROOT)
    for line in found:
        print(line)  # noqa: T201
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
