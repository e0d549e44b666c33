"""No English on a French page (issue 22, item 8): every page of the demo story, walked
in French in Debian's Chromium by the sender, the reader, the coordinator, the node's
admin and an applicant, with the error states a person meets (a file that is not an
image refused, a join form mistyped, a case action refused, a report left empty). The
text each page shows is read as the person sees it (``innerText``, scripts' texts
included) and every word of the interface that only English says is an error.

The English words come from the catalogues: each word of an English text that no French
text uses. Names, ids, numbers and DICOM values are not words to translate: a word
written in capitals (CT, HEAD) or with a digit in it (an id) is not looked at, and the
people's names, typed texts and file names of the story are French."""

from __future__ import annotations

import functools
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from babel.messages.pofile import read_po

from tests.harness.people import FORM, PASSWORD, Browser
from tests.harness.waiting import wait_for
from tests.tsfnode.test_web import WebNet, chromium, net, signed_in  # noqa: F401 (fixtures)
from tsfnode.i18n import SUBSPECIALITIES, catalogue_path

pytestmark = pytest.mark.slow

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _texts(lang: str) -> list[str]:
    with catalogue_path(lang).open("rb") as f:
        catalogue = read_po(f, locale=lang)
    texts: list[str] = []
    for message in catalogue:
        if message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            texts += [re.sub(r"\{[^}]*\}", " ", s) for s in strings if s]
    return texts


def _words(texts: list[str]) -> set[str]:
    return {w.lower() for text in texts for w in WORD.findall(text)}


@functools.cache
def english_words() -> frozenset[str]:
    """The words of the English catalogue that no French text uses (three letters or
    more: "de", "a" are not English), and the sub-speciality codes of the records
    ("paediatrics"), which a page shows by their name."""
    english = _words(_texts("en")) - _words(_texts("fr"))
    return frozenset({w for w in english if len(w) >= 3} | set(SUBSPECIALITIES))


def english_in(text: str) -> list[str]:
    """Each line of ``text`` with a word of the English interface in it, the words said."""
    found = []
    for line in text.splitlines():
        words = [
            w
            for token in re.split(r"\s+", line)
            if not re.search(r"\d", token)  # an id, a size, a UID
            for w in WORD.findall(token)
            if not w.isupper() and w.lower() in english_words()
        ]
        if words:
            found.append(f"{line.strip()!r} ({', '.join(words)})")
    return found


def test_the_check_catches_english_and_lets_names_ids_and_numbers_through() -> None:
    assert english_in("Worklist\nMes cas") == ["'Worklist' (Worklist)"]
    assert english_in("not a DICOM file or a photo")
    assert english_in("Liste de travail · Dr Koffi Émetteur · CT · HEAD · 3f9a2c1d") == []
    assert english_in("7,4 Mo · 349 611 kbit/s · 12 images") == []
    assert english_in("Pédiatrie · paediatrics")  # a code, not its name


# The text a person sees: every text node shown, but code (a configuration to copy, an
# address, an id); and each choice of a list.
VISIBLE = """() => {
  const seen = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest("pre, code, script, style, template")) continue;
    if (!parent.closest("option") && !parent.checkVisibility()) continue;
    const text = node.textContent.trim();
    if (text) seen.push(text);
  }
  return seen.join("\\n");
}"""
POST = """([action, fields]) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  const csrf = document.querySelector("input[name=csrf]").cloneNode();
  form.append(csrf);
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.name = name;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}"""


class Walk:
    """The pages seen, by name, as their person read them."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def read(self, page: Any, name: str) -> str:
        page.wait_for_load_state()
        assert page.evaluate("document.documentElement.lang") == "fr", (name, page.url)
        text = str(page.evaluate(VISIBLE))
        self.seen[name] = text
        return text

    def visit(self, page: Any, base: str, path: str, name: str | None = None) -> str:
        page.goto(f"{base}{path}")
        return self.read(page, name or path)

    def post(self, page: Any, action: str, fields: dict[str, str], name: str) -> str:
        """A form the page does not offer (a refused action), posted as a browser would."""
        with page.expect_navigation():
            page.evaluate(POST, [action, fields])
        return self.read(page, name)

    def english(self) -> list[str]:
        return [f"{name}: {line}" for name, text in self.seen.items() for line in english_in(text)]


def french(chromium: Any, base: str) -> Any:  # noqa: F811 (the fixture, passed on)
    context = chromium.new_context(locale="fr", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    return context.new_page()


def own_pages(walk: Walk, chromium: Any, base: str, who: str, role: str, case: str) -> Any:  # noqa: F811
    """``who`` signed in, in French: their pages, the case, a claim of it refused, its
    images in the viewer; their browser's page, for more."""
    page = signed_in(chromium, base, who, "fr", "/web/cases")
    walk.visit(page, base, "/web/cases?lang=fr", f"/web/cases ({role})")
    for path in ("/web/pairs", "/web/tools", "/web/account", f"/web/cases/{case}"):
        walk.visit(page, base, path, f"{path} ({role})")
    walk.post(page, f"/web/cases/{case}/claim", {}, f"case: a claim refused ({role})")
    walk.visit(page, base, f"/web/cases/{case}/viewer")
    page.wait_for_selector("#thumbs .thumb")
    walk.read(page, f"viewer ({role})")
    return page


def test_no_english_on_any_french_page_of_the_story(
    net: WebNet,  # noqa: F811
    chromium: Any,  # noqa: F811
) -> None:
    base0, base1 = net.cluster.url(0), net.cluster.url(1)
    walk = Walk()
    _, case = net.send_ct("walk-ct", 2)
    wait_for("the case at Marie's node", lambda: net.marie.state(case) == "assigned")

    # A visitor, then an applicant: a password mistyped, then an application sent.
    visitor = french(chromium, base1)
    walk.visit(visitor, base1, "/web/?lang=fr", "/web/")
    walk.visit(visitor, base1, "/web/login")
    visitor.fill("#username", "koffi")
    visitor.fill("#password", "pas le bon mot de passe")
    visitor.click("button[type=submit]")
    walk.read(visitor, "/web/login (refused)")
    walk.visit(visitor, base1, "/web/join")
    visitor.check("input[name=role][value=reader]")
    visitor.fill("#display_name", "Dr Awa Candidate")
    visitor.fill("#username", "awa")
    visitor.fill("#password", PASSWORD)
    visitor.fill("#password_again", PASSWORD + " autre")
    visitor.fill("#languages", "fr")
    visitor.fill("#registration", "ONMB-9012")
    visitor.fill("#diploma", "DES radiologie")
    visitor.fill("#subspecialities", "paediatrics chest")
    visitor.fill("#weekly_capacity", "2")
    visitor.check("input[name=charter]")
    visitor.click("#join-form button[type=submit]")
    assert visitor.locator("#error").count() == 1
    walk.read(visitor, "/web/join (mistyped)")
    visitor.fill("#password", PASSWORD)
    visitor.fill("#password_again", PASSWORD)
    visitor.check("input[name=charter]")
    visitor.click("#join-form button[type=submit]")
    visitor.wait_for_selector("#applied")
    walk.read(visitor, "/web/join (applied)")
    visitor.context.close()

    # The sender: his pages; a file that is no image refused beside a photo to check.
    koffi = own_pages(walk, chromium, base0, "koffi", "sender", case)
    walk.visit(koffi, base0, "/web/new")
    notes = net.files / "compte-rendu.txt"
    notes.write_text("Compte rendu de la radiographie du thorax.\n", "utf-8")
    koffi.set_input_files("#pick-files", [str(net.photo), str(notes)])
    koffi.wait_for_selector("#studies .flag")
    koffi.wait_for_selector("#studies li")
    walk.read(koffi, "/web/new (a file refused, a photo to check)")
    koffi.context.close()

    # The reader: her worklist, the case, a claim refused, a report left empty.
    marie = own_pages(walk, chromium, base1, "marie", "reader", case)
    walk.visit(marie, base1, f"/web/cases/{case}")
    marie.fill("#findings", "")
    marie.fill("#impression", "")
    marie.click("#report-form button[type=submit]")
    marie.wait_for_selector(".error")
    walk.read(marie, "case: a report left empty (reader)")
    walk.visit(marie, base1, f"/web/cases/{case}")
    walk.post(
        marie,
        f"/web/cases/{case}/evaluation",
        {"relevant": "yes"},
        "case: an evaluation refused (reader)",
    )
    marie.context.close()

    # The coordinator: the application with its sub-specialities, the group's figures.
    anne = signed_in(chromium, base1, "anne", "fr", "/web/coordinator")
    walk.visit(anne, base1, "/web/coordinator?lang=fr", "/web/coordinator")
    assert "Dr Awa Candidate" in walk.seen["/web/coordinator"]
    for path in ("/web/pairs", "/web/cases", "/web/tools"):
        walk.visit(anne, base1, path, f"{path} (coordinator)")
    walk.post(
        anne,
        f"/web/coordinator/cases/{case}/assign",
        {"reader": "00" * 32},
        "coordinator: an assignment refused",
    )
    anne.context.close()

    # The node's admin: peers, transfers, bundles, the audit log.
    admin = signed_in(chromium, base0, "it.cotonou", "fr", "/web/admin")
    walk.visit(admin, base0, "/web/admin?lang=fr", "/web/admin")
    admin.context.close()

    assert FORM["question"] in walk.seen[f"/web/cases/{case} (reader)"]
    found = walk.english()
    assert not found, "English on French pages:\n" + "\n".join(found)
    assert len(walk.seen) >= 25  # every page above was read


def test_a_pages_english_is_caught(net: WebNet) -> None:  # noqa: F811
    """The walk's check against a real page: the English page is caught, the French not."""
    browser = Browser(net.cluster.url(1))
    browser.sign_in("marie")
    _, _, english = browser.get("/web/cases?lang=en")
    _, _, french_page = browser.get("/web/cases?lang=fr")
    visible = functools.partial(re.sub, r"<[^>]+>", "\n")
    assert english_in(visible(english))
    assert english_in(visible(french_page.split("<main", 1)[1].split("<script", 1)[0])) == []


@pytest.mark.parametrize(
    ("lang", "message"),
    [("fr", "Ce cas n'existe pas sur ce nœud."), ("en", "No such case on this node.")],
)
def test_the_json_api_says_a_refusal_in_the_callers_language(
    net: WebNet,  # noqa: F811
    lang: str,
    message: str,
) -> None:
    """The reason stays in English for scripts; its key and message are for a person."""
    request = urllib.request.Request(f"{net.cluster.url(0)}/api/v1/cases/{'0' * 32}")
    request.add_header("Authorization", f"Bearer {net.koffi.token}")
    request.add_header("Accept-Language", f"{lang};q=0.9")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 404
    body = json.loads(refused.value.read())
    assert body == {"error": "no such case on this node", "key": "no_such_case", "message": message}
