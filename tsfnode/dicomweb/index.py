"""The DICOM instances of a case, as DICOMweb serves them.

Each instance is listed once from its header (no pixel data read): its UIDs, frames,
stored transfer syntax, and its attributes in the DICOM JSON model (PS3.18 F.2), with
large binary values replaced by a BulkDataURI. The listing is kept on disk beside the
viewer's (DIR/dicomweb/CASE.json) until the case's images change, and in memory for a
minute (``webviewer.Listings``), so that a viewer asking for 500 frames does not read
500 headers each time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from pydicom.uid import UID

from tsfnode.appkeys import CASES, NODE_DIR
from tsfnode.cases.images import Listings, image_folders, kept_listing
from tsfnode.images.listing import listed


@dataclass(frozen=True)
class Instance:
    case_id: bytes
    path: Path
    study: str
    series: str
    sop: str
    sop_class: str
    frames: int
    syntax: str
    meta: dict[str, Any]  # DICOM JSON, BulkDataURIs as BULK + tag

    @property
    def compressed(self) -> bool:
        return UID(self.syntax).is_compressed


def list_instances(folders: list[Path]) -> list[dict[str, Any]]:
    """Every readable DICOM instance in ``folders`` (others are skipped: a folder may
    hold the case's non-image files): from each received bundle's listing, made when
    it was opened (images/listing.py), else from the headers."""
    return listed(folders, "dicomweb")


@dataclass(frozen=True)
class Catalogue:
    """A case's instances, and the same by study (a retrieval names one)."""

    instances: list[Instance]
    by_study: dict[str, list[Instance]]

    def __len__(self) -> int:
        return len(self.instances)


# The catalogues of the DICOMweb sub-app, kept a minute (what searches, retrievals and
# STOW-RS look cases' studies up in).
CATALOGUES = web.AppKey("dicomweb_catalogues", Listings[Catalogue])


async def catalogue_of(
    app: ChainMapProxy, listings: Listings[Catalogue], case_id: bytes
) -> Catalogue:
    """The case's catalogue, listed in a worker thread, kept a minute (``Listings``)."""

    async def make() -> Catalogue:
        folders = await image_folders(app[CASES], case_id)
        kept = app[NODE_DIR].root / "dicomweb" / f"{case_id.hex()}.json"
        listed = await asyncio.to_thread(kept_listing, folders, kept, list_instances)
        instances = [
            Instance(
                case_id=case_id,
                path=Path(i["path"]),
                study=i["study"],
                series=i["series"],
                sop=i["sop"],
                sop_class=i["sop_class"],
                frames=int(i["frames"]),
                syntax=i["syntax"],
                meta=i["meta"],
            )
            for i in listed
        ]
        by_study: dict[str, list[Instance]] = {}
        for instance in instances:
            by_study.setdefault(instance.study, []).append(instance)
        return Catalogue(instances, by_study)

    return await listings.get(case_id, make)
