"""`tsfnode import`: studies into a node's intake, with a progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tsfnode.errors import NodeError
from tsfnode.intake.importer import Importer, ImportReport
from tsfnode.intake.pseudonyms import PseudonymMap
from tsfnode.nodedir import NodeDir


def intake_of(directory: Path) -> tuple[Path, PseudonymMap]:
    node = NodeDir(directory)
    if not node.config.exists():
        raise NodeError(f"{directory} is not a node directory: create one with 'tsfnode init'")
    return directory / "intake", PseudonymMap(directory / "pseudonyms")


def print_report(report: ImportReport) -> None:
    studies = report.studies
    print(
        f"Taken / importés: {len(report.taken)} file(s) in {len(studies)} study(ies); "
        f"refused / refusés: {len(report.rejected)}"
    )
    for study, series in studies.items():
        count = sum(series.values())
        print(f"  study {study[:24]}…  {len(series)} series, {count} file(s)")
    flagged = [r for r in report.taken if r.burned_in]
    if flagged:
        print(
            f"  {len(flagged)} image(s) may show the patient's identity in the pixels: check "
            "them (and mask) before sending / à vérifier avant l'envoi"
        )
    for rejected in report.rejected:
        print(f"  refused: {rejected.name}: {rejected.reason}")


def import_command(args: argparse.Namespace) -> int:
    intake, pseudonyms = intake_of(args.node)
    total = 0
    for path in args.paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.exists():
            total += path.stat().st_size
    importer = Importer(intake, pseudonyms)
    with tqdm(total=total, unit="B", unit_scale=True, desc="import", disable=args.quiet) as bar:
        report = importer.run(list(args.paths), progress=bar.update)
    print_report(report)
    return 0 if report.taken or not report.rejected else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="import studies (DICOM files, folders, zips, CDs, photos)")
    p.add_argument("paths", type=Path, nargs="+", help="files, folders or zip archives")
    p.add_argument("--node", type=Path, required=True, help="the node directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=import_command)

    from tsfnode.intake.send import send_command

    p = sub.add_parser("send", help="de-identify here and upload to a node (no node needed)")
    p.add_argument("paths", type=Path, nargs="+", help="files, folders or zip archives")
    p.add_argument("--node", required=True, help="the node's URL")
    p.add_argument("--token", required=True, help="your sender token from that node")
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help="where the pseudonym map and the outbox stay (~/.tsfnode-send)",
    )
    p.add_argument("--retries", type=int, default=5, help="tries before giving up (then resume)")
    p.set_defaults(handler=send_command)
