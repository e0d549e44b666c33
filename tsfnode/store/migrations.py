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
)

SCHEMA_VERSION = len(MIGRATIONS)
