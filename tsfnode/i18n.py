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
    "sign_in": {"fr": "Connexion", "en": "Sign in"},
    "sign_out": {"fr": "Déconnexion", "en": "Sign out"},
    "username": {"fr": "Identifiant", "en": "Username"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "wrong_credentials": {
        "fr": "Identifiant ou mot de passe incorrect.",
        "en": "Wrong username or password.",
    },
    "too_many_attempts": {
        "fr": "Trop d'essais : réessayez dans {minutes} min.",
        "en": "Too many attempts: try again in {minutes} min.",
    },
    "form_expired": {
        "fr": "Le formulaire a expiré : rechargez la page.",
        "en": "The form has expired: reload the page.",
    },
    "my_cases": {"fr": "Mes cas", "en": "My cases"},
    "worklist": {"fr": "Liste de travail", "en": "Worklist"},
    "no_cases": {"fr": "Aucun cas pour l'instant.", "en": "No case yet."},
    "case": {"fr": "Cas", "en": "Case"},
    "state": {"fr": "État", "en": "State"},
    "routing": {"fr": "Destination", "en": "Routing"},
    "submitted": {"fr": "Envoyé le", "en": "Submitted"},
    "due": {"fr": "À rendre avant", "en": "Due"},
    "overdue": {"fr": "en retard", "en": "overdue"},
    "urgent": {"fr": "urgent", "en": "urgent"},
    "question": {"fr": "Question clinique", "en": "Clinical question"},
    "history": {"fr": "Histoire clinique", "en": "Clinical history"},
    "age_sex": {"fr": "Âge, sexe", "en": "Age, sex"},
    "years": {"fr": "ans", "en": "years"},
    "modality": {"fr": "Modalité", "en": "Modality"},
    "patient": {"fr": "Patient (visible ici seulement)", "en": "Patient (shown here only)"},
    "report": {"fr": "Compte rendu", "en": "Report"},
    "findings": {"fr": "Résultats", "en": "Findings"},
    "impression": {"fr": "Conclusion", "en": "Impression"},
    "recommendations": {"fr": "Recommandations", "en": "Recommendations"},
    "image_quality": {"fr": "Qualité des images", "en": "Image quality"},
    "adequate": {"fr": "suffisante", "en": "adequate"},
    "inadequate": {"fr": "insuffisante", "en": "inadequate"},
    "quality_reason": {"fr": "Pourquoi (si insuffisante)", "en": "Why (if inadequate)"},
    "sign_report": {"fr": "Signer et envoyer", "en": "Sign and send"},
    "claim": {"fr": "Prendre ce cas", "en": "Take this case"},
    "claim_sent": {
        "fr": "Demande envoyée au nœud de l'émetteur, qui décide.",
        "en": "Asked of the sender's node, which decides.",
    },
    "messages": {"fr": "Échanges", "en": "Messages"},
    "send": {"fr": "Envoyer", "en": "Send"},
    "evaluation": {"fr": "Votre évaluation de l'avis", "en": "Your evaluation of the opinion"},
    "relevant": {"fr": "Pertinent", "en": "Relevant"},
    "useful": {"fr": "Utile", "en": "Useful"},
    "changed_management": {
        "fr": "A changé la prise en charge",
        "en": "Changed the patient's management",
    },
    "teaching_consent": {
        "fr": "J'accepte que ce cas anonymisé serve à l'enseignement",
        "en": "I agree to this anonymised case being used for teaching",
    },
    "comment": {"fr": "Commentaire", "en": "Comment"},
    "yes": {"fr": "oui", "en": "yes"},
    "no": {"fr": "non", "en": "no"},
    "state_submitted": {"fr": "envoyé", "en": "submitted"},
    "state_in_transit": {"fr": "en route", "en": "in transit"},
    "state_delivered": {"fr": "en attente d'un lecteur", "en": "waiting for a reader"},
    "state_assigned": {"fr": "en lecture", "en": "being read"},
    "state_reported": {"fr": "lu, réponse en route", "en": "read, answer on its way"},
    "state_report_delivered": {"fr": "réponse reçue", "en": "answer received"},
    "state_evaluated": {"fr": "évalué", "en": "evaluated"},
    "state_closed": {"fr": "clos", "en": "closed"},
    "state_purged": {"fr": "clos, images effacées", "en": "closed, images deleted"},
    "state_cancelled": {"fr": "annulé", "en": "cancelled"},
    "state_draft": {"fr": "brouillon", "en": "draft"},
}


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


def translator(lang: str) -> dict[str, str]:
    return {key: texts[lang] for key, texts in MESSAGES.items()}
