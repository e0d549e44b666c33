"""The user interface in French and English: the person's choice, else the browser's."""

from __future__ import annotations

from aiohttp import web

LANGUAGES = ("fr", "en")
DEFAULT = "fr"

MESSAGES: dict[str, dict[str, str]] = {
    "node": {"fr": "Nœud", "en": "Node"},
    "node_id": {"fr": "Identifiant du nœud", "en": "Node id"},
    "node_id_help": {
        "fr": "Lisez-le à votre partenaire pour vérifier que vous parlez au bon nœud.",
        "en": "Read it to your partner to check that you are talking to the right node.",
    },
    "country": {"fr": "Pays", "en": "Country"},
    "network": {"fr": "Réseau", "en": "Network"},
    "status": {"fr": "État", "en": "Status"},
    "running": {"fr": "En service", "en": "Running"},
    "since": {"fr": "depuis", "en": "since"},
    "version": {"fr": "Version", "en": "Version"},
    "tagline": {
        "fr": "Réseau fédéré de téléradiologie humanitaire",
        "en": "Federated network for humanitarian teleradiology",
    },
    "language": {"fr": "Langue", "en": "Language"},
}


def choose_language(request: web.Request) -> str:
    """?lang= (remembered in a cookie), then the cookie, then Accept-Language."""
    for candidate in (request.query.get("lang"), request.cookies.get("lang")):
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


def translator(lang: str) -> dict[str, str]:
    return {key: texts[lang] for key, texts in MESSAGES.items()}
