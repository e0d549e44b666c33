"""`tsfnode backup`, `tsfnode restore` and `tsfnode backup-key`: the node's identity,
people's keys, pseudonym map and database in one encrypted archive, and back. The studies
the node received are listed in it, not copied (`--with-bundles` copies them): a
restored node fetches them again from their senders and relays.

    tsfnode backup-key --out /root/tsfnode-backup.key      # once, on the operator's machine
    tsfnode backup /var/lib/tsfnode --out node.tsfbackup --to-key tsfnode-backup.key.pub
    tsfnode backup /var/lib/tsfnode --out node.tsfbackup --passphrase-file pass.txt
    tsfnode restore node.tsfbackup /var/lib/tsfnode --key /root/tsfnode-backup.key
"""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import sys
from pathlib import Path

import nacl.public

from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.store.backup import (
    BackupError,
    Sealing,
    read_header,
    restore_backup,
    write_backup,
)

PASSPHRASE_ENV = "TSFNODE_BACKUP_PASSPHRASE"  # noqa: S105 - a variable's name
MIN_PASSPHRASE = 12


def read_public_key(text: str) -> nacl.public.PublicKey:
    """An operator's public key: base64 of 32 bytes, as `tsfnode backup-key` writes it."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return nacl.public.PublicKey(raw)
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        raise BackupError(
            "the operator's public key is not one `tsfnode backup-key` wrote (base64 of 32 bytes)"
        ) from None


def _public_key_arg(value: str) -> nacl.public.PublicKey:
    path = Path(value)
    return read_public_key(path.read_text() if path.is_file() else value)


def _private_key(path: Path) -> nacl.public.PrivateKey:
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        return nacl.public.PrivateKey(raw)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        raise BackupError(f"{path} is not a key `tsfnode backup-key` wrote") from None


def passphrase_from(path: Path | None, *, confirm: bool) -> bytes | None:
    """From a file (first line), the environment, or the terminal; None if none given."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    elif os.environ.get(PASSPHRASE_ENV):
        text = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        text = getpass.getpass("Backup passphrase: ")
        if confirm and getpass.getpass("Again: ") != text:
            raise BackupError("the two passphrases differ")
    else:
        return None
    if confirm and len(text) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase is too short: at least {MIN_PASSPHRASE} characters")
    return text.encode("utf-8")


def backup(args: argparse.Namespace) -> int:
    if args.to_key is not None:
        sealing = Sealing(recipient=_public_key_arg(args.to_key))
    else:
        passphrase = passphrase_from(args.passphrase_file, confirm=True)
        if passphrase is None:
            raise BackupError(
                "give --to-key (an operator's public key) or --passphrase-file "
                f"(or set {PASSPHRASE_ENV})"
            )
        sealing = Sealing(passphrase=passphrase)
    count = write_backup(
        args.directory,
        args.out,
        sealing,
        now_ms=Clock().now_ms(),
        with_bundles=args.with_bundles,
    )
    size = args.out.stat().st_size
    print(f"Backup written: {args.out} ({count} files, {size / 1e6:.1f} MB)")
    if not args.with_bundles:
        print("Received studies are listed, not copied: a restored node fetches them again.")
    print("Keep it on another machine; it holds the node's identity and the pseudonym map.")
    return 0


def restore(args: argparse.Namespace) -> int:
    header = read_header(args.archive)
    if header.get("mode") == "recipient":
        if args.key is None:
            raise BackupError("this archive is sealed to an operator's key: give --key")
        sealing = Sealing(private_key=_private_key(args.key))
    else:
        passphrase = passphrase_from(args.passphrase_file, confirm=False)
        if passphrase is None:
            raise BackupError(f"give --passphrase-file (or set {PASSPHRASE_ENV})")
        sealing = Sealing(passphrase=passphrase)
    restored = restore_backup(args.archive, args.directory, sealing, now_ms=Clock().now_ms())
    print(f"Restored node {restored.node_id} in {args.directory} ({restored.files} files)")
    if restored.refetch:
        print(
            f"{restored.refetch} received bundle(s) will be fetched again from their senders "
            "and relays once the node runs (tsfnode doctor names any that cannot be)."
        )
    print(f"Start it with: tsfnode run {args.directory}")
    return 0


def backup_key(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        raise NodeError(f"{out} exists: choose another file (a key is never overwritten)")
    key = nacl.public.PrivateKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(bytes(key)).decode() + "\n")
    public = base64.b64encode(bytes(key.public_key)).decode()
    pub_path = out.with_name(out.name + ".pub")
    pub_path.write_text(public + "\n")
    print(f"Private key: {out} (keep it off the node: only it can read the backups)")
    print(f"Public key:  {pub_path}: {public}")
    print("Give the public key to the node: [backup] to_key in config.toml, or --to-key.")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="write an encrypted archive of what a node cannot refetch")
    p.add_argument("directory", type=Path)
    p.add_argument("--out", type=Path, required=True, help="the archive to write")
    p.add_argument("--to-key", help="an operator's public key (file or base64): sealed to it")
    p.add_argument("--passphrase-file", type=Path, help="a file whose first line is the passphrase")
    p.add_argument(
        "--with-bundles",
        action="store_true",
        help="copy the received studies too (default: listed, fetched again after a restore)",
    )
    p.set_defaults(handler=backup)

    p = sub.add_parser("restore", help="bring a node back from an archive, with the same id")
    p.add_argument("archive", type=Path)
    p.add_argument("directory", type=Path, help="an empty directory")
    p.add_argument("--key", type=Path, help="the operator's private key (tsfnode backup-key)")
    p.add_argument("--passphrase-file", type=Path, help="a file whose first line is the passphrase")
    p.set_defaults(handler=restore)

    p = sub.add_parser("backup-key", help="make an operator's key pair for sealed backups")
    p.add_argument("--out", type=Path, required=True, help="where to write the private key")
    p.set_defaults(handler=backup_key)
