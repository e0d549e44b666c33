"""The DICOM listener: a hospital's modality or PACS sends studies to the node by C-STORE
(pynetdicom). C-ECHO answers too. Compressed transfer syntaxes are accepted first, so
nothing is decompressed on the way in; each instance goes through the same intake (and
de-identification) as an import, and a refused one gets a failure status."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tsfnode.intake.importer import Importer, ImportReport, Source
from tsfnode.logs import log

# Compressed first: the SCU's data arrives as it is stored, at its smallest.
ACCEPTED_SYNTAXES = [
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    JPEGLSNearLossless,
    JPEG2000,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
STATUS_SUCCESS = 0x0000
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700


class DicomListener:
    def __init__(self, importer: Importer, *, ae_title: str, host: str, port: int) -> None:
        self.importer = importer
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._server: Any = None
        self.received = 0
        self.refused = 0

    def start(self) -> int:
        """Start listening (in pynetdicom's threads); returns the port bound."""
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, ACCEPTED_SYNTAXES)
        ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        ae.require_called_aet = True
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
        ]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = int(self._server.server_address[1])
        log("dicom listener started", ae_title=self.ae_title, port=self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_echo(self, event: Any) -> int:
        return STATUS_SUCCESS

    def _on_store(self, event: Any) -> int:
        calling = event.assoc.requestor.ae_title
        try:
            data = bytes(event.encoded_dataset(include_meta=True))
        except Exception:  # a data set pynetdicom cannot encode back: refuse it
            self.refused += 1
            return STATUS_CANNOT_UNDERSTAND
        report = ImportReport()
        source = Source(name=f"C-STORE from {calling}", size=len(data), read=lambda: data)
        with self._lock:
            try:
                self.importer.take(source, report)
                self.importer.pseudonyms.save()
            except OSError:
                self.refused += 1
                return STATUS_OUT_OF_RESOURCES
        if report.rejected:
            self.refused += 1
            reason = report.rejected[0].reason.split(":")[0].split(" (")[0]
            log("c-store refused", calling_ae=calling, reason=reason)  # no value in it
            return STATUS_CANNOT_UNDERSTAND
        self.received += 1
        log("c-store received", calling_ae=calling, burned_in=bool(report.taken[0].burned_in))
        return STATUS_SUCCESS


def start_listener(node_dir: Path, *, ae_title: str, host: str, port: int) -> DicomListener:
    from tsfnode.intake.importer import importer_for

    listener = DicomListener(importer_for(node_dir), ae_title=ae_title, host=host, port=port)
    listener.start()
    return listener
