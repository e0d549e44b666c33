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
)

SCHEMA_VERSION = len(MIGRATIONS)
