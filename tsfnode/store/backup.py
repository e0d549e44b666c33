"""One encrypted archive of what a node cannot fetch again, and the node brought back
from it on another machine.

What goes in: ``config.toml``, ``node.key`` (the node's identity), ``people/`` (its
people's keys), ``retired-keys/`` (the node's keys before a rotation),
``pseudonyms/`` (the pseudonym map and its key: without them a report
cannot be matched to the hospital's patient), ``node.db`` (an online SQLite backup,
consistent while the node runs), ``blobs/`` (sealed bundles still to deliver),
``intake/`` (de-identified studies not yet sent) and ``teaching/``. The database is
copied first and the files after it, so the files hold at least what the database says
they hold. What stays out: ``uploads/`` (unfinished uploads), ``run.json``,
``node.lock`` and logs.

The bundles this node received (``received/``, opened; ``chunks/``, in transit or held
as a relay) stay out by default: they are listed instead, by id and the hash of their
signed manifest, in the archive's ``refetch.json``, and the restored node fetches each
again from its sender and its relays (the chunk-fetch path, SPEC.md 7.1; every chunk
checked against the manifest). A study is the bulk of a node's disk (a CT is 260 MB,
a backup a day over a 1 Mbit/s line or on a small disk cannot carry it), and while its
case is open its sender still holds it, sealed. ``with_bundles=True`` puts them in (an
archive that needs nobody to restore). ``blobs/`` is always in: once a recipient has
opened a bundle it keeps the files, not the ciphertext, so nobody else could give this
node's sealed chunks back.

The file::

    b"TSFBACKUP1\\n"  4-byte big-endian header length  header (JSON)
    then records: 4-byte big-endian length, secretstream ciphertext

The plaintext is a gzip-compressed tar stream, encrypted with libsodium's secretstream
(XChaCha20-Poly1305; the last record is tagged FINAL, so a truncated archive is
detected). Its key is derived from a passphrase (Argon2id, the salt and limits in the
header) or is random and sealed to an operator's X25519 public key (``SealedBox``): the
backup can then be written by a node that cannot read it back.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.utils

from protocol.documents import digest
from protocol.transfer import ChunkSet
from tsfnode.errors import NodeError
from tsfnode.nodedir import NodeDir

MAGIC = b"TSFBACKUP1\n"
RECORD = 1 << 20  # plaintext bytes per encrypted record
MAX_HEADER = 64 * 1024
KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
# Argon2id at libsodium's "moderate" limits: about a second and 256 MiB on a small box.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE

FILES = ("config.toml", "node.key")
FOLDERS = (
    "people",
    "retired-keys",
    "pseudonyms",
    "blobs",
    "chunks",
    "intake",
    "received",
    "teaching",
)
BUNDLE_FOLDERS = ("chunks", "received")  # left out unless with_bundles
DATABASE = "node.db"
REFETCH = "refetch.json"  # in the archive and in a restored node's directory
REFETCH_WINDOW_MS = 14 * 86_400_000  # how long a restored node keeps asking


class BackupError(NodeError):
    """An archive that cannot be written or read back, with what to do."""


@dataclass(frozen=True)
class Sealing:
    """How an archive's key is protected: a passphrase, or an operator's public key (to
    write) and private key (to read)."""

    passphrase: bytes | None = None
    recipient: nacl.public.PublicKey | None = None
    private_key: nacl.public.PrivateKey | None = None


@dataclass(frozen=True)
class Restored:
    node_id: str
    created_ms: int
    files: int
    refetch: int = 0  # bundles left out of the archive, to fetch again from peers


def _database_copy(database: Path, into: Path) -> None:
    """An online backup (sqlite3's backup API): consistent while the node writes."""
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(into)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def _header_for(sealing: Sealing, key: bytes, meta: dict[str, Any]) -> dict[str, Any]:
    if sealing.recipient is not None:
        sealed = nacl.public.SealedBox(sealing.recipient).encrypt(key)
        return {**meta, "mode": "recipient", "sealed_key": base64.b64encode(sealed).decode()}
    if sealing.passphrase:
        return {**meta, "mode": "passphrase"}
    raise BackupError("a backup needs a passphrase or an operator's public key")


def _passphrase_key(passphrase: bytes, salt: bytes, ops: int, mem: int) -> bytes:
    return bytes(nacl.pwhash.argon2id.kdf(KEY_BYTES, passphrase, salt, opslimit=ops, memlimit=mem))


class _Sealer(io.RawIOBase):
    """A write-only file that encrypts what is written to it, record by record."""

    def __init__(self, out: IO[bytes], key: bytes) -> None:
        self._out = out
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        out.write(header)
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._pending += bytes(data)
        while len(self._pending) > RECORD:
            self._push(bytes(self._pending[:RECORD]), TAG_MESSAGE)
            del self._pending[:RECORD]
        return len(data)

    def _push(self, plain: bytes, tag: int) -> None:
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, plain, None, tag)
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)

    def finish(self) -> None:
        self._push(bytes(self._pending), TAG_FINAL)
        self._pending.clear()


def _records(source: IO[bytes], key: bytes) -> Iterator[bytes]:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = source.read(sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key)
    except (ValueError, nacl.exceptions.CryptoError):
        raise BackupError("the archive is damaged (its stream header is short)") from None
    while True:
        size_bytes = source.read(4)
        if len(size_bytes) < 4:
            raise BackupError(
                "the archive is truncated: it ends before its last record (copy it again)"
            )
        size = int.from_bytes(size_bytes, "big")
        if size > RECORD + ABYTES + 16:
            raise BackupError("the archive is damaged (a record is larger than any written)")
        sealed = source.read(size)
        if len(sealed) < size:
            raise BackupError("the archive is truncated: it ends inside a record (copy it again)")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, None)
        except (ValueError, nacl.exceptions.CryptoError):
            raise BackupError(
                "the archive cannot be decrypted: wrong passphrase or key, or a damaged file"
            ) from None
        yield plain
        if tag == TAG_FINAL:
            return


class _Opener(io.RawIOBase):
    """A read-only file of the decrypted records."""

    def __init__(self, records: Iterator[bytes]) -> None:
        self._records = records
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, into: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._records)
            except StopIteration:
                return 0
        n = min(len(into), len(self._buffer))
        into[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def write_backup(
    directory: Path, out: Path, sealing: Sealing, *, now_ms: int, with_bundles: bool = False
) -> int:
    """Write the archive of the node in ``directory`` to ``out`` (mode 0600, written
    aside then renamed, so a backup cut short never replaces a good one); the number of
    files it holds. Without ``with_bundles`` the received bundles are listed in
    ``refetch.json`` instead of copied."""
    node = NodeDir(directory)
    if not node.key.exists() or not node.database.exists():
        raise BackupError(f"{directory} is not a node directory (no node.key or node.db)")
    key = nacl.utils.random(KEY_BYTES)
    meta: dict[str, Any] = {"version": 1, "created_ms": now_ms, "node_id": _node_id(node)}
    if sealing.recipient is None and sealing.passphrase:
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        meta |= {
            "salt": base64.b64encode(salt).decode(),
            "opslimit": OPSLIMIT,
            "memlimit": MEMLIMIT,
        }
        key = _passphrase_key(sealing.passphrase, salt, OPSLIMIT, MEMLIMIT)
    header = json.dumps(_header_for(sealing, key, meta), sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    count = 0
    with tempfile.TemporaryDirectory(prefix="tsfnode-backup-") as scratch:
        snapshot = Path(scratch) / DATABASE
        _database_copy(node.database, snapshot)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw:
                raw.write(MAGIC + len(header).to_bytes(4, "big") + header)
                sealer = _Sealer(raw, key)
                with tarfile.open(fileobj=sealer, mode="w|gz") as tar:
                    tar.add(snapshot, arcname=DATABASE)
                    count += 1
                    if not with_bundles:
                        listed = json.dumps(_received_bundles(snapshot)).encode()
                        info = tarfile.TarInfo(REFETCH)
                        info.size, info.mode, info.mtime = len(listed), 0o600, now_ms // 1000
                        tar.addfile(info, io.BytesIO(listed))
                        count += 1
                    for name in FILES:
                        if (directory / name).exists():
                            tar.add(directory / name, arcname=name)
                            count += 1
                    for folder in FOLDERS:
                        if folder in BUNDLE_FOLDERS and not with_bundles:
                            continue
                        for path in _files_under(directory / folder):
                            try:
                                tar.add(path, arcname=path.relative_to(directory).as_posix())
                            except FileNotFoundError:  # removed by the node meanwhile
                                continue
                            count += 1
                sealer.finish()
                raw.flush()
                os.fsync(raw.fileno())
            partial.replace(out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return count


def _received_bundles(database: Path) -> list[dict[str, str]]:
    """The bundles addressed to this node (opened or still coming), by id and the BLAKE3
    hash of their signed manifest: what a restore asks its peers for again."""
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT bundle_id, manifest FROM bundles WHERE role = 'inbox'"
            " AND state IN ('complete', 'receiving') ORDER BY created_ms"
        ).fetchall()
    finally:
        con.close()
    return [{"bundle": bytes(b).hex(), "manifest": digest(bytes(m)).hex()} for b, m in rows]


def _ask_again(database: Path, listed: list[dict[str, str]], now_ms: int) -> int:
    """In a restored database: each listed bundle back to ``receiving`` with no chunk
    held and its sender among its sources (its relays are added by the next mail poll),
    kept at least REFETCH_WINDOW_MS; relay copies, whose chunks stayed out too, hold
    nothing. The number of bundles to fetch again."""
    con = sqlite3.connect(database)
    try:
        count = 0
        for entry in listed:
            row = con.execute(
                "SELECT manifest, chunk_count, sender, sources, expires_ms FROM bundles"
                " WHERE bundle_id = ? AND role = 'inbox'",
                (bytes.fromhex(entry["bundle"]),),
            ).fetchone()
            if row is None or digest(bytes(row[0])).hex() != entry["manifest"]:
                continue
            sources = sorted(set(json.loads(row[3])) | {bytes(row[2]).hex()})
            con.execute(
                "UPDATE bundles SET state = 'receiving', have = ?, sources = ?,"
                " expires_ms = ?, completed_ms = NULL, last_error = '' WHERE bundle_id = ?",
                (
                    ChunkSet(int(row[1])).to_bytes(),
                    json.dumps(sources),
                    max(int(row[4]), now_ms + REFETCH_WINDOW_MS),
                    bytes.fromhex(entry["bundle"]),
                ),
            )
            count += 1
        for bundle_id, chunk_count in con.execute(
            "SELECT bundle_id, chunk_count FROM bundles WHERE role = 'relay'"
        ).fetchall():
            con.execute(
                "UPDATE bundles SET have = ? WHERE bundle_id = ?",
                (ChunkSet(int(chunk_count)).to_bytes(), bundle_id),
            )
        con.commit()
    finally:
        con.close()
    return count


def _files_under(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _node_id(node: NodeDir) -> str:
    con = sqlite3.connect(f"file:{node.database}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
    finally:
        con.close()
    return str(row[0]) if row else ""


def read_header(archive: Path) -> dict[str, Any]:
    with archive.open("rb") as source:
        return _read_header(source)


def _read_header(source: IO[bytes]) -> dict[str, Any]:
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a tsfnode backup (the file does not start as one)")
    size = int.from_bytes(source.read(4), "big")
    if size > MAX_HEADER:
        raise BackupError("the archive is damaged (its header is too large)")
    try:
        header = json.loads(source.read(size))
    except ValueError:
        raise BackupError("the archive is damaged (its header is not JSON)") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise BackupError("this backup was written by a version of tsfnode this one cannot read")
    return header


def _key_for(header: dict[str, Any], sealing: Sealing) -> bytes:
    try:
        if header["mode"] == "recipient":
            if sealing.private_key is None:
                raise BackupError(
                    "this archive is sealed to an operator's key: give --key with the "
                    "private key that matches it"
                )
            sealed = base64.b64decode(header["sealed_key"])
            try:
                return bytes(nacl.public.SealedBox(sealing.private_key).decrypt(sealed))
            except nacl.exceptions.CryptoError:
                raise BackupError("this archive was sealed to another operator's key") from None
        if not sealing.passphrase:
            raise BackupError("this archive is protected by a passphrase: give --passphrase-file")
        return _passphrase_key(
            sealing.passphrase,
            base64.b64decode(header["salt"]),
            int(header["opslimit"]),
            int(header["memlimit"]),
        )
    except (KeyError, TypeError, ValueError):
        raise BackupError("the archive is damaged (its header lacks its key's details)") from None


def restore_backup(
    archive: Path, directory: Path, sealing: Sealing, *, now_ms: int | None = None
) -> Restored:
    """Bring the node of ``archive`` back in ``directory`` (which must not hold a node):
    everything is extracted aside and checked before it is moved in, so a wrong
    passphrase or a damaged archive leaves nothing behind. The bundles the archive
    lists instead of holding are set to be fetched again (`_ask_again`), and stay listed
    in ``DIR/refetch.json`` until they are back (the node's transfer service, `tsfnode
    doctor`)."""
    if NodeDir(directory).exists():
        raise BackupError(
            f"{directory} already holds a node: restore into an empty directory (move that "
            "node aside first if it is the one being replaced)"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=directory))
    files = 0
    try:
        with archive.open("rb") as source:
            header = _read_header(source)
            key = _key_for(header, sealing)
            plain = io.BufferedReader(_Opener(_records(source, key)), buffer_size=RECORD)
            try:
                with tarfile.open(fileobj=plain, mode="r|gz") as tar:
                    for member in tar:
                        files += _extract(tar, member, staging)
            except (tarfile.TarError, EOFError, OSError) as exc:
                if isinstance(exc, BackupError):
                    raise
                raise BackupError(f"the archive's contents are damaged ({exc})") from None
        if not (staging / "node.key").exists() or not (staging / DATABASE).exists():
            raise BackupError("the archive holds no node key or database")
        refetch = 0
        if (staging / REFETCH).exists():
            try:
                listed = json.loads((staging / REFETCH).read_text("utf-8"))
                refetch = _ask_again(
                    staging / DATABASE,
                    listed,
                    int(time.time() * 1000) if now_ms is None else now_ms,
                )
            except (ValueError, KeyError, TypeError, sqlite3.Error) as exc:
                raise BackupError(f"the archive's list of bundles is damaged ({exc})") from None
        for child in staging.iterdir():
            child.replace(directory / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for sub in ("blobs",):
        (directory / sub).mkdir(mode=0o700, exist_ok=True)
    return Restored(
        str(header.get("node_id", "")), int(header.get("created_ms", 0)), files, refetch
    )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path) -> int:
    """One regular file, at a path that stays inside ``staging``; anything else refused."""
    name = Path(member.name)
    if name.is_absolute() or ".." in name.parts or not member.isfile():
        raise BackupError(f"the archive holds an entry that is not a node's file: {member.name!r}")
    top = name.parts[0]
    if top not in (*FILES, *FOLDERS, DATABASE, REFETCH):
        raise BackupError(f"the archive holds an entry that is not a node's file: {member.name!r}")
    target = staging / name
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - isfile() members always have data
        return 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out)
    return 1


def backups_in(folder: Path) -> list[Path]:
    """The scheduled backups in ``folder``, oldest first."""
    return sorted(folder.glob("tsfnode-*.tsfbackup"))


def scheduled_name(now_ms: int) -> str:
    return time.strftime("tsfnode-%Y%m%dT%H%M%SZ.tsfbackup", time.gmtime(now_ms / 1000))


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest scheduled backups; the ones removed."""
    old = backups_in(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


def private_mode(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
