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
    "new_case": {"fr": "Nouveau cas", "en": "New case"},
    "images": {"fr": "Les images", "en": "The images"},
    "images_help": {
        "fr": "Un dossier (CD, DVD, clé USB), une archive zip, des fichiers DICOM ou des "
        "photos de films. L'envoi se fait en arrière-plan : remplissez le formulaire pendant "
        "ce temps. Si la connexion coupe, il reprend tout seul ; si la page se ferme, "
        "choisissez à nouveau les mêmes fichiers et il reprend où il s'était arrêté.",
        "en": "A folder (CD, DVD, USB stick), a zip archive, DICOM files or photos of films. "
        "They go up in the background: fill in the form meanwhile. If the connection drops, "
        "the upload starts again by itself; if the page closes, choose the same files again "
        "and it resumes where it stopped.",
    },
    "drop_here": {
        "fr": "Déposez les fichiers ou le dossier ici, ou :",
        "en": "Drop the files or the folder here, or:",
    },
    "choose_files": {"fr": "Choisir des fichiers", "en": "Choose files"},
    "choose_folder": {"fr": "Choisir un dossier", "en": "Choose a folder"},
    "resume_help": {
        "fr": "Un envoi a été interrompu : choisissez à nouveau les mêmes fichiers pour le "
        "reprendre.",
        "en": "An upload was interrupted: choose the same files again to resume it.",
    },
    "needs_js": {
        "fr": "Cette page a besoin de JavaScript pour envoyer les images.",
        "en": "This page needs JavaScript to send the images.",
    },
    "uploading": {
        "fr": "{done} / {size} Mo envoyés ({files} fichier(s))",
        "en": "{done} / {size} MB sent ({files} file(s))",
    },
    "uploaded": {
        "fr": "{files} fichier(s) reçu(s) par le nœud ({size} Mo)",
        "en": "{files} file(s) received by the node ({size} MB)",
    },
    "retrying": {"fr": "Connexion perdue : nouvel essai…", "en": "Connection lost: trying again…"},
    "importing": {"fr": "Anonymisation des images…", "en": "De-identifying the images…"},
    "estimate": {
        "fr": "Envoi au lecteur : environ {minutes} min pour {size} Mo au débit mesuré de "
        "{kbits} kbit/s.",
        "en": "Sending to the reader: about {minutes} min for {size} MB at the measured {kbits} "
        "kbit/s.",
    },
    "estimate_unmeasured": {
        "fr": "Le débit de la ligne n'est pas encore mesuré : la durée d'envoi sera connue après "
        "un premier envoi.",
        "en": "The line's speed is not measured yet: the sending time will be known after a "
        "first sending.",
    },
    "study": {"fr": "Examen", "en": "Study"},
    "images_count": {
        "fr": "{instances} image(s), {series} série(s), {size} Mo",
        "en": "{instances} image(s), {series} series, {size} MB",
    },
    "to_check": {
        "fr": "Ces images peuvent montrer l'identité du patient (texte incrusté, étiquette) : "
        "vérifiez chacune, et masquez ce qui l'identifie.",
        "en": "These images may show the patient's identity (burned-in text, a label): check "
        "each one, and mask what identifies the patient.",
    },
    "confirm_image": {"fr": "Rien n'identifie le patient", "en": "Nothing identifies the patient"},
    "mask_image": {"fr": "Masquer les rectangles tracés", "en": "Black out the drawn rectangles"},
    "clear_boxes": {"fr": "Effacer", "en": "Clear"},
    "draw_help": {
        "fr": "Tracez des rectangles sur l'image (souris ou doigt) sur ce qu'il faut cacher.",
        "en": "Draw rectangles on the image (mouse or finger) over what must be hidden.",
    },
    "rejected": {"fr": "Fichiers non pris", "en": "Files not taken"},
    "check_pending": {"fr": "à vérifier", "en": "to check"},
    "check_confirmed": {"fr": "vérifiée", "en": "checked"},
    "check_masked": {"fr": "masquée", "en": "masked"},
    "nothing_found": {
        "fr": "Aucune image trouvée dans ces fichiers.",
        "en": "No image found in these files.",
    },
    "ready": {"fr": "Prêt à envoyer.", "en": "Ready to send."},
    "skipped_empty": {"fr": "Fichiers vides ignorés.", "en": "Empty files skipped."},
    "clinical_form": {"fr": "Le formulaire clinique", "en": "The clinical form"},
    "no_names": {
        "fr": "N'écrivez pas le nom du patient ni rien qui l'identifie : ce texte part avec les "
        "images.",
        "en": "Do not write the patient's name or anything that identifies them: this text goes "
        "with the images.",
    },
    "urgency": {"fr": "Urgence", "en": "Urgency"},
    "routine": {"fr": "habituelle", "en": "routine"},
    "age_years": {"fr": "Âge (années)", "en": "Age (years)"},
    "age_months": {"fr": "Mois (enfant de moins de 2 ans)", "en": "Months (child under 2)"},
    "sex": {"fr": "Sexe", "en": "Sex"},
    "sex_F": {"fr": "féminin", "en": "female"},
    "sex_M": {"fr": "masculin", "en": "male"},
    "sex_X": {"fr": "autre ou non dit", "en": "other or not stated"},
    "body_part": {"fr": "Région examinée", "en": "Body part"},
    "prior_imaging": {"fr": "Imagerie antérieure", "en": "Prior imaging"},
    "preliminary_reading": {"fr": "Votre propre lecture", "en": "Your own reading"},
    "answer_language": {"fr": "Langue de la réponse", "en": "Language of the answer"},
    "who_reads": {"fr": "Qui lit ce cas", "en": "Who reads this case"},
    "my_pairs": {"fr": "Mes binômes", "en": "My pairs"},
    "delay_hours": {"fr": "réponse sous {hours} h", "en": "answer within {hours} h"},
    "this_week": {"fr": "{count}/{quota} cette semaine", "en": "{count}/{quota} this week"},
    "over_quota": {
        "fr": "Envoyer même si le quota de la semaine est atteint (le lecteur devra accepter)",
        "en": "Send even if the week's quota is reached (the reader will be asked to accept)",
    },
    "groups": {"fr": "Groupes de lecture", "en": "Reading groups"},
    "communities": {"fr": "Communautés", "en": "Communities"},
    "group_load": {
        "fr": "{readers} lecteur(s), {open} cas en attente",
        "en": "{readers} reader(s), {open} case(s) waiting",
    },
    "no_route": {
        "fr": "Aucun binôme ni groupe ne peut encore recevoir vos cas : voyez votre coordinateur.",
        "en": "No pair or group can take your cases yet: see your coordinator.",
    },
    "send_case": {"fr": "Envoyer le cas", "en": "Send the case"},
    "submit_help": {
        "fr": "Possible quand les images sont arrivées et vérifiées.",
        "en": "Possible once the images are in and checked.",
    },
    "upload_first": {
        "fr": "Envoyez d'abord les images du cas.",
        "en": "Send the case's images first.",
    },
    "study_not_yours": {
        "fr": "Ces images sont déjà sur ce nœud, importées par un autre compte : vous ne "
        "pouvez pas les envoyer. Voyez l'administrateur du nœud.",
        "en": "These images are already on this node, imported by another account: you "
        "cannot send them. See the node's administrator.",
    },
    "case_sent": {
        "fr": "Cas envoyé. Les images partent en arrière-plan ; vous pouvez fermer cette page.",
        "en": "Case sent. The images go in the background; you may close this page.",
    },
    "timeline": {"fr": "Étapes du cas", "en": "The case's steps"},
    "step_submitted": {"fr": "Envoyé", "en": "Submitted"},
    "step_in_transit": {"fr": "En route", "en": "In transit"},
    "step_delivered": {"fr": "Reçu par le nœud du lecteur", "en": "Delivered to the reader's node"},
    "step_read": {"fr": "Lu", "en": "Read"},
    "step_report_back": {"fr": "Réponse reçue", "en": "Report back"},
    "step_evaluated": {"fr": "Évalué", "en": "Evaluated"},
    "step_closed": {"fr": "Clos", "en": "Closed"},
    "transit": {
        "fr": "{done} / {size} Mo, {kbits} kbit/s",
        "en": "{done} / {size} MB, {kbits} kbit/s",
    },
    "template": {"fr": "Modèle de compte rendu", "en": "Report template"},
    "join_title": {"fr": "Rejoindre le réseau", "en": "Join the network"},
    "join_intro": {
        "fr": "Radiologue, vous pouvez lire pour un groupe ; médecin d'une structure "
        "isolée, vous pouvez lui envoyer des cas. Le coordinateur du groupe vérifie votre "
        "candidature et vous atteste ; votre compte est alors ouvert sur ce nœud.",
        "en": "As a radiologist you can read for a group; as a doctor in an isolated "
        "facility you can send it cases. The group's coordinator checks your application "
        "and attests you; your account on this node is then opened.",
    },
    "join_done": {
        "fr": "Candidature reçue. Le coordinateur du groupe va l'examiner ; vous pourrez "
        "vous connecter avec votre identifiant et votre mot de passe une fois attesté.",
        "en": "Application received. The group's coordinator will review it; you can sign "
        "in with your username and password once attested.",
    },
    "join_no_group": {
        "fr": "Aucun coordinateur de groupe n'a de compte sur ce nœud : adressez-vous au "
        "nœud de votre groupe.",
        "en": "No group coordinator has an account on this node: apply on your group's node.",
    },
    "join_link": {"fr": "Demander à rejoindre le réseau", "en": "Apply to join the network"},
    "join_as": {"fr": "Je souhaite", "en": "I wish to"},
    "join_reader": {"fr": "lire (radiologue)", "en": "read (radiologist)"},
    "join_sender": {"fr": "envoyer des cas (médecin)", "en": "send cases (doctor)"},
    "join_group": {"fr": "Groupe", "en": "Group"},
    "display_name": {"fr": "Nom", "en": "Name"},
    "password_again": {"fr": "Mot de passe (encore)", "en": "Password (again)"},
    "languages": {"fr": "Langues (ex. : fr en)", "en": "Languages (e.g. fr en)"},
    "for_readers": {"fr": "Pour les radiologues", "en": "For radiologists"},
    "registration": {
        "fr": "Numéro d'inscription à l'ordre des médecins",
        "en": "Medical council registration number",
    },
    "diploma": {"fr": "Diplôme de spécialité", "en": "Speciality diploma"},
    "subspecialities": {"fr": "Surspécialités", "en": "Sub-specialities"},
    "weekly_capacity": {"fr": "Cas par semaine", "en": "Cases a week"},
    "for_senders": {"fr": "Pour les médecins qui envoient", "en": "For sending doctors"},
    "facility": {"fr": "Structure de soins", "en": "Facility"},
    "equipment": {"fr": "Équipement d'imagerie", "en": "Imaging equipment"},
    "charter": {"fr": "Charte du réseau", "en": "The network's charter"},
    "charter_text": {
        "fr": "Je donne un avis bénévole, dans le délai convenu, ou je rends le cas.|"
        "Je n'envoie ni ne garde rien qui identifie un patient hors de son hôpital.|"
        "L'avis est un second avis : le médecin qui soigne reste responsable.|"
        "Je signale les images insuffisantes et j'explique pourquoi.|"
        "J'accepte que la qualité et les délais du réseau soient mesurés.",
        "en": "I give my opinion as a volunteer, within the agreed delay, or give the case "
        "back.|I send or keep nothing that identifies a patient outside their hospital.|"
        "The opinion is a second opinion: the treating doctor remains responsible.|"
        "I report inadequate images and say why.|"
        "I accept that the network's quality and delays are measured.",
    },
    "charter_accept": {"fr": "J'accepte la charte", "en": "I accept the charter"},
    "charter_accepted_on": {"fr": "charte acceptée le", "en": "charter accepted on"},
    "apply": {"fr": "Envoyer ma candidature", "en": "Send my application"},
    "coordination": {"fr": "Coordination", "en": "Coordination"},
    "applications": {"fr": "Candidatures", "en": "Applications"},
    "no_applications": {"fr": "Aucune candidature en attente.", "en": "No application waiting."},
    "attest": {"fr": "Attester", "en": "Attest"},
    "decline": {"fr": "Refuser", "en": "Decline"},
    "decline_reason": {"fr": "Motif du refus", "en": "Reason for declining"},
    "cases_to_follow": {"fr": "Cas à suivre", "en": "Cases to follow"},
    "assign_to": {"fr": "Confier à", "en": "Assign to"},
    "assign": {"fr": "Confier", "en": "Assign"},
    "kind_institutional": {"fr": "groupe institutionnel", "en": "institutional group"},
    "kind_subspeciality": {"fr": "groupe de surspécialité", "en": "sub-speciality group"},
    "kind_community": {"fr": "communauté", "en": "community"},
    "members": {"fr": "Membres", "en": "Members"},
    "role": {"fr": "Rôle", "en": "Role"},
    "role_reader": {"fr": "lecteur", "en": "reader"},
    "role_sender": {"fr": "émetteur", "en": "sender"},
    "role_coordinator": {"fr": "coordinateur", "en": "coordinator"},
    "attestation": {"fr": "Attestation", "en": "Attestation"},
    "valid_until": {"fr": "valable jusqu'au", "en": "valid until"},
    "pairs": {"fr": "Binômes", "en": "Pairs"},
    "pair_word": {"fr": "binôme", "en": "pair"},
    "pairs_help": {
        "fr": "Un binôme lie un lecteur à un émetteur : les cas de l'émetteur vont droit au "
        "lecteur, dans la limite du quota de la semaine et du délai convenus. L'un propose, "
        "l'autre accepte ; chacun peut le suspendre ou y mettre fin.",
        "en": "A pair links a reader to a sender: the sender's cases go straight to the "
        "reader, within the agreed weekly quota and delay. One proposes, the other accepts; "
        "either may suspend or end it.",
    },
    "proposals": {"fr": "Propositions à accepter", "en": "Proposals to accept"},
    "accept_pair": {"fr": "Accepter", "en": "Accept"},
    "with": {"fr": "Avec", "en": "With"},
    "pair_suspend": {"fr": "Suspendre", "en": "Suspend"},
    "pair_end": {"fr": "Mettre fin", "en": "End"},
    "propose_pair": {"fr": "Proposer un binôme", "en": "Propose a pair"},
    "weekly_quota": {"fr": "Cas par semaine au plus", "en": "Cases a week at most"},
    "reading_delay": {"fr": "Délai de lecture (heures)", "en": "Reading delay (hours)"},
    "propose": {"fr": "Proposer", "en": "Propose"},
    "no_colleagues": {
        "fr": "Personne dans l'annuaire avec qui former un binôme.",
        "en": "Nobody in the directory to form a pair with.",
    },
    "no_pairs": {"fr": "Aucun binôme.", "en": "No pair."},
    "reader": {"fr": "Lecteur", "en": "Reader"},
    "sender": {"fr": "Émetteur", "en": "Sender"},
    "quota": {"fr": "Cette semaine / quota", "en": "This week / quota"},
    "delay": {"fr": "Délai", "en": "Delay"},
    "pair_active": {"fr": "actif", "en": "active"},
    "pair_suspended": {"fr": "suspendu", "en": "suspended"},
    "pair_ended": {"fr": "terminé", "en": "ended"},
    "quality": {"fr": "Qualité", "en": "Quality"},
    "quality_help": {
        "fr": "Les cas de vos groupes et binômes connus de ce nœud.",
        "en": "The cases of your groups and pairs that this node holds.",
    },
    "group_cases": {"fr": "cas du groupe", "en": "group's cases"},
    "chart_turnaround": {
        "fr": "Délai médian de réponse (heures)",
        "en": "Median turnaround (hours)",
    },
    "chart_useful": {"fr": "Avis jugés utiles (%)", "en": "Opinions judged useful (%)"},
    "chart_quality": {"fr": "Qualité des images reçues", "en": "Quality of the images received"},
    "chart_volume": {"fr": "Cas par semaine", "en": "Cases per week"},
    "chart_weeks": {"fr": "semaines (0 : cette semaine)", "en": "weeks (0: this week)"},
    "admin_title": {"fr": "Administration du nœud", "en": "Node administration"},
    "transfers": {"fr": "Transferts", "en": "Transfers"},
    "directory": {"fr": "Annuaire", "en": "Directory"},
    "storage": {"fr": "Stockage", "en": "Storage"},
    "network_figures": {"fr": "Chiffres du réseau", "en": "Network figures"},
    "network_help": {
        "fr": "Les chiffres signés que chaque nœud publie dans l'annuaire.",
        "en": "The signed figures every node publishes in the directory.",
    },
    "audit": {"fr": "Journal d'audit", "en": "Audit log"},
    "audit_intact": {
        "fr": "Journal intact : {count} entrées, chaîne vérifiée.",
        "en": "Log intact: {count} entries, chain verified.",
    },
    "audit_broken": {"fr": "Journal ALTÉRÉ :", "en": "Log BROKEN:"},
    "uplink_cap": {"fr": "Plafond d'envoi", "en": "Uplink cap"},
    "none": {"fr": "aucun", "en": "none"},
    "last_heard": {"fr": "Dernier contact", "en": "Last heard"},
    "address": {"fr": "Adresse", "en": "Address"},
    "direction": {"fr": "Sens", "en": "Direction"},
    "direction_out": {"fr": "envoi", "en": "out"},
    "direction_in": {"fr": "réception", "en": "in"},
    "direction_relay": {"fr": "relais", "en": "relay"},
    "route": {"fr": "Chemin", "en": "Route"},
    "progress": {"fr": "Avancement", "en": "Progress"},
    "rate": {"fr": "Débit", "en": "Rate"},
    "attempts": {"fr": "Essais", "en": "Attempts"},
    "last_error": {"fr": "Dernière erreur", "en": "Last error"},
    "eta": {"fr": "fin dans", "en": "done in"},
    "mb": {"fr": "Mo", "en": "MB"},
    "gb": {"fr": "Go", "en": "GB"},
    "no_transfers": {"fr": "Aucun transfert.", "en": "No transfer."},
    "relayed": {"fr": "Relais", "en": "Relay"},
    "relayed_help": {
        "fr": "{count} paquet(s) gardé(s) pour d'autres nœuds ; quota {quota} Mo.",
        "en": "{count} bundle(s) held for other nodes; quota {quota} MB.",
    },
    "directory_counts": {
        "fr": "{nodes} nœuds, {groups} groupes, {members} membres, {pairs} binômes, "
        "{teaching} cas d'enseignement.",
        "en": "{nodes} nodes, {groups} groups, {members} members, {pairs} pairs, "
        "{teaching} teaching cases.",
    },
    "relays": {"fr": "Relais", "en": "Relays"},
    "folder_blobs": {"fr": "Paquets scellés ici", "en": "Bundles sealed here"},
    "folder_chunks": {"fr": "Paquets reçus ou relayés", "en": "Bundles received or relayed"},
    "folder_intake": {"fr": "Examens importés", "en": "Studies taken in"},
    "folder_received": {"fr": "Examens reçus", "en": "Studies received"},
    "folder_teaching": {"fr": "Enseignement", "en": "Teaching"},
    "folder_uploads": {"fr": "Envois en cours", "en": "Uploads in progress"},
    "folder_database": {"fr": "Base de données", "en": "Database"},
    "disk_free": {"fr": "Libre sur le disque", "en": "Free on the disk"},
    "sent": {"fr": "Envoyés", "en": "Sent"},
    "received": {"fr": "Reçus", "en": "Received"},
    "read": {"fr": "Lus", "en": "Read"},
    "reports_back": {"fr": "Réponses revenues", "en": "Reports back"},
    "total": {"fr": "Total", "en": "Total"},
    "when": {"fr": "Quand", "en": "When"},
    "who": {"fr": "Qui", "en": "Who"},
    "action": {"fr": "Action", "en": "Action"},
    "detail": {"fr": "Détail", "en": "Detail"},
    "viewer": {"fr": "Visionneuse", "en": "Viewer"},
    "open_viewer": {"fr": "Voir les images", "en": "View the images"},
    "series": {"fr": "Séries", "en": "Series"},
    "image": {"fr": "Image", "en": "Image"},
    "frame": {"fr": "Image", "en": "Image"},
    "position": {"fr": "position", "en": "position"},
    "wl": {"fr": "C/L", "en": "W/L"},
    "lossy": {"fr": "AVEC PERTES", "en": "LOSSY"},
    "tools": {"fr": "Outils", "en": "Tools"},
    "tool_window": {"fr": "Fenêtre", "en": "Window"},
    "tool_pan": {"fr": "Déplacer", "en": "Pan"},
    "tool_zoom": {"fr": "Zoom", "en": "Zoom"},
    "tool_scroll": {"fr": "Défiler", "en": "Scroll"},
    "tool_length": {"fr": "Distance", "en": "Distance"},
    "tool_angle": {"fr": "Angle", "en": "Angle"},
    "invert": {"fr": "Inverser", "en": "Invert"},
    "inverted": {"fr": "inversé", "en": "inverted"},
    "fit": {"fr": "Ajuster", "en": "Fit"},
    "reset": {"fr": "Réinitialiser", "en": "Reset"},
    "layout": {"fr": "1 ou 2 vues", "en": "1 or 2 views"},
    "presets": {"fr": "Fenêtres", "en": "Presets"},
    "cine": {"fr": "Ciné", "en": "Cine"},
    "fps": {"fr": "images/s", "en": "frames/s"},
    "shortcuts": {"fr": "Raccourcis", "en": "Shortcuts"},
    "key_frames": {"fr": "image suivante/précédente", "en": "next/previous image"},
    "space": {"fr": "Espace", "en": "Space"},
    "wheel": {"fr": "molette", "en": "wheel"},
    "attributes": {"fr": "Attributs DICOM (anonymisés)", "en": "DICOM attributes (anonymised)"},
    "imager_spacing": {
        "fr": "mesuré au détecteur (Imager Pixel Spacing)",
        "en": "measured at the detector (Imager Pixel Spacing)",
    },
    "no_images": {
        "fr": "Aucune image sur ce nœud pour ce cas.",
        "en": "No image on this node for this case.",
    },
    "preset_image": {"fr": "de l'image", "en": "image's own"},
    "preset_lung": {"fr": "poumon", "en": "lung"},
    "preset_mediastinum": {"fr": "médiastin", "en": "mediastinum"},
    "preset_bone": {"fr": "os", "en": "bone"},
    "preset_brain": {"fr": "cerveau", "en": "brain"},
    "preset_abdomen": {"fr": "abdomen", "en": "abdomen"},
    "modality_CR": {"fr": "radiographie", "en": "radiograph"},
    "modality_DX": {"fr": "radiographie numérique", "en": "digital radiograph"},
    "modality_CT": {"fr": "scanner", "en": "CT"},
    "modality_MR": {"fr": "IRM", "en": "MRI"},
    "modality_US": {"fr": "échographie", "en": "ultrasound"},
    "modality_MG": {"fr": "mammographie", "en": "mammography"},
    "modality_XA": {"fr": "angiographie", "en": "angiography"},
    "modality_RF": {"fr": "radioscopie", "en": "fluoroscopy"},
    "modality_NM": {"fr": "médecine nucléaire", "en": "nuclear medicine"},
    "modality_PT": {"fr": "TEP", "en": "PET"},
    "modality_OT": {"fr": "autre", "en": "other"},
    "modality_XC": {"fr": "photo", "en": "photo"},
    "my_tools": {"fr": "Mes outils", "en": "My tools"},
    "tools_help": {
        "fr": "Lisez les cas dans votre propre visionneuse (OHIF, Weasis) ou sur votre "
        "station de travail (OsiriX, Horos, RadiAnt), avec les mêmes droits que sur ce site : "
        "seulement les cas qui vous sont adressés, à vous ou à votre groupe. Chaque accès est "
        "inscrit au journal d'audit.",
        "en": "Read cases in your own viewer (OHIF, Weasis) or on your workstation (OsiriX, "
        "Horos, RadiAnt), with the same rights as on this site: only the cases sent to you or "
        "to your group. Every access is written to the audit log.",
    },
    "dicomweb_title": {"fr": "Votre visionneuse (DICOMweb)", "en": "Your viewer (DICOMweb)"},
    "dicomweb_help": {
        "fr": "Ce nœud parle DICOMweb (QIDO-RS, WADO-RS). Donnez à votre visionneuse cette "
        "adresse et un jeton personnel ; le jeton remplace votre mot de passe, ne le "
        "partagez pas, et révoquez-le si vous le perdez.",
        "en": "This node speaks DICOMweb (QIDO-RS, WADO-RS). Give your viewer this address "
        "and a personal token; the token stands for your password: do not share it, and "
        "revoke it if you lose it.",
    },
    "dicomweb_url": {"fr": "Adresse DICOMweb", "en": "DICOMweb address"},
    "token_made": {
        "fr": "Votre nouveau jeton. Copiez-le maintenant : il ne sera plus jamais affiché.",
        "en": "Your new token. Copy it now: it will never be shown again.",
    },
    "tokens": {"fr": "Vos jetons", "en": "Your tokens"},
    "token_label": {"fr": "Pour quoi", "en": "What for"},
    "token_label_example": {
        "fr": "ex. Weasis, ordinateur du bureau",
        "en": "e.g. Weasis, office computer",
    },
    "token_created": {"fr": "Créé", "en": "Made"},
    "token_expires": {"fr": "Expire", "en": "Expires"},
    "token_last_used": {"fr": "Dernier usage", "en": "Last used"},
    "token_valid": {"fr": "valide", "en": "valid"},
    "token_expired": {"fr": "expiré", "en": "expired"},
    "token_revoked": {"fr": "révoqué", "en": "revoked"},
    "token_days_label": {"fr": "Valable (jours)", "en": "Valid for (days)"},
    "token_days": {
        "fr": "Un jeton est valable de 1 à 366 jours.",
        "en": "A token is valid for 1 to 366 days.",
    },
    "new_token": {"fr": "Créer un jeton", "en": "Make a token"},
    "no_tokens": {"fr": "Aucun jeton pour l'instant.", "en": "No token yet."},
    "never": {"fr": "jamais", "en": "never"},
    "revoke": {"fr": "Révoquer", "en": "Revoke"},
    "ohif_help": {
        "fr": "Dans la configuration d'OHIF (app-config.js), ajoutez cette source de données "
        "à dataSources et remplacez TOKEN par votre jeton. OHIF l'envoie en authentification "
        "Basic (votre identifiant, le jeton comme mot de passe).",
        "en": "In OHIF's configuration (app-config.js), add this data source to dataSources "
        "and put your token in place of TOKEN. OHIF sends it as Basic authentication (your "
        "username, the token as the password).",
    },
    "cors_origins": {
        "fr": "Une visionneuse servie ailleurs doit avoir son origine autorisée par "
        "l'administrateur du nœud ; autorisées : {origins}.",
        "en": "A viewer served elsewhere needs its origin allowed by the node's "
        "administrator; allowed: {origins}.",
    },
    "cors_none": {
        "fr": "Une visionneuse servie depuis une autre adresse (un autre site web) doit être "
        "autorisée par l'administrateur du nœud ([dicomweb] cors_origins). Weasis et les "
        "stations de travail n'en ont pas besoin.",
        "en": "A viewer served from another address (another web site) must be allowed by "
        "the node's administrator ([dicomweb] cors_origins). Weasis and workstations do not "
        "need it.",
    },
    "weasis_1": {
        "fr": "Dans Weasis : Fichier › Préférences › Nœud DICOM, ajoutez un nœud de type DICOMweb.",
        "en": "In Weasis: File › Preferences › DICOM node, add a node of type DICOMweb.",
    },
    "weasis_2": {
        "fr": "Adresse : {url} (la même pour la recherche et la récupération).",
        "en": "Address: {url} (the same for search and retrieval).",
    },
    "weasis_3": {
        "fr": "En-tête HTTP : Authorization, valeur « Bearer » suivi d'une espace et de "
        "votre jeton ; ou l'authentification Basic avec votre identifiant et le jeton comme "
        "mot de passe.",
        "en": 'HTTP header: Authorization, value "Bearer", a space and your token; or Basic '
        "authentication with your username and the token as the password.",
    },
    "workstation_help": {
        "fr": "Depuis la page d'un cas : téléchargez l'étude (zip avec DICOMDIR, à ouvrir "
        "comme un CD), ou envoyez-la par DICOM (C-STORE) à votre station, déclarée ci-dessous.",
        "en": "From a case's page: download the study (a zip with a DICOMDIR, opened as a "
        "CD would be), or send it by DICOM (C-STORE) to your workstation, declared below.",
    },
    "destinations": {"fr": "Vos stations DICOM", "en": "Your DICOM workstations"},
    "destinations_help": {
        "fr": "Le nœud envoie depuis le titre AE appelant indiqué (par défaut {ae}) : "
        "déclarez-le dans votre station comme nœud autorisé à envoyer.",
        "en": "The node sends from the calling AE title given (by default {ae}): declare it "
        "in your workstation as a node allowed to send.",
    },
    "destination_label": {"fr": "Nom", "en": "Name"},
    "destination_example": {"fr": "ex. Horos du bureau", "en": "e.g. office Horos"},
    "ae_title": {"fr": "Titre AE de la station", "en": "Workstation's AE title"},
    "host": {"fr": "Adresse (nom ou IP)", "en": "Address (name or IP)"},
    "host_port": {"fr": "Adresse", "en": "Address"},
    "port": {"fr": "Port", "en": "Port"},
    "calling_ae": {"fr": "Titre AE appelant (ce nœud)", "en": "Calling AE title (this node)"},
    "add_destination": {"fr": "Ajouter la station", "en": "Add the workstation"},
    "no_destinations": {"fr": "Aucune station déclarée.", "en": "No workstation yet."},
    "destination_invalid": {"fr": "Station refusée : {problem}", "en": "Not added: {problem}"},
    "delete": {"fr": "Supprimer", "en": "Delete"},
    "sends": {"fr": "Envois DICOM", "en": "DICOM sendings"},
    "started": {"fr": "Commencé", "en": "Started"},
    "image_count": {"fr": "Images", "en": "Images"},
    "send_sending": {"fr": "en cours", "en": "sending"},
    "send_done": {"fr": "terminé", "en": "done"},
    "send_failed": {"fr": "échec", "en": "failed"},
    "send_interrupted": {
        "fr": "interrompu par un redémarrage du nœud : renvoyez-le",
        "en": "interrupted by a restart of the node: send it again",
    },
    "sends_reload": {
        "fr": "Rechargez la page pour suivre l'envoi.",
        "en": "Reload the page to follow the sending.",
    },
    "no_sends": {"fr": "Aucun envoi pour l'instant.", "en": "Nothing sent yet."},
    "nothing_to_export": {
        "fr": "Ce cas ne contient pas (ou plus) d'images DICOM.",
        "en": "This case holds no DICOM image (or no longer does).",
    },
    "export_zip": {
        "fr": "Télécharger pour ma station (zip avec DICOMDIR)",
        "en": "Download for my workstation (zip with DICOMDIR)",
    },
    "send_to": {"fr": "Envoyer à", "en": "Send to"},
    "send_button": {"fr": "Envoyer (DICOM)", "en": "Send (DICOM)"},
    "declare_workstation": {
        "fr": "Déclarer une station DICOM",
        "en": "Declare a DICOM workstation",
    },
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


def format_number(value: float, lang: str, digits: int = 0) -> str:
    """A number as people of ``lang`` write it: 1 234,5 in French, 1,234.5 in English."""
    text = f"{value:,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text
