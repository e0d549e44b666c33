"""What counts as an instance of the reader's (cases/reader_images.py), on real files:
the SOP classes a reader makes are taken byte for byte, anything else is refused with
the DIMSE status a STOW-RS FailureReason or a C-STORE answer carries."""

from __future__ import annotations

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from tests.harness.studies import part10, reader_instance
from tsfnode.cases.reader_images import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    SOP_CLASS_NOT_SUPPORTED,
    Refusal,
    parse_instance,
)

KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def key_object(study: str = "2.25.4242") -> Dataset:
    source = Dataset()
    source.StudyInstanceUID = study
    return reader_instance(KOS, "KO", source)


def test_a_key_object_is_taken_byte_for_byte() -> None:
    data = part10(key_object())
    found = parse_instance(data)
    assert (found.sop_class, found.study_uid) == (KOS, "2.25.4242")
    assert found.data == data


def test_a_file_meta_sent_without_its_preamble_is_kept_as_a_part10_file() -> None:
    """dicomweb-client sends the file meta group without the 128-byte preamble and
    "DICM": the node adds them, and keeps every other byte as it came."""
    data = part10(key_object())
    found = parse_instance(data[132:])
    assert found.data == data


@pytest.mark.parametrize(
    "data", [b"%PDF-1.4 not DICOM", b"", bytes(1000), b"\x08\x00\x16\x00UI\x04\x00oops"]
)
def test_bytes_that_are_not_dicom_are_refused_as_such(data: bytes) -> None:
    with pytest.raises(Refusal) as refused:
        parse_instance(data)
    assert refused.value.status == CANNOT_UNDERSTAND
    assert refused.value.key == "reader_image_not_dicom"


def test_an_image_of_the_study_is_not_one_a_reader_makes() -> None:
    with open(get_testdata_file("CT_small.dcm"), "rb") as f:  # a real CT slice
        data = f.read()
    with pytest.raises(Refusal) as refused:
        parse_instance(data)
    assert refused.value.status == SOP_CLASS_NOT_SUPPORTED
    assert refused.value.values == {"sop_class": "1.2.840.10008.5.1.4.1.1.2"}


def test_an_instance_without_a_valid_study_uid_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        parse_instance(part10(key_object(study="")))
    assert refused.value.status == DOES_NOT_MATCH
    assert refused.value.key == "reader_image_no_study"
