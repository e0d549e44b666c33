"""Issue 21, item 2: a damaged zip archive keeps its good members and names the bad ones.

The attack (or the bad line) as it was met: a zip with one member whose bytes no longer
match its CRC, and one whose central directory entry lies about where it starts. On the
web the import answered 500 and the whole batch was lost; on the API the upload answered
500 and stayed broken for good."""

from __future__ import annotations

import struct
import zipfile
from io import BytesIO

from tests.harness.inprocess import LocalNode
from tests.security.upload_helpers import (
    CT,
    MR,
    api_upload,
    intake_files,
    web_batch,
    web_sender,
    zipped,
)


def damaged_archive() -> bytes:
    """good CT, a member with a bad CRC, a member the central directory misplaces, MR."""
    data = bytearray(
        zipped(
            {
                "ct.dcm": CT.read_bytes(),
                "bad.dcm": CT.read_bytes(),
                "liar.dcm": MR.read_bytes(),
                "mr.dcm": MR.read_bytes(),
            },
            stored=True,
        )
    )
    infos = {i.filename: i for i in zipfile.ZipFile(BytesIO(bytes(data))).infolist()}
    bad = infos["bad.dcm"]
    start = bad.header_offset + 30 + len(bad.filename)  # its bytes, after its local header
    data[start + 5000] ^= 0xFF  # no longer what its CRC says
    end = data.rindex(b"PK\x05\x06")  # end of central directory: where it starts
    central = struct.unpack_from("<I", data, end + 16)[0]
    while True:  # the central directory entry of liar.dcm: point it at ct.dcm's header
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        extra_len, comment_len = struct.unpack_from("<HH", data, central + 30)
        if data[central + 46 : central + 46 + name_len] == b"liar.dcm":
            struct.pack_into("<I", data, central + 42, infos["ct.dcm"].header_offset)
            break
        central += 46 + name_len + extra_len + comment_len
    return bytes(data)


async def test_a_damaged_zip_keeps_the_good_members_and_names_the_bad(
    local_node: LocalNode,
) -> None:
    archive = damaged_archive()
    await local_node.account("koffi", "sender")
    ines = await local_node.account("ines", "sender")

    browser, csrf = await web_sender(local_node, "koffi")
    status, found = await web_batch(browser, csrf, {"cd.zip": archive}, lang="en")
    assert status == 200, found
    assert len(found["studies"]) == 2  # the CT and the MR
    refused = {r["name"]: r["reason"] for r in found["rejected"]}
    assert set(refused) == {"cd.zip: bad.dcm", "cd.zip: liar.dcm"}
    assert all("damaged in the zip archive" in reason for reason in refused.values())
    assert len(intake_files(local_node.root)) == 2

    status, answer = await api_upload(local_node, ines.token, archive)
    assert status == 200, answer
    assert answer["count"] == 2
    refused = {r["name"]: r["reason"] for r in answer["rejected"]}
    assert set(refused) == {"bad.dcm", "liar.dcm"}
    assert all("endommagé dans l'archive zip" in reason for reason in refused.values())  # fr
    assert len(intake_files(local_node.root)) == 4
