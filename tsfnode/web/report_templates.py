"""Report templates per modality, in the languages a report may be written in: the
headings a reader fills in, the same for everyone so that reports read alike."""

from __future__ import annotations

RADIOGRAPH = {
    "fr": "Technique : \nPoumons : \nCœur et médiastin : \nPlèvre : \nOs et parties molles : ",
    "en": "Technique: \nLungs: \nHeart and mediastinum: \nPleura: \nBones and soft tissues: ",
}
TEMPLATES: dict[str, dict[str, str]] = {
    "CR": RADIOGRAPH,
    "DX": RADIOGRAPH,
    "CT": {
        "fr": "Technique : (injection, phases, épaisseur de coupe)\nComparaison : \n"
        "Résultats par région : \n- \n- \nLimites de l'examen : ",
        "en": "Technique: (contrast, phases, slice thickness)\nComparison: \n"
        "Findings by region: \n- \n- \nLimitations: ",
    },
    "MR": {
        "fr": "Technique : (séquences, injection)\nComparaison : \nRésultats : \n- \n- \n"
        "Limites de l'examen : ",
        "en": "Technique: (sequences, contrast)\nComparison: \nFindings: \n- \n- \nLimitations: ",
    },
    "US": {
        "fr": "Technique : (sonde, voie)\nOrganes examinés : \nRésultats : \n"
        "Limites de l'examen (échogénicité, images fixes seulement) : ",
        "en": "Technique: (probe, approach)\nOrgans examined: \nFindings: \n"
        "Limitations (echogenicity, still images only): ",
    },
    "MG": {
        "fr": "Technique : (incidences)\nComposition mammaire (ACR) : \nRésultats à droite : \n"
        "Résultats à gauche : \nClassification BI-RADS : ",
        "en": "Technique: (views)\nBreast composition (ACR): \nRight breast: \nLeft breast: \n"
        "BI-RADS category: ",
    },
    "XC": {
        "fr": "Qualité de la photo du film : \nTechnique apparente : \nRésultats : ",
        "en": "Quality of the photo of the film: \nApparent technique: \nFindings: ",
    },
}
GENERAL = {
    "fr": "Technique : \nComparaison : \nRésultats : ",
    "en": "Technique: \nComparison: \nFindings: ",
}


def template_for(modality: str, language: str) -> str:
    return TEMPLATES.get(modality, GENERAL).get(language, GENERAL["en"])


def all_templates(language: str) -> dict[str, str]:
    """Every modality's template in ``language`` (the reader may pick another one)."""
    out = {m: t.get(language, t["en"]) for m, t in TEMPLATES.items()}
    out["OT"] = GENERAL.get(language, GENERAL["en"])
    return out
