"""Schema migrations of the node database, applied in order; the database's
``PRAGMA user_version`` is the number of migrations applied. Append, never edit."""

MIGRATIONS: tuple[str, ...] = (
    # 1: node metadata, local accounts, the persisted replay window
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        display_name  TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('sender', 'reader', 'coordinator', 'admin')),
        password_hash TEXT NOT NULL,
        language      TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
        created_ms    INTEGER NOT NULL
    );
    CREATE TABLE replay_state (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        state BLOB NOT NULL
    );
    """,
    # 2: the directory (signed records, kept as received) and what was turned away
    """
    CREATE TABLE directory_records (
        digest  BLOB PRIMARY KEY,
        kind    TEXT NOT NULL,
        signer  BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        raw     BLOB NOT NULL
    );
    CREATE TABLE directory_ignored (
        reason TEXT PRIMARY KEY,
        count  INTEGER NOT NULL
    );
    """,
    # 3: API tokens (a sender's light client, later DICOMweb), stored as hashes
    """
    CREATE TABLE api_tokens (
        token_hash BLOB PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        purpose    TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 4: transfers. A bundle held here (sealed here, addressed here, or held as a relay),
    # its deliveries (one per recipient of a bundle sealed here), and the chunks sources
    # served that did not match their manifest.
    """
    CREATE TABLE bundles (
        bundle_id    BLOB PRIMARY KEY,
        role         TEXT NOT NULL CHECK (role IN ('outbox', 'inbox', 'relay')),
        manifest     BLOB NOT NULL,
        sender       BLOB NOT NULL,
        priority     INTEGER NOT NULL,
        chunk_count  INTEGER NOT NULL,
        size         INTEGER NOT NULL,
        have         BLOB NOT NULL,
        state        TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        expires_ms   INTEGER NOT NULL,
        completed_ms INTEGER,
        last_error   TEXT NOT NULL DEFAULT '',
        study_uid    TEXT NOT NULL DEFAULT '',
        sources      TEXT NOT NULL DEFAULT '[]',
        receipt      BLOB
    );
    CREATE TABLE deliveries (
        bundle_id       BLOB NOT NULL REFERENCES bundles (bundle_id),
        recipient       BLOB NOT NULL,
        state           TEXT NOT NULL,
        route           TEXT NOT NULL DEFAULT '',
        target          BLOB,
        attempts        INTEGER NOT NULL DEFAULT 0,
        failures        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error      TEXT NOT NULL DEFAULT '',
        acked           BLOB NOT NULL,
        bytes_done      INTEGER NOT NULL DEFAULT 0,
        rate            REAL NOT NULL DEFAULT 0,
        started_ms      INTEGER,
        delivered_ms    INTEGER,
        receipt         BLOB,
        PRIMARY KEY (bundle_id, recipient)
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_ms);
    CREATE TABLE blame (
        source     BLOB NOT NULL,
        bundle_id  BLOB NOT NULL,
        chunk      INTEGER NOT NULL,
        reason     TEXT NOT NULL,
        at_ms      INTEGER NOT NULL
    );
    """,
    # 5: when the last chunk of a delivery was acknowledged by its target (the recipient,
    # or the relay it went to); delivered_ms is when the recipient's receipt came back
    """
    ALTER TABLE deliveries ADD COLUMN deposited_ms INTEGER;
    """,
    # 6: cases. An account's person key (the private key in DIR/people/USERNAME.key).
    # A case is kept by the sender's node (role 'sender': it decides the case's state) and
    # copied to the nodes it was sent to (role 'copy'). Its documents (the request, events,
    # reports, messages, evaluations) are kept as signed; case_bundles says what each
    # bundle sent or received for a case carried. The audit log is a hash chain
    # (protocol/audit.py); its head is in meta 'audit_head'. Notifications are for people
    # of this node (a case offered, assigned, overdue, answered). Pair proposals wait
    # here for the other party's signature.
    """
    ALTER TABLE accounts ADD COLUMN person_key BLOB;
    CREATE TABLE cases (
        case_id          BLOB PRIMARY KEY,
        role             TEXT NOT NULL CHECK (role IN ('sender', 'copy')),
        state            TEXT NOT NULL,
        routing          TEXT NOT NULL,
        target           BLOB NOT NULL,
        pair_id          BLOB,
        sender           BLOB NOT NULL,
        sender_node      BLOB NOT NULL,
        reader           BLOB,
        delay_ms         INTEGER NOT NULL,
        needs_acceptance INTEGER NOT NULL DEFAULT 0,
        urgent           INTEGER NOT NULL DEFAULT 0,
        study_uid        TEXT NOT NULL DEFAULT '',
        recipients       TEXT NOT NULL DEFAULT '[]',
        form             TEXT NOT NULL DEFAULT '{}',
        submitted_ms     INTEGER,
        delivered_ms     INTEGER,
        due_ms           INTEGER,
        reported_ms      INTEGER,
        report_back_ms   INTEGER,
        evaluated_ms     INTEGER,
        closed_ms        INTEGER,
        purged_ms        INTEGER,
        escalations      INTEGER NOT NULL DEFAULT 0,
        passed_over      BLOB NOT NULL DEFAULT x'',
        claim_sent_by    BLOB,
        image_quality    TEXT,
        useful           INTEGER,
        updated_ms       INTEGER NOT NULL
    );
    CREATE INDEX cases_state ON cases (state, due_ms);
    CREATE TABLE case_documents (
        digest      BLOB PRIMARY KEY,
        case_id     BLOB NOT NULL,
        kind        TEXT NOT NULL,
        signer      BLOB NOT NULL,
        created_ms  INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        raw         BLOB NOT NULL
    );
    CREATE INDEX case_documents_case ON case_documents (case_id, created_ms);
    CREATE TABLE case_bundles (
        bundle_id BLOB PRIMARY KEY,
        case_id   BLOB NOT NULL,
        purpose   TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        seq     INTEGER PRIMARY KEY,
        at_ms   INTEGER NOT NULL,
        actor   BLOB NOT NULL,
        case_id BLOB NOT NULL,
        action  TEXT NOT NULL,
        detail  TEXT NOT NULL,
        prev    BLOB NOT NULL
    );
    CREATE TABLE notifications (
        id      INTEGER PRIMARY KEY,
        person  BLOB,
        case_id BLOB NOT NULL,
        kind    TEXT NOT NULL,
        at_ms   INTEGER NOT NULL
    );
    CREATE TABLE pair_proposals (
        pair_id          BLOB PRIMARY KEY,
        terms            BLOB NOT NULL,
        countersignature BLOB NOT NULL,
        proposer         BLOB NOT NULL,
        received_ms      INTEGER NOT NULL
    );
    """,
    # 7: web sessions (the cookie's token stored as a BLAKE3 hash, with the session's CSRF
    # token) and failed sign-ins (for throttling)
    """
    CREATE TABLE web_sessions (
        token_hash BLOB PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        csrf       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE login_failures (
        id       INTEGER PRIMARY KEY,
        username TEXT NOT NULL,
        source   TEXT NOT NULL,
        at_ms    INTEGER NOT NULL
    );
    CREATE INDEX login_failures_at ON login_failures (at_ms);
    """,
    # 8: applications to join a group, from the node's public page, until a coordinator
    # of the group attests the applicant (then an account is made) or declines
    """
    CREATE TABLE applications (
        id            INTEGER PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('reader', 'sender')),
        group_key     BLOB NOT NULL,
        username      TEXT NOT NULL,
        display_name  TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        language      TEXT NOT NULL,
        details       TEXT NOT NULL,
        charter_ms    INTEGER NOT NULL,
        source        TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        state         TEXT NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'attested', 'declined')),
        decided_by    BLOB,
        decided_ms    INTEGER,
        reason        TEXT NOT NULL DEFAULT ''
    );
    """,
    # 9: readers' own tools. A token's label and last use (DICOMweb tokens are listed
    # and revoked by their owner); the DICOM nodes a person sends studies to by
    # C-STORE, and each sending with its outcome.
    """
    ALTER TABLE api_tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
    ALTER TABLE api_tokens ADD COLUMN last_used_ms INTEGER;
    CREATE TABLE dicom_destinations (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts (id),
        label       TEXT NOT NULL,
        ae_title    TEXT NOT NULL,
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL,
        calling_ae  TEXT NOT NULL
    );
    CREATE TABLE dicom_sends (
        id             INTEGER PRIMARY KEY,
        account_id     INTEGER NOT NULL REFERENCES accounts (id),
        case_id        BLOB NOT NULL,
        destination_id INTEGER NOT NULL,
        started_ms     INTEGER NOT NULL,
        done_ms        INTEGER,
        total          INTEGER NOT NULL DEFAULT 0,
        sent           INTEGER NOT NULL DEFAULT 0,
        state          TEXT NOT NULL DEFAULT 'sending'
                       CHECK (state IN ('sending', 'done', 'failed')),
        error          TEXT NOT NULL DEFAULT ''
    );
    """,
    # 10: the decisions the sender's node announced about a case, numbered (a copy: the
    # number of the newest it followed), so that copies follow them in any order of
    # arrival (protocol/cases.py DECISIONS)
    """
    ALTER TABLE cases ADD COLUMN decisions INTEGER NOT NULL DEFAULT 0;
    """,
    # 11: a sender's choice to send every report that comes back, automatically, to one
    # of their DICOM destinations (the hospital's PACS): a flag on the destination
    """
    ALTER TABLE dicom_destinations ADD COLUMN reports_auto INTEGER NOT NULL DEFAULT 0;
    """,
    # 12: e-mail. An account's address and how it wants notices (immediately, a daily
    # digest, never); the queue of e-mails: one row per (notice, account), never two
    # (a notice is a case's notification, a deadline, an application, a nudge), each
    # queued, then sent or failed for good, with its attempts and the next one's time.
    """
    ALTER TABLE accounts ADD COLUMN email TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN email_mode TEXT NOT NULL DEFAULT 'immediately'
        CHECK (email_mode IN ('immediately', 'digest', 'never'));
    CREATE TABLE mail_queue (
        id              INTEGER PRIMARY KEY,
        notice          TEXT NOT NULL,
        account_id      INTEGER NOT NULL REFERENCES accounts (id),
        kind            TEXT NOT NULL,
        case_id         BLOB,
        figures         TEXT NOT NULL DEFAULT '{}',
        digest          INTEGER NOT NULL DEFAULT 0,
        state           TEXT NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'sent', 'failed', 'dropped')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error      TEXT NOT NULL DEFAULT '',
        created_ms      INTEGER NOT NULL,
        sent_ms         INTEGER,
        UNIQUE (notice, account_id)
    );
    CREATE INDEX mail_queue_due ON mail_queue (state, next_attempt_ms);
    """,
    # 13: the DICOM workstations a reader binds to their account (Query/Retrieve: a
    # calling AE title finds what its account may see; C-MOVE sends only to the
    # account's own bound workstations). An AE title belongs to one account at most.
    """
    CREATE TABLE dicom_bindings (
        ae_title   TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        host       TEXT NOT NULL,
        port       INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX dicom_bindings_account ON dicom_bindings (account_id);
    """,
    # 14: the sender's own reference for the patient of a case (a file number, a name),
    # typed on the new-case form: patient data, kept apart from the case, on the sender's
    # node only (never in a bundle, a document, a log or the directory)
    """
    CREATE TABLE local_references (
        case_id    BLOB PRIMARY KEY,
        reference  TEXT NOT NULL
    );
    """,
    # 15: the time zone an account reads times in (an IANA name; '': the node's own)
    """
    ALTER TABLE accounts ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
    """,
    # 16: the reader's images: DICOM instances a reader made at the workstation (key
    # images, presentation states, SR) attached to a case by STOW-RS or C-STORE, held at
    # the reader's node until a report carries them (``report``: its digest), and at the
    # sender's node once that report arrived. The file is DIR/reader_images/CASE/HASH.dcm.
    """
    CREATE TABLE reader_images (
        case_id      BLOB NOT NULL,
        sop_uid      TEXT NOT NULL,
        sop_class    TEXT NOT NULL,
        study_uid    TEXT NOT NULL,
        digest       BLOB NOT NULL,
        size         INTEGER NOT NULL,
        reader       BLOB NOT NULL,
        via          TEXT NOT NULL,
        report       BLOB,
        created_ms   INTEGER NOT NULL,
        PRIMARY KEY (case_id, sop_uid)
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
