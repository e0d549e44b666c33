"""`tsfnode import`: studies into a node's intake, with a progress bar; `studies`,
`review`, `send`. The importer (pydicom, the codecs) and the sender are imported by the
commands that use them: `tsfnode studies` reads the review books alone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tsfnode.clock import Clock
from tsfnode.errors import NodeError
from tsfnode.intake.review import ReviewBook
from tsfnode.nodedir import NodeDir

if TYPE_CHECKING:
    from tsfnode.intake.importer import ImportReport


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
    for repeated in report.repeated:
        kept = "the copy held was kept" if repeated.kept == "first" else "it replaced a lossy copy"
        print(f"  already held / déjà reçue: {repeated.name}: {kept}")


def import_command(args: argparse.Namespace) -> int:
    from tsfnode.heap import keep_freed_buffers
    from tsfnode.intake.journey import start_workers_early

    total = files = 0
    for path in args.paths:
        if path.is_dir():
            sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()]
            total, files = total + sum(sizes), files + len(sizes)
        elif path.exists():
            total, files = total + path.stat().st_size, files + 1
    if NodeDir(args.node).config.exists():  # else importer_for says why, below
        start_workers_early(files)  # their imports beside this process's (journey.py)
    keep_freed_buffers()  # each file's buffers reused, not faulted in again (heap.py)
    from tqdm import tqdm

    from tsfnode.intake.importer import importer_for

    importer = importer_for(args.node, prepare=True)  # the study is sent next, often
    with tqdm(total=total, unit="B", unit_scale=True, desc="import", disable=args.quiet) as bar:
        report = importer.run(list(args.paths), progress=bar.update)
    print_report(report)
    return 0 if report.taken or report.repeated or not report.rejected else 1


def _rectangle(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, width, height = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a rectangle is x,y,width,height in pixels, e.g. 0,0,400,60"
        ) from None
    return x, y, width, height


def studies_command(args: argparse.Namespace) -> int:
    book = ReviewBook(NodeDir(args.node).intake)
    uids = book.studies()
    if not uids:
        print("No study in the intake / aucune étude reçue")
        return 0
    for uid in uids:
        s = book.summary(uid)
        state = "ready to send / prête" if s.sendable else f"{s.pending} image(s) to check"
        print(f"{uid}  {s.series} series, {s.instances} image(s)  {state}")
    return 0


def review_command(args: argparse.Namespace) -> int:

    book = ReviewBook(NodeDir(args.node).intake)
    study = book.find(args.study)
    now_ms = Clock().now_ms()
    if args.mask and not args.image:
        raise NodeError("--mask needs --image SOP: the image whose regions to black out")
    if args.mask:
        book.mask(study, args.image, args.mask, now_ms=now_ms)
        print(f"masked {len(args.mask)} region(s) of image {args.image}")
    elif args.confirm_all or args.confirm:
        count = book.confirm(study, None if args.confirm_all else args.confirm, now_ms=now_ms)
        print(f"{count} image(s) checked: nothing identifying shows / vérifiées")
    for flag in book.flags(study):
        print(f"{flag.state:9}  {flag.sop_uid}  ({'; '.join(flag.reasons)})")
    summary = book.summary(study)
    if summary.sendable:
        print("The study may be sent / l'étude peut être envoyée")
        return 0
    print(
        f"{summary.pending} image(s) still to check: view them, then "
        "--confirm SOP... / --confirm-all, or --image SOP --mask x,y,w,h"
    )
    return 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="import studies (DICOM files, folders, zips, CDs, photos)")
    p.add_argument("paths", type=Path, nargs="+", help="files, folders or zip archives")
    p.add_argument("--node", type=Path, required=True, help="the node directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=import_command)

    p = sub.add_parser("studies", help="the studies in a node's intake and their review")
    p.add_argument("--node", type=Path, required=True, help="the node directory")
    p.set_defaults(handler=studies_command)

    p = sub.add_parser(
        "review", help="check images that may show identity: confirm them or mask regions"
    )
    p.add_argument("study", help="Study Instance UID (or its first characters)")
    p.add_argument("--node", type=Path, required=True, help="the node directory")
    p.add_argument("--confirm", nargs="+", metavar="SOP", help="images checked, nothing shows")
    p.add_argument("--confirm-all", action="store_true", help="every flagged image checked")
    p.add_argument("--image", metavar="SOP", help="the image to mask")
    p.add_argument("--mask", nargs="+", type=_rectangle, metavar="X,Y,W,H", help="regions")
    p.set_defaults(handler=review_command)

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
    p.set_defaults(handler=_send_command)


def _send_command(args: argparse.Namespace) -> int:
    from tsfnode.intake.send import send_command

    return send_command(args)
