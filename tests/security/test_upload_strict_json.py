"""Issue 21, item 2: what starts an upload is checked strictly, with a clear 400.

The attacks as they were made: ``{"size": 1e309}`` (a float too large for an integer)
answered 500; ``{"size": 1.5}`` and ``{"size": true}`` were taken as 1; a file name with a
NUL byte was accepted, then its last PATCH answered 500 and its batch could never be
imported (a file "still uploading" for ever)."""

from __future__ import annotations

from tests.harness.inprocess import LocalNode
from tests.security.upload_helpers import CT, web_batch, web_sender

REFUSED_SIZES = [
    b'{"size": 1e309}',
    b'{"size": -1e309}',
    b'{"size": NaN}',
    b'{"size": Infinity}',
    b'{"size": 1.5}',
    b'{"size": 1.0}',
    b'{"size": true}',
    b'{"size": "10"}',
    b'{"size": null}',
    b'{"size": 0}',
    b'{"size": 9999999999999999999999999}',
    b'{"size": [10]}',
    b"{}",
    b"[10]",
    b'"size"',
    b"not json",
    b"\xff\xfe",
    b"[" * 60_000,  # nested deeper than the JSON decoder goes
]


async def test_bad_upload_requests_get_a_clear_400(local_node: LocalNode) -> None:
    koffi = await local_node.account("koffi", "sender")
    for data in REFUSED_SIZES:
        for lang, words in (("fr", "La taille doit être"), ("en", "The size must be")):
            headers = {
                "Authorization": f"Bearer {koffi.token}",
                "Content-Type": "application/json",
                "Accept-Language": lang,
            }
            async with local_node.client.post(
                "/api/v1/uploads", data=data, headers=headers
            ) as response:
                answer = await response.json()
                assert response.status == 400, (data[:40], answer)
                assert answer["error"] in ("upload_size_invalid", "upload_json_invalid")
                if answer["error"] == "upload_size_invalid":
                    assert words in answer["message"], answer
    assert not list((local_node.root / "uploads").glob("*.json"))  # nothing was made

    # The web uploader: a name with a NUL byte (or another control character) is refused
    # before anything is made, and the batch goes on with its other files.
    browser, csrf = await web_sender(local_node, "koffi")
    headers = {"X-CSRF-Token": csrf, "Accept-Language": "en"}
    data = CT.read_bytes()
    async with browser.client.post(
        "/web/uploads", json={"name": "ct.dcm", "size": len(data)}, headers=headers
    ) as response:
        good = await response.json()
    for name in ("scan\x00.dcm", "a\nb.dcm", "del\x7f", "", "x" * 256, 12):
        async with browser.client.post(
            "/web/uploads",
            json={"name": name, "size": 10, "batch": good["batch"]},
            headers=headers,
        ) as response:
            assert response.status == 400, name
            assert "sans caractère de contrôle" in await response.text()  # Koffi's French
    for size in (1.5, True, 1e300):
        async with browser.client.post(
            "/web/uploads?lang=en", json={"name": "a.dcm", "size": size}, headers=headers
        ) as response:
            assert response.status == 400, size
            assert "whole number of bytes" in await response.text()
    async with browser.client.patch(
        f"/web/uploads/{good['id']}", data=data, headers={**headers, "Upload-Offset": "0"}
    ) as response:
        assert response.status == 200
    async with browser.client.post(
        f"/web/batches/{good['batch']}/import", headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        assert len((await response.json())["studies"]) == 1
    # A name is shown, never a path: "../x" or a name with slashes is only its last part.
    status, found = await web_batch(browser, csrf, {"../../x.dcm": b"not dicom"})
    assert status == 200, found
    assert [r["name"] for r in found["rejected"]] == ["x.dcm"]
    assert not (local_node.root / "uploads" / "x.dcm").exists()
