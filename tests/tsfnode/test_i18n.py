"""The catalogues: every key used has a text in every language, none is kept unused;
what people read comes from them (pages, refusals), with plural forms, numbers and
times as each language writes them."""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from protocol.caseform import MODALITIES
from protocol.cases import State
from protocol.identity import Identity
from tsfnode.app import create_app
from tsfnode.appkeys import STORE
from tsfnode.auth.accounts import create_account
from tsfnode.clock import ManualClock
from tsfnode.config import NodeConfig
from tsfnode.i18n import LANGUAGES, texts, translator
from tsfnode.i18n.extract import FAMILIES, POT, ROOT, extracted, problems, update
from tsfnode.images.export import FAILURES
from tsfnode.node import init_node
from tsfnode.nodedir import NodeDir
from tsfnode.web.admin import FOLDERS
from tsfnode.web.cases import STEPS

Client = TestClient[web.Request, web.Application]
MARCH_5_2025_1403 = 1_741_183_380_000
PASSWORD = "correct horse battery"


def test_every_key_used_has_a_text_in_every_catalogue_and_none_is_unused() -> None:
    assert problems() == []


def _po(path: Path, lang: str, entries: dict[str, str | tuple[str, ...]]) -> None:
    catalogue = Catalog(locale=lang, domain="tsfnode")
    for key, text in entries.items():
        catalogue.add((key, key) if isinstance(text, tuple) else key, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalogue)


def _tree(root: Path) -> None:
    """A small source tree: one template, one module, the catalogues of LANGUAGES."""
    shutil.copy(ROOT / "babel.cfg", root / "babel.cfg")
    templates = root / "tsfnode" / "web" / "templates"
    templates.mkdir(parents=True)
    (templates / "page.html").write_text(
        '<p>{{ t.hello }} {{ plural("files", n) }} {{ t.get("greeting", "") }}</p>\n'
        '<p>{{ t["step_" ~ s.step] }}</p>\n'
    )
    (root / "tsfnode" / "code.py").write_text(
        'from tsfnode.i18n import N_\n\nKEY = N_("wait")\n\n\ndef f(_):\n    return _("bye")\n'
    )
    steps = {f"step_{v}": f"Step {v}" for v in FAMILIES["step_"]}
    locale = root / "tsfnode" / "locale"
    _po(
        locale / "en" / "LC_MESSAGES" / "tsfnode.po",
        "en",
        {
            "hello": "Hello",
            "files": ("{count} file", "{count} files"),
            "greeting": "Welcome",
            "wait": "Wait {minutes} min",
            "bye": "Bye",
            **steps,
        },
    )
    _po(
        locale / "fr" / "LC_MESSAGES" / "tsfnode.po",
        "fr",
        {
            "hello": "",  # not translated
            "files": ("{count} fichier", "{count} fichiers"),  # French has three forms
            "greeting": "Bienvenue",
            "wait": "Patientez",  # {minutes} lost
            "old": "Ancien",  # nobody uses it
            **{k: v.replace("Step", "Étape") for k, v in steps.items()},
        },  # "bye" missing
    )


def test_the_check_finds_missing_unused_untranslated_and_broken_texts(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = problems(tmp_path)
    assert "fr: bye: used but not in the catalogue" in found
    assert "fr: old: in the catalogue but used nowhere" in found
    assert "fr: hello: no translation (empty or fuzzy)" in found
    assert "fr: files: no translation (empty or fuzzy)" in found  # a form lacks
    assert "fr: wait: fields [], not ['minutes']" in found
    assert f"{POT}: missing (python -m tsfnode.i18n.extract)" in found
    assert not [line for line in found if line.startswith("en:")]


def test_extraction_writes_the_pot_and_starts_a_language(tmp_path: Path) -> None:
    _tree(tmp_path)
    update(tmp_path, new=("pt",))
    pot = (tmp_path / POT).read_text()
    assert '#. en: Welcome\n#: tsfnode/web/templates/page.html\nmsgid "greeting"' in pot
    assert 'msgid "files"\nmsgid_plural "files"' in pot
    assert 'msgid "step_in_transit"' in pot  # a family, from t["step_" ~ s.step]
    assert 'msgid "wait"' in pot  # N_ in code
    portuguese = (tmp_path / "tsfnode/locale/pt/LC_MESSAGES/tsfnode.po").read_text()
    assert 'msgid "bye"\nmsgstr ""' in portuguese  # to translate
    assert "#. en: Bye" in portuguese
    assert "Plural-Forms: nplurals=3" in portuguese  # Babel's rules for Portuguese
    french = (tmp_path / "tsfnode/locale/fr/LC_MESSAGES/tsfnode.po").read_text()
    assert 'msgid "old"' not in french
    assert 'msgid "greeting"\nmsgstr "Bienvenue"' in french  # kept
    found = problems(tmp_path)
    assert "pt: a catalogue, but not in LANGUAGES" in found
    assert "fr: bye: no translation (empty or fuzzy)" in found
    assert not [line for line in found if "tsfnode.pot" in line]


def test_a_key_of_an_undeclared_family_is_refused(tmp_path: Path) -> None:
    _tree(tmp_path)
    page = tmp_path / "tsfnode" / "web" / "templates" / "page.html"
    page.write_text('{{ t["colour_" ~ c] }}')
    with pytest.raises(ValueError, match="colour_"):
        extracted(tmp_path)


def test_families_list_the_values_the_node_shows() -> None:
    assert set(FAMILIES["state_"]) == {s.value for s in State}
    assert set(FAMILIES["step_"]) == {step for step, _ in STEPS} | {"in_transit"}
    assert set(FAMILIES["folder_"]) == {*FOLDERS, "database"}
    assert set(FAMILIES["modality_"]) == set(MODALITIES)
    assert set(FAMILIES["send_file_"]) == set(FAILURES)


# Words a template may show as they are: names, units, keys of the keyboard.
AS_THEY_ARE = {"tsf", "tsfnode", "OHIF", "Weasis", "OsiriX", "Horos", "RadiAnt", "HOROS"}
AS_THEY_ARE |= {"kbit", "min", "PgUp", "PgDn", "Ctrl"}
SHOWN_ATTRIBUTES = re.compile(r'\b(?:placeholder|title|alt|aria-label)="([^"]*)"')


def _words_outside_the_catalogue(source: str) -> set[str]:
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", source, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", text, flags=re.S)
    shown = [v for v in SHOWN_ATTRIBUTES.findall(text)]
    text = re.sub(r"<[^>]*>|&\w+;", " ", text)
    words = set(re.findall(r"[^\W\d_]{2,}", " ".join([text, *shown])))
    return words - AS_THEY_ARE


def test_templates_show_no_words_of_their_own() -> None:
    found = {
        path.name: words
        for path in sorted((ROOT / "tsfnode/web/templates").glob("*.html"))
        if (words := _words_outside_the_catalogue(path.read_text()))
    }
    assert found == {}
    assert _words_outside_the_catalogue('<p title="Close">{{ t.x }} Next</p>') == {"Close", "Next"}


# Texts the web's code answers with in one language, found by the check below and not
# translated yet. These are answered to the page's JavaScript, and shown by it only when
# the page and the node disagree (a batch or image id the node does not know):
KNOWN_BYPASSES = {
    "new_case.py: HTTPNotFound(text='no such batch')",
    "new_case.py: HTTPBadRequest(text='batch: the id given by the first upload')",
    "new_case.py: HTTPNotFound(text='no such image to check')",
    "new_case.py: HTTPBadRequest(text=\"'image': the SOP Instance UID of the image\")",
    "viewer.py: HTTPNotFound(text='no such frame')",
    "viewer.py: HTTPNotFound(text='no such series')",
    "viewer.py: HTTPNotFound(text='no such plane')",
    "viewer.py: HTTPBadRequest(text=f'{name}: a number')",
    "viewer.py: HTTPBadRequest(text=f'{name}: between {low} and {high}')",
}
# These are the node's own failures, or its words given back to the page: shown after a
# lead-in in the person's language that says they are in English (the "refused" text).
KNOWN_BYPASSES |= {
    'coordinator.py: NodeError(f"the directory did not take the attestation'
    " ({', '.join(outcome)})\")",
    "coordinator.py: NodeError(error)",
}


def _bypasses(path: Path) -> set[str]:
    """HTTP answers whose text is written in the code, and refusals without a
    catalogue key, in one module of the web pages."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        text = next((k.value for k in node.keywords if k.arg == "text"), None)
        if name.startswith("HTTP") and text is not None:
            said = isinstance(text, ast.Call) and (
                getattr(text.func, "id", "") in ("_", "say")
                or getattr(text.func, "attr", "") == "plural"
            )
            if not said:
                out.add(f"{path.name}: {name}(text={ast.unparse(text)})")
        if name in ("CaseError", "NodeError") and not any(k.arg == "key" for k in node.keywords):
            out.add(f"{path.name}: {ast.unparse(node)}")
    return out


def test_refusals_on_pages_come_from_the_catalogue() -> None:
    found = set().union(*(_bypasses(p) for p in (ROOT / "tsfnode/web").glob("*.py")))
    assert found == KNOWN_BYPASSES
    probe = ROOT / "tsfnode/web/cases.py"
    assert _bypasses(probe) == set()  # and the check does see a bypass:
    source = 'raise web.HTTPNotFound(text="no such case")\nraise CaseError(400, "empty")'
    tmp = probe.with_name("probe.py")
    try:
        tmp.write_text(source)
        assert _bypasses(tmp) == {
            "probe.py: HTTPNotFound(text='no such case')",
            "probe.py: CaseError(400, 'empty')",
        }
    finally:
        tmp.unlink()


def test_plural_forms_follow_each_language() -> None:
    fr, en = texts("fr"), texts("en")
    assert fr.plural("count_nodes", 0) == "0 nœud"  # French: 0 and 1 are singular
    assert fr.plural("count_nodes", 1) == "1 nœud"
    assert fr.plural("count_nodes", 2) == "2 nœuds"
    assert fr.plural("count_nodes", 1_000_000) == "1\u202f000\u202f000 nœuds"  # "many"
    assert en.plural("count_nodes", 0) == "0 nodes"
    assert en.plural("count_nodes", 1) == "1 node"
    assert (
        en.plural("relayed_help", 3, quota="50") == "3 bundles held for other nodes; quota 50 MB."
    )
    # For a page's JavaScript, which knows the count: each form by its CLDR category.
    assert fr.plural_forms("count_nodes") == {
        "one": "{count} nœud",
        "many": "{count} nœuds",
        "other": "{count} nœuds",
    }
    assert en.plural_forms("count_nodes") == {"one": "{count} node", "other": "{count} nodes"}


def test_numbers_and_times_as_each_language_writes_them() -> None:
    fr, en = texts("fr"), texts("en")
    assert fr.number(1234.56, 1) == "1\u202f234,6"
    assert en.number(1234.56, 1) == "1,234.6"
    assert fr.number(3) == en.number(3) == "3"
    assert fr.time(MARCH_5_2025_1403) == "5 mars 2025, 14:03 UTC"
    assert en.time(MARCH_5_2025_1403) == "5 Mar 2025, 14:03 UTC"
    assert fr.date(MARCH_5_2025_1403) == "5 mars 2025"
    assert en.date(MARCH_5_2025_1403) == "5 Mar 2025"
    assert fr.time(None) == ""


def test_the_catalogues_give_every_language_its_own_words() -> None:
    assert set(LANGUAGES) == {"fr", "en"}
    assert translator("fr")["sign_in"] == "Connexion"
    assert translator("en")["sign_in"] == "Sign in"
    assert "audit_intact" not in translator("fr")  # a plural: plural("audit_intact", n)


@pytest.fixture
async def admin(tmp_path: Path, aiohttp_client) -> Client:  # type: ignore[no-untyped-def]
    """A node, in process, its clock on 5 March 2025 at 14:03 UTC, and its admin's
    browser signed in (the account's language: French)."""
    config = NodeConfig(name="CHU Cotonou", country="BJ", http_port=0)
    identity = await asyncio.to_thread(init_node, tmp_path / "n", config)
    assert isinstance(identity, Identity)
    clock = ManualClock(MARCH_5_2025_1403)
    app = create_app(NodeDir(tmp_path / "n"), config, identity, clock=clock)
    client: Client = await aiohttp_client(app)
    await create_account(
        app[STORE],
        username="admin",
        display_name="Admin",
        role="admin",
        password=PASSWORD,
        language="fr",
        now=clock.now_ms(),
    )
    await client.get("/web/login")
    csrf = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    token = next(v.value for k, v in csrf.items() if k != "lang")
    signed = await client.post(
        "/web/login",
        data={"username": "admin", "password": PASSWORD, "csrf": token, "next": ""},
        allow_redirects=False,
    )
    assert signed.status == 303
    return client


async def test_a_page_in_french_and_in_english(admin: Client) -> None:
    french = await (await admin.get("/web/admin")).text()
    english = await (await admin.get("/web/admin?lang=en")).text()
    assert "<h1>Administration du nœud</h1>" in french
    assert "<h1>Node administration</h1>" in english
    assert "5 mars 2025, 14:03 UTC" in french  # when the node started: now, by its clock
    assert "5 Mar 2025, 14:03 UTC" in english
    counts = re.compile(r'<p id="directory-counts">(.*?)</p>')
    assert counts.findall(french) == [
        "0 nœud, 0 groupe, 0 membre, 0 binôme, 0 cas d&#39;enseignement."
    ]
    assert counts.findall(english) == ["0 nodes, 0 groups, 0 members, 0 pairs, 0 teaching cases."]
    assert re.search(r"Journal intact : \d+ entrées?, chaîne vérifiée\.", french)
    assert re.search(r"Log intact: \d+ entr(y|ies), chain verified\.", english)
