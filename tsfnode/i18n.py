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
    "admitted": {"fr": "Admis dans le réseau", "en": "Admitted to the network"},
    "not_admitted": {
        "fr": "Pas encore admis : demandez un certificat au responsable du réseau.",
        "en": "Not admitted yet: ask the network's anchor holder for a certificate.",
    },
    "peers": {"fr": "Nœuds du réseau", "en": "Network nodes"},
    "no_peers": {"fr": "Aucun autre nœud connu pour l'instant.", "en": "No other node known yet."},
    "peer_name": {"fr": "Nom", "en": "Name"},
    "peer_status": {"fr": "État", "en": "Status"},
    "status_alive": {"fr": "joignable", "en": "alive"},
    "status_suspect": {"fr": "injoignable ?", "en": "suspect"},
    "status_down": {"fr": "hors ligne", "en": "down"},
    "status_unknown": {"fr": "pas encore contacté", "en": "not contacted yet"},
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
