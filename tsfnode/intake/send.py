"""`tsfnode send`: the light client of a sender without a node of their own.

It de-identifies on the sender's own computer (the same intake code; the pseudonym map
stays on this computer), packs the result into one archive and uploads it to the chosen
node in chunks, resumably: run it again after a cut and it goes on from where the node
says it stopped. Identifying data never crosses the network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

from tsfnode.errors import NodeError
from tsfnode.intake.importer import Importer, ImportReport
from tsfnode.intake.pseudonyms import PseudonymMap

CHUNK = 256 * 1024
RETRIES = 5


def default_home() -> Path:
    return Path.home() / ".tsfnode-send"


def prepare(paths: list[Path], home: Path) -> tuple[Path, ImportReport]:
    """De-identify ``paths`` here and pack them: (archive, report)."""
    work = Path(tempfile.mkdtemp(prefix="intake-", dir=home))
    report = Importer(work / "intake", PseudonymMap(home / "pseudonyms")).run(paths)
    if not report.taken:
        shutil.rmtree(work)
        raise NodeError(
            "nothing to send: " + "; ".join(f"{r.name}: {r.reason}" for r in report.rejected[:5])
        )
    files = sorted((work / "intake").rglob("*.dcm"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    archive = home / f"outbox-{digest.hexdigest()[:16]}.zip"
    if not archive.exists():
        tmp = archive.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for f in files:
                z.write(f, f.relative_to(work / "intake").as_posix())
        tmp.rename(archive)
    shutil.rmtree(work)
    return archive, report


async def upload(archive: Path, *, node: str, token: str, state_file: Path) -> dict[str, Any]:
    """Upload ``archive``, resuming an upload recorded in ``state_file``."""
    size = archive.stat().st_size
    headers = {"Authorization": f"Bearer {token}"}
    base = node.rstrip("/") + "/api/v1/uploads"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        upload_id = state.get(archive.name)
        offset = 0
        if upload_id:
            async with session.get(f"{base}/{upload_id}") as r:
                if r.status == 200:
                    offset = int((await r.json())["offset"])
                    print(f"Resuming at {offset} of {size} bytes / reprise à {offset} octets")
                else:
                    upload_id = None
        if not upload_id:
            async with session.post(base, json={"size": size}) as r:
                if r.status == 401:
                    raise NodeError("the node refused the token: ask its administrator for one")
                if r.status != 201:
                    raise NodeError(f"the node refused the upload: {await r.text()}")
                upload_id = (await r.json())["id"]
            state[archive.name] = upload_id
            state_file.write_text(json.dumps(state))
        answer: dict[str, Any] = {}
        with archive.open("rb") as f:
            while offset < size:
                f.seek(offset)
                chunk = f.read(CHUNK)
                async with session.patch(
                    f"{base}/{upload_id}", data=chunk, headers={"Upload-Offset": str(offset)}
                ) as r:
                    answer = await r.json()
                    if r.status not in (200, 409):
                        raise NodeError(f"the node refused a chunk: {answer}")
                    offset = int(answer["offset"])
        state.pop(archive.name, None)
        state_file.write_text(json.dumps(state))
        return answer


def send_command(args: Any) -> int:
    import asyncio

    home = args.home or default_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    archive, report = prepare(list(args.paths), home)
    print(
        f"De-identified here / anonymisés ici: {len(report.taken)} file(s), "
        f"{len(report.rejected)} refused"
    )
    for rejected in report.rejected:
        print(f"  refused: {rejected.name}: {rejected.reason}")
    state = home / "uploads.json"
    retries = max(1, args.retries)
    for attempt in range(retries):
        try:
            answer = asyncio.run(
                upload(archive, node=args.node, token=args.token, state_file=state)
            )
            break
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            print(f"Connection lost ({type(exc).__name__}); retrying / nouvel essai")
            if attempt == retries - 1:
                raise NodeError(
                    "the upload was interrupted: run the same command again to resume"
                ) from None
            time.sleep(min(30, 2**attempt))
    archive.unlink(missing_ok=True)
    print(
        f"Sent / envoyé: {answer.get('count', 0)} file(s) in "
        f"{len(answer.get('studies', {}))} study(ies) to {args.node}"
    )
    return 0
