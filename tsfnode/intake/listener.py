"""The DICOM listener: a hospital's modality or PACS sends studies to the node by C-STORE
(pynetdicom). C-ECHO answers too. Compressed transfer syntaxes are accepted first, so
nothing is decompressed on the way in; each instance goes through the same intake (and
de-identification) as an import, and a refused one gets a failure status.

Decided here (docs/THREAT_MODEL.md, Intake): an encapsulated document (PDF...) is refused
with 0122H and a comment, as its free text may identify the patient; an instance whose
SOP Instance UID is held already never replaces it silently: the first copy is kept (a
lossless copy replaces a lossy one), answered with a warning (B000H) and a comment; the
calling AE titles (and addresses) may be restricted; connections that say nothing, or no
DICOM, are closed after the ARTIM timeout.

A C-STORE from a reader's workstation is not an intake: with the Query/Retrieve SCP's
services, a calling AE title bound to an account (``tsfnode dicom bind``) stores into
the reader's case (the reader's images), and an instance of a study this node holds as
a case's copy is never taken as a new study; ``Services.store_back`` answers both."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydicom import Dataset
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

from tsfnode.config import NodeConfig
from tsfnode.intake.importer import Importer, ImportReport, Source
from tsfnode.logs import log
from tsfnode.peraddress import PerAddress

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
STATUS_WARNING = 0xB000  # a warning status (PS3.4 B.2.3): stored, with a comment
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.7 C.4.2
STATUS_NOT_AUTHORIZED = 0x0124
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700
# The Error Comment (0000,0902) of each answer that is not plain success (LO: 64 chars),
# which dcmtk's storescu and most modalities show.
COMMENTS = {
    "document": "Encapsulated document refused: it may identify the patient",
    "first": "Duplicate SOP Instance UID: the first copy was kept",
    "lossless": "Duplicate SOP Instance UID: a lossy copy was replaced",
    "not allowed": "This calling AE title or address may not send here",
}


class Services(Protocol):
    """Other DICOM services answered by the listener's AE (the Query/Retrieve SCP,
    dicomweb/qr.py): their contexts, their handlers, and the calling AE titles they
    admit beyond [dicom] calling_ae_titles (read as each association is requested)."""

    def add_contexts(self, ae: AE) -> None: ...

    def handlers(self) -> list[tuple[Any, Any]]: ...

    def ae_titles(self) -> list[str]: ...

    def store_back(self, ae_title: str, address: str, data: bytes) -> Dataset | int | None: ...


@dataclass(frozen=True)
class ListenerSettings:
    """What the operator sets in [dicom]: who may call (``calling``: "AE" or
    "AE@address"; empty: anyone), how many associations at once, and the timeouts (s)
    after which a connection that says nothing, or no DICOM, is closed: ARTIM (PS3.8
    9.1.5: from connection to A-ASSOCIATE-RQ, and on release or abort), DIMSE (a
    message's wait), network (an idle association)."""

    ae_title: str = "TSFNODE"
    calling: tuple[str, ...] = ()
    max_associations: int = 32
    max_per_address: int = 16
    artim_timeout_s: float = 10
    dimse_timeout_s: float = 60
    network_timeout_s: float = 60

    @classmethod
    def of(cls, config: NodeConfig) -> ListenerSettings:
        return cls(
            ae_title=config.dicom_ae_title,
            calling=config.dicom_calling_ae_titles,
            max_associations=config.dicom_max_associations,
            max_per_address=config.dicom_max_associations_per_address,
            artim_timeout_s=config.dicom_artim_timeout_s,
            dimse_timeout_s=config.dicom_dimse_timeout_s,
            network_timeout_s=config.dicom_network_timeout_s,
        )

    def may_call(self, ae_title: str, address: str) -> bool:
        """Whether ``ae_title`` calling from ``address`` is on the allow-list."""
        if not self.calling:
            return True
        for entry in self.calling:
            title, at, host = entry.partition("@")
            if title.strip() == ae_title.strip() and (not at or host == address):
                return True
        return False


def status_answer(status: int, comment: str = "") -> Dataset | int:
    """A DIMSE status, with ``comment`` as its Error Comment (LO: cut to 64) if any."""
    if not comment:
        return status
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


class DicomListener:
    def __init__(
        self,
        importer: Importer,
        *,
        host: str,
        port: int,
        settings: ListenerSettings,
        services: Services | None = None,
    ) -> None:
        self.importer = importer
        self.services = services
        self._admitted: frozenset[str] = frozenset()  # the services' calling AE titles
        self.settings = settings
        self.ae_title = settings.ae_title
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._server: Any = None
        self.received = 0
        self.refused = 0
        self.per_address = PerAddress(settings.max_per_address)

    def start(self) -> int:
        """Start listening (in pynetdicom's threads); returns the port bound."""
        settings = self.settings
        ae = AE(ae_title=self.ae_title)
        # With other services (C-GET), the storage classes may also be taken in the SCP
        # role: the node sends on the workstation's own association.
        role = {"scu_role": True, "scp_role": True} if self.services else {}
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, ACCEPTED_SYNTAXES, **role)
        ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        if self.services:
            self.services.add_contexts(ae)
        ae.require_called_aet = True
        if settings.calling:  # titles not listed are rejected in the negotiation
            ae.require_calling_aet = self._calling_titles()
        ae.maximum_associations = settings.max_associations
        # ARTIM: a connection that sends nothing, or bytes that are not DICOM (a port
        # scan, an HTTP health check), is closed after it instead of holding a place.
        ae.acse_timeout = settings.artim_timeout_s
        ae.dimse_timeout = settings.dimse_timeout_s
        ae.network_timeout = settings.network_timeout_s
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        if self.services:
            handlers += [(evt.EVT_REQUESTED, self._on_requested), *self.services.handlers()]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self._limit_per_address(self._server)
        self.port = int(self._server.server_address[1])
        log("dicom listener started", ae_title=self.ae_title, port=self.port)
        return self.port

    def _calling_titles(self) -> list[str]:
        listed = {c.partition("@")[0] for c in self.settings.calling}
        return sorted(listed | self._admitted)

    def _on_requested(self, event: Any) -> None:
        """Before the negotiation: the services' calling AE titles as they are now (a
        workstation bound a moment ago, by the CLI or the web page, may call)."""
        assert self.services is not None  # noqa: S101 - bound only with services
        self._admitted = frozenset(self.services.ae_titles())
        if self.settings.calling:
            event.assoc.ae.require_calling_aet = self._calling_titles()

    def _limit_per_address(self, server: Any) -> None:
        """At most ``max_per_address`` associations at once from one address (their
        threads, with the connections accepted whose thread is being made): one more is
        closed as it is accepted (socketserver's ``verify_request``), logged now and
        then, so that one host cannot hold every place (``max_associations``) for the
        ARTIM time over and over."""
        cap = self.settings.max_per_address
        if not cap:
            return
        starting = PerAddress(0)  # accepted, their association not yet running
        work = server.process_request_thread

        def verify_request(request: Any, client_address: Any) -> bool:
            address = str(client_address[0])
            running = sum(1 for a in server.active_associations if a.requestor.address == address)
            if running + starting.held(address) < cap:
                starting.take(address)
                return True
            self.per_address.refused += 1
            if self.per_address.refused % 100 == 1:
                log(
                    "dicom association refused",
                    address=address,
                    reason="too many connections from this address at once ([dicom]"
                    " max_associations_per_address)",
                    refused=self.per_address.refused,
                )
            return False

        def process_request_thread(request: Any, client_address: Any) -> None:
            try:
                work(request, client_address)  # starts the association's own thread
            finally:
                starting.give(str(client_address[0]))

        server.verify_request = verify_request
        server.process_request_thread = process_request_thread

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _caller(self, event: Any) -> tuple[str, str]:
        requestor = event.assoc.requestor
        return str(requestor.ae_title).strip(), str(requestor.address)

    def _allowed(self, event: Any) -> bool:
        return self.settings.may_call(*self._caller(event))

    def _on_accepted(self, event: Any) -> None:
        """An association whose AE title is listed, but for another address: logged; its
        C-STOREs and C-ECHOs are refused (0124H, Refused: Not Authorized)."""
        if not self._allowed(event):
            calling, address = self._caller(event)
            log(
                "dicom association refused",
                calling_ae=calling,
                address=address,
                reason="this AE title may call only from another address ([dicom] "
                "calling_ae_titles)",
            )

    def _on_rejected(self, event: Any) -> None:
        calling, address = self._caller(event)
        if not self._allowed(event):
            reason = "calling AE title not in [dicom] calling_ae_titles"
        elif str(getattr(event.assoc.requestor.primitive, "called_ae_title", "")).strip() != (
            self.ae_title
        ):
            reason = f"called AE title is not this node's ({self.ae_title})"
        else:
            reason = "too many associations at once ([dicom] max_associations)"
        log("dicom association refused", calling_ae=calling, address=address, reason=reason)

    def _on_echo(self, event: Any) -> int:
        admitted = self._caller(event)[0] in self._admitted  # a bound workstation's test
        return STATUS_SUCCESS if self._allowed(event) or admitted else STATUS_NOT_AUTHORIZED

    def _on_store(self, event: Any) -> Dataset | int:
        calling = event.assoc.requestor.ae_title
        try:
            data = bytes(event.encoded_dataset(include_meta=True))
        except Exception:  # a data set pynetdicom cannot encode back: refuse it
            self.refused += 1
            return STATUS_CANNOT_UNDERSTAND
        if self.services is not None:
            # A reader's workstation storing back into a case (a bound AE title, or a
            # study held here as a case's copy): answered by the services, never the
            # intake's (dicomweb/qr.py ``store_back``).
            answer = self.services.store_back(*self._caller(event), data)
            if answer is not None:
                return answer
        if not self._allowed(event):
            self.refused += 1
            return status_answer(STATUS_NOT_AUTHORIZED, COMMENTS["not allowed"])
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
            rejected = report.rejected[0]
            reason = rejected.reason.split(":")[0].split(" (")[0]
            log("c-store refused", calling_ae=calling, reason=reason)  # no value in it
            if rejected.document:
                return status_answer(STATUS_SOP_CLASS_NOT_SUPPORTED, COMMENTS["document"])
            return STATUS_CANNOT_UNDERSTAND
        if report.repeated:
            kept = report.repeated[0].kept
            log("c-store repeated instance", calling_ae=calling, kept=kept)
            if kept == "first":
                return status_answer(STATUS_WARNING, COMMENTS["first"])
        self.received += 1
        log("c-store received", calling_ae=calling, burned_in=bool(report.taken[0].burned_in))
        if report.repeated:
            return status_answer(STATUS_WARNING, COMMENTS["lossless"])
        return STATUS_SUCCESS


def start_listener(
    node_dir: Path, config: NodeConfig, services: Services | None = None
) -> DicomListener:
    from tsfnode.intake.importer import importer_for

    listener = DicomListener(
        importer_for(node_dir),
        host=config.http_host,
        port=config.dicom_port,
        settings=ListenerSettings.of(config),
        services=services,
    )
    listener.start()
    return listener
