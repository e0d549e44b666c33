"""The Query/Retrieve SCP (PS3.4 Annex C): a reader's workstation (Horos, OsiriX,
RadiAnt, Weasis) finds and retrieves the studies of the reader's cases as from a PACS.

It answers on the node's DICOM port, as the listener's AE (intake/listener.py), which
adds the contexts and handlers of ``QueryRetrieve``: Patient Root and Study Root FIND,
MOVE and GET, and, for C-GET, the storage classes in the SCP role. One port and one AE
title for everything DICOM: a workstation is configured once, and sends and retrieves
through the same node entry.

Who: the calling AE title, bound to an account (store/bindings.py; `tsfnode dicom
bind`, or the reader's tools page). The bound account sees exactly what DICOMweb lets
it see, from the same code: ``visible_instances`` (cases/policy.py decides), the same
catalogue (index.py), the same matching (query.py). A calling AE title bound to no one
finds nothing; its C-MOVE is answered 0xA801 and its C-GET C000H, each with an Error
Comment. An identifier without its level's unique key is answered A900H, naming it. A
C-MOVE goes only to a workstation bound to the same account, at the host and port it
was bound with (never the address the request names: DICOM does not carry one), and
within [dicom] send_networks.

Files go as stored (their transfer syntax, when the destination accepts it), else
decompressed, as export.py sends them. Every query and retrieval is written to the
audit log of each case it touched: the account (the actor), the AE titles, the level
and the number of instances sent. pynetdicom calls the handlers in its threads; they
ask the aiohttp loop for what they need (``_on_loop``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from tsfnode.appkeys import CASES, CONFIG, STORE
from tsfnode.cases.images import Listings
from tsfnode.cases.reader_images import NOT_AUTHORIZED, Refusal, study_of
from tsfnode.clock import CLOCK
from tsfnode.dicomweb.index import Catalogue, Instance
from tsfnode.dicomweb.query import (
    Query,
    QueryError,
    at_level,
    matches,
    parse,
    select,
)
from tsfnode.dicomweb.service import Record, records_of, visible_instances
from tsfnode.dicomweb.stow import attach_instance, case_holding_study
from tsfnode.images.export import Context, ExportError, allowed, plan_contexts, prepared
from tsfnode.intake.listener import STATUS_CANNOT_UNDERSTAND as UNABLE_TO_PROCESS
from tsfnode.intake.listener import status_answer
from tsfnode.logs import log
from tsfnode.store.accounts import AccountStore
from tsfnode.store.bindings import BindingStore

T = TypeVar("T")
FIND = (PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind)
MOVE = (PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove)
GET = (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet)
QUERY_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# The levels of PS3.4 C.6, and the level of query.py (DICOMweb) each is answered at.
LEVELS = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
UNIQUE_KEYS = {  # each level's unique key (PS3.4 C.6.1.1, C.6.2.1)
    "PATIENT": "00100020",
    "STUDY": "0020000D",
    "SERIES": "0020000E",
    "IMAGE": "00080018",
}
PATIENT_ATTRIBUTES = frozenset(
    f"{tag_for_keyword(k):08X}"
    for k in (
        "SpecificCharacterSet PatientName PatientID IssuerOfPatientID PatientBirthDate"
        " PatientBirthTime PatientSex OtherPatientIDsSequence OtherPatientNames EthnicGroup"
        " PatientComments PatientIdentityRemoved DeidentificationMethod"
    ).split()
)
NOT_QUERIED = {0x00080052, 0x00080005}  # QueryRetrieveLevel, SpecificCharacterSet
PENDING = 0xFF00
CANCEL = 0xFE00
MOVE_DESTINATION_UNKNOWN = 0xA801  # PS3.4 C.4.2.1.5
IDENTIFIER_DOES_NOT_MATCH = 0xA900
LOOP_TIMEOUT_S = 120.0
# Error Comments (0000,0902), LO: 64 characters at most.
COMMENTS = {
    "unbound": "This calling AE title is bound to no account on this node",
    "destination": "Move destination unknown: bind it to your account first",
    "outside": "Move destination outside this node's [dicom] send_networks",
    # a C-STORE back into a case (the reader's images, stow.py ``attach_instance``)
    "store unbound": "Bind this AE title to your account to store into a case",
    "reader_image_not_yours": "Study of no case you may report on at this node",
    "reader_image_class": "SOP class not one a reader makes (KOS, PR, SR, SC, PDF)",
    "reader_image_not_dicom": "Not a DICOM instance",
    "reader_image_bad_uid": "SOP Class or Instance UID malformed",
    "reader_image_no_study": "No valid Study Instance UID",
    "reader_image_other_bytes": "SOP Instance UID held with other bytes",
    "reader_image_too_large": "Instance too large",
    "reader_image_too_many": "Too many images of the reader's for this case",
}


async def _addresses_of(host: str) -> set[str]:
    """The IP addresses a bound host names (itself when it is one)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return {host}
    return {host} | {str(info[4][0]) for info in found}


@dataclass(frozen=True)
class Caller:
    """The account a calling AE title is bound to."""

    ae_title: str
    account_id: int
    person: bytes


def query_of(identifier: Dataset) -> Query:
    """The C-FIND identifier as a query.py query: each key with a value is matched
    (a list of UIDs, backslash-separated in DICOM, is a comma list there; a range, a
    wildcard are as in QIDO); every key is returned. QueryError names a bad key."""
    keys = []
    for element in identifier:
        if element.tag in NOT_QUERIED or element.VR == "SQ":
            continue
        value = element.value
        if value is None or value == "":
            text = ""
        elif element.VM > 1:
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        keys.append((f"{int(element.tag):08X}", text))
    query = parse(keys)
    wanted = {t: w for t, w in query.matches.items() if w not in ("", "*")}
    return dataclasses.replace(query, matches=wanted, limit=10**9)


def _patients(studies: list[Record]) -> list[Record]:
    """One record per patient (Patient ID) of the study records, with the Patient
    module's attributes and the counts PS3.4 C.6.1.1.2 derives."""
    grouped: dict[str, list[Record]] = {}
    for record, members in studies:
        patient = str(record.get("00100020", {}).get("Value", [""])[0])
        grouped.setdefault(patient, []).append((record, members))
    out = []
    for found in grouped.values():
        first = found[0][0]
        record = {t: e for t, e in first.items() if t in PATIENT_ATTRIBUTES}
        members = [i for _, m in found for i in m]
        record["00201200"] = {"vr": "IS", "Value": [len(found)]}
        record["00201202"] = {"vr": "IS", "Value": [len({(i.study, i.series) for i in members})]}
        record["00201204"] = {"vr": "IS", "Value": [len(members)]}
        out.append((record, members))
    return out


def found_records(instances: list[Instance], level: str, query: Query) -> list[Record]:
    """The records at ``level`` (PATIENT, STUDY, SERIES, IMAGE) that match ``query``:
    made and matched as QIDO-RS makes and matches them (service.py, query.py)."""
    wanted = LEVELS[level]
    made = records_of(instances, "study" if wanted == "patient" else wanted, "", _no_url)
    if wanted == "patient":
        made = _patients(made)
    return select(at_level(query, wanted), made, lambda r: r[0])


def _no_url(*parts: str) -> str:
    return ""


def answer_of(record: dict[str, Any], identifier: Dataset, level: str, ae_title: str) -> Dataset:
    """A C-FIND match: the keys the identifier asks for, with the record's values (empty
    where it has none: PS3.4 C.4.1.1.3.2), the level and where to retrieve it."""
    ds = Dataset()
    found = record.get("00080005")
    if found and found.get("Value"):
        ds.SpecificCharacterSet = found["Value"]
    for element in identifier:
        if element.tag in NOT_QUERIED:
            continue
        tag = f"{int(element.tag):08X}"
        value = record.get(tag)
        if value and "Value" in value and element.VR != "SQ":
            try:
                ds[element.tag] = Dataset.from_json({tag: value})[element.tag]
                continue
            except (ValueError, TypeError, KeyError):
                pass  # a value pydicom cannot rebuild: returned empty
        ds.add(DataElement(element.tag, element.VR, [] if element.VR == "SQ" else None))
    ds.QueryRetrieveLevel = level
    ds.RetrieveAETitle = ae_title
    return ds


def chosen(instances: list[Instance], identifier: Dataset) -> list[Instance]:
    """The instances a C-MOVE or C-GET names (PS3.4 C.4.2.2.1: the unique keys of its
    level and of the levels above it; a list of UIDs takes each), in series and
    instance order. QueryError if the level's unique key is missing."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip()
    if level not in UNIQUE_KEYS:
        raise QueryError(f"QueryRetrieveLevel {level!r}: PATIENT, STUDY, SERIES or IMAGE")
    keys = query_of(identifier).matches
    needed = UNIQUE_KEYS[level]
    if needed not in keys:
        raise QueryError(f"{level} level: the identifier needs its unique key ({needed})")
    unique = {t: w for t, w in keys.items() if t in UNIQUE_KEYS.values()}
    found = [i for i in instances if all(matches(i.meta, t, w) for t, w in unique.items())]

    def order(i: Instance) -> tuple[str, float, str]:
        number = i.meta.get("00200013", {}).get("Value", [0])[0]
        try:
            return (i.series, float(number or 0), i.sop)
        except (TypeError, ValueError):
            return (i.series, 0.0, i.sop)

    return sorted(found, key=order)


class QueryRetrieve:
    """The Q/R SCP's handlers, for the listener's AE (pynetdicom's threads), over the
    node's application running on ``loop``."""

    def __init__(self, app: web.Application, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.ae_title = app[CONFIG].dicom_ae_title
        self.listings: Listings[Catalogue] = Listings()

    # ------------------------------------------------------------------ the listener

    def add_contexts(self, ae: AE) -> None:
        """The FIND, MOVE and GET contexts of both information models; the storage
        classes in the SCP role are asked by the workstation for C-GET (the listener's
        storage contexts accept the role: ``scp_role``)."""
        for sop_class in (*FIND, *MOVE, *GET):
            ae.add_supported_context(sop_class, QUERY_SYNTAXES)

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_C_GET, self.on_get),
        ]

    def ae_titles(self) -> list[str]:
        """The AE titles bound to accounts (admitted as calling AE titles even when
        [dicom] calling_ae_titles restricts who may call)."""
        return self._on_loop(BindingStore(self.app[STORE].db).ae_titles())

    def store_back(self, ae_title: str, address: str, data: bytes) -> Dataset | int | None:
        """A C-STORE that is a reader's workstation storing back into a case (the
        reader's images), answered here with its status; None for any other C-STORE,
        which the listener takes into the intake (a sender's modality). Which is which:
        a calling AE title bound to an account is a reader's workstation, and whatever
        it stores goes into a case or is refused, never into the intake; an unbound one
        storing an instance of a study this node holds as a case's copy (pseudonymised
        UIDs only a reader has) is refused too, not taken as a new study."""
        calling = ae_title.strip()
        bound = self._on_loop(BindingStore(self.app[STORE].db).binding(calling))
        if bound is None:
            study = study_of(data)  # of any SOP class: an image of the case's study too
            if not study or not self._on_loop(
                case_holding_study(ChainMapProxy([self.app]), self.listings, study)
            ):
                return None
            log("dicom store back refused", calling_ae=calling, reason="unbound AE title")
            return status_answer(NOT_AUTHORIZED, COMMENTS["store unbound"])
        caller = self._on_loop(self._caller(calling, address))
        if caller is None:  # bound, but called from another host than its workstation's
            log("dicom store back refused", calling_ae=calling, reason="another host")
            return status_answer(NOT_AUTHORIZED, COMMENTS["unbound"])
        via = f"c-store {calling} account {caller.account_id}"
        try:
            self._on_loop(
                attach_instance(
                    ChainMapProxy([self.app]), self.listings, caller.person, data, via,
                    self.app[CLOCK].now_ms(),
                )
            )  # fmt: skip
        except Refusal as refusal:
            log("dicom store back refused", calling_ae=calling, status=f"{refusal.status:04X}",
                reason=refusal.key)  # fmt: skip
            return status_answer(refusal.status, COMMENTS.get(refusal.key, refusal.key))
        log("dicom store back", calling_ae=calling)
        return 0x0000

    # ------------------------------------------------------------------ on the loop

    def _on_loop(self, work: Awaitable[T]) -> T:
        async def run() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(LOOP_TIMEOUT_S)

    async def _caller(self, ae_title: str, address: str) -> Caller | None:
        """The account of a calling AE title, if it calls from the host it was bound
        with: an AE title is only a name any program can claim, so a C-GET or a C-FIND
        from elsewhere gets nothing (as for an unbound title)."""
        db = self.app[STORE].db
        binding = await BindingStore(db).binding(ae_title)
        if binding is None or address not in await _addresses_of(binding.host):
            return None
        account = await AccountStore(db).account_by_id(binding.account_id)
        if account is None or account.person_key is None:
            return None
        return Caller(ae_title, account.id, account.person_key)

    async def _instances(self, caller: Caller) -> list[Instance]:
        config = ChainMapProxy([self.app])
        now = self.app[CLOCK].now_ms()
        return await visible_instances(config, self.listings, caller.person, now, None)

    async def _audit(
        self, caller: Caller, instances: list[Instance], action: str, detail: str
    ) -> None:
        audit = self.app[CASES].audit
        now = self.app[CLOCK].now_ms()
        for case_id in dict.fromkeys(i.case_id for i in instances):
            count = sum(1 for i in instances if i.case_id == case_id)
            await audit.append(
                actor=caller.person, case_id=case_id, action=action,
                detail=detail.format(count=count), now=now,
            )  # fmt: skip

    def _who(self, event: Any) -> tuple[str, Caller | None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        address = str(event.assoc.requestor.address)
        return calling, self._on_loop(self._caller(calling, address))

    # ------------------------------------------------------------------ C-FIND

    def on_find(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """PS3.4 C.4.1.3.1: a pending answer per match, then success (pynetdicom)."""
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", "")).strip()
        calling, caller = self._who(event)
        if caller is None:
            log("dicom query refused", calling_ae=calling, reason="AE title bound to no account")
            return
        if level not in LEVELS:
            yield (
                status_answer(UNABLE_TO_PROCESS, f"QueryRetrieveLevel {level!r}: not a level"),
                None,
            )
            return
        try:
            query = query_of(identifier)
        except QueryError as exc:
            yield status_answer(UNABLE_TO_PROCESS, str(exc)), None
            return
        instances = self._on_loop(self._instances(caller))
        found = found_records(instances, level, query)
        touched = [i for _, members in found for i in members]
        detail = f"C-FIND {level} by {calling}: {{count}} instances matched"
        self._on_loop(self._audit(caller, touched, "dicom query", detail))
        log("dicom query", calling_ae=calling, query_level=level, matches=len(found))
        for record, _ in found:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, answer_of(record, identifier, level, self.ae_title)

    # ------------------------------------------------------------------ C-MOVE, C-GET

    def _retrieval(self, event: Any) -> tuple[str, Caller | None, list[Instance] | Dataset | int]:
        """Who asks, and the instances named (or the refusal to answer)."""
        calling, caller = self._who(event)
        if caller is None:
            log("dicom retrieve refused", calling_ae=calling, reason="AE title bound to no account")
            return calling, None, status_answer(UNABLE_TO_PROCESS, COMMENTS["unbound"])
        try:
            named = chosen(self._on_loop(self._instances(caller)), event.identifier)
        except QueryError as exc:
            return calling, caller, status_answer(IDENTIFIER_DOES_NOT_MATCH, str(exc))
        return calling, caller, named

    def on_move(self, event: Any) -> Iterator[Any]:
        """PS3.4 C.4.2.3.1: the destination (a workstation bound to the caller's own
        account, else 0xA801), the number of sub-operations, then each instance."""
        calling, caller, named = self._retrieval(event)
        to = str(event.move_destination).strip()
        binding = self._on_loop(BindingStore(self.app[STORE].db).binding(to))
        refusal = ""
        if caller is None:
            refusal = COMMENTS["unbound"]
        elif binding is None or binding.account_id != caller.account_id:
            refusal = COMMENTS["destination"]
        else:
            try:
                allowed(binding.host, binding.port, self.app[CONFIG].dicom_send_networks)
            except ExportError:
                refusal = COMMENTS["outside"]
        if refusal or binding is None or caller is None:
            log("dicom move refused", calling_ae=calling, reason=refusal or "no destination")
            _comment_the_a801(event.assoc, refusal)
            yield None, None
            return
        if not isinstance(named, list):  # an identifier the node cannot answer
            yield binding.host, binding.port
            yield 1
            yield named, None
            return
        plans = plan_contexts((i.sop_class, i.syntax) for i in named)
        router = Associations(self.ae_title, binding.host, binding.port, to, plans)
        first = {
            "contexts": [build_context(c, list(s)) for c, s in (plans[0] if plans else [])],
            "evt_handlers": [(evt.EVT_ACCEPTED, router.established)],
        }
        yield binding.host, binding.port, first
        yield len(named)
        try:
            yield from self._sub_operations(
                event, caller, router.order(named), router.accepted, f"C-MOVE to {to}"
            )
        finally:
            router.release()

    def on_get(self, event: Any) -> Iterator[Any]:
        """PS3.4 C.4.3.3.1: the number of sub-operations, then each instance, sent by
        C-STORE on the caller's own association (the storage contexts it offered in the
        SCP role)."""
        _, caller, named = self._retrieval(event)
        if caller is None or not isinstance(named, list):
            yield 1
            yield named, None
            return
        yield len(named)

        def accepted(sop_class: str) -> set[str]:
            return {
                str(c.transfer_syntax[0])
                for c in event.assoc.accepted_contexts
                if c.abstract_syntax == sop_class and c.as_scu
            }

        yield from self._sub_operations(event, caller, named, accepted, "C-GET")

    def _sub_operations(
        self,
        event: Any,
        caller: Caller,
        named: list[Instance],
        accepted: Callable[[str], set[str] | None],
        what: str,
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Each instance as it can go (stored syntax, else decompressed: export.py),
        pending; pynetdicom sends it and counts completed, failed and warning
        sub-operations (a failed one is in the Failed SOP Instance UID List of the final
        answer); the audit and the log say what was sent and why any was not."""
        sent: list[Instance] = []
        decompressed = 0
        failures: dict[str, int] = {}
        for instance in named:
            if event.is_cancelled:
                yield CANCEL, None
                break
            syntaxes = accepted(instance.sop_class) or set()
            reason = "" if syntaxes else f"no context accepted for {instance.sop_class}"
            if not reason:
                try:
                    ds, outcome = prepared(instance.path, syntaxes)
                except Exception as exc:  # no decoder, damaged file
                    reason = f"not decoded ({type(exc).__name__})"
            if reason:  # this sub-operation fails: a data set pynetdicom cannot send
                failures[reason] = failures.get(reason, 0) + 1
                bad = Dataset()
                bad.SOPInstanceUID = instance.sop
                yield PENDING, bad
                continue
            decompressed += outcome == "decompressed"
            sent.append(instance)
            yield PENDING, ds
        detail = f"{what} by {caller.ae_title}: {{count}} instances ({decompressed} decompressed)"
        if sent:
            self._on_loop(self._audit(caller, sent, "dicom retrieve", detail))
        if failures:
            why = "; ".join(f"{n}: {reason}" for reason, n in sorted(failures.items()))
            detail = f"{what} by {caller.ae_title}: {{count}} not sent ({why})"
            unsent = [i for i in named if i not in sent]
            self._on_loop(self._audit(caller, unsent, "dicom retrieve failed", detail))
        log("dicom retrieve", calling_ae=caller.ae_title, instances=len(sent),
            failed=sum(failures.values()), reasons=sorted(failures))  # fmt: skip


class Associations:
    """The associations of one C-MOVE to its destination, one after the other (many
    workstations, and dcmtk's storescp, take one association at a time): pynetdicom
    opens the first, with the contexts of ``plans[0]`` (images/export.py
    ``plan_contexts``: the (SOP class, transfer syntax) pairs the instances hold, and
    Explicit/Implicit VR Little Endian for each class); when a study needs more than the
    128 contexts of one association, the instances are sent plan by plan, and each
    further plan gets its own association when its first instance comes, the one before
    released. pynetdicom sends every sub-operation with the first association's
    ``send_c_store``, which is routed here to the association holding the instance's
    class; pynetdicom counts the answers (completed, failed, warning) as for any."""

    def __init__(
        self, ae_title: str, host: str, port: int, destination: str, plans: list[list[Context]]
    ) -> None:
        self.ae_title, self.host, self.port, self.destination = ae_title, host, port, destination
        self.plans = plans
        self.plan_of = {c: n for n, plan in enumerate(plans) for c, _ in plan}
        self.opened: dict[int, Any] = {}  # plan number: association (None: refused)
        self.sends: dict[int, Callable[..., Any]] = {}
        self.lock = threading.Lock()

    def established(self, event: Any) -> None:
        """EVT_ACCEPTED of the first association (pynetdicom's): routed from now on."""
        assoc = event.assoc
        self.opened[0] = assoc
        self.sends[0] = assoc.send_c_store
        assoc.send_c_store = self._send

    def _association(self, sop_class: str) -> Any:
        number = self.plan_of.get(sop_class)
        if number is None:
            return None
        with self.lock:
            if number not in self.opened:
                self.release(everything=True)  # the one before, first
                self.opened[number] = self._open(number)
            return self.opened[number]

    def _open(self, number: int) -> Any:
        ae = AE(ae_title=self.ae_title)
        for sop_class, syntaxes in self.plans[number]:
            ae.add_requested_context(sop_class, list(syntaxes))
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate(self.host, self.port, ae_title=self.destination)
        if not assoc.is_established:
            log("dicom move association refused", destination=self.destination, plan=number)
            return None
        self.sends[number] = assoc.send_c_store
        return assoc

    def accepted(self, sop_class: str) -> set[str]:
        """The transfer syntaxes the destination accepted for ``sop_class`` (none: its
        sub-operation fails, and is counted so)."""
        assoc = self._association(sop_class)
        if assoc is None or not assoc.is_established:
            return set()
        return {
            str(c.transfer_syntax[0])
            for c in assoc.accepted_contexts
            if c.abstract_syntax == sop_class
        }

    def _send(self, dataset: Dataset, *args: Any, **kwargs: Any) -> Any:
        number = self.plan_of.get(str(dataset.get("SOPClassUID", "")))
        assoc = self.opened.get(number) if number is not None else None
        if number is None or assoc is None or not assoc.is_established:
            raise ValueError("no association with a context for this SOP class")
        return self.sends[number](dataset, *args, **kwargs)

    def order(self, named: list[Instance]) -> list[Instance]:
        """The instances plan by plan (in their order within each)."""
        return sorted(named, key=lambda i: self.plan_of.get(i.sop_class, 0))

    def release(self, *, everything: bool = False) -> None:
        """The associations opened here (pynetdicom releases the first at the end), or
        ``everything`` open (the first too, before the next is opened)."""
        for number, assoc in self.opened.items():
            if (number or everything) and assoc is not None and assoc.is_established:
                assoc.release()


def _comment_the_a801(assoc: Any, comment: str) -> None:
    """pynetdicom answers an unknown move destination (0xA801) itself, without an Error
    Comment: the next C-MOVE answer on ``assoc`` gets ``comment``."""
    dimse = assoc.dimse
    send = dimse.send_msg

    def send_msg(message: Any, context_id: int) -> None:
        dimse.send_msg = send
        if getattr(message, "Status", None) == MOVE_DESTINATION_UNKNOWN:
            message.ErrorComment = comment[:64]
        send(message, context_id)

    dimse.send_msg = send_msg
