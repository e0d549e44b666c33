"""Photos of films (JPEG, PNG) as DICOM Secondary Capture, Conversion Type DF.

A baseline JPEG is wrapped as it is (JPEG Baseline transfer syntax: no re-encoding, no
further loss) with Lossy Image Compression set. A photo that cannot be wrapped as is
(progressive or CMYK JPEG, rotated by its EXIF orientation, PNG) is decoded once and
stored uncompressed, so nothing more is lost; a JPEG source stays flagged lossy.
"""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from tsfnode.i18n import N_
from tsfnode.intake.anonymize import Patient

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MAX_PIXELS = 100_000_000  # 10,000 x 10,000: a phone photo is 12-50 Mpx
EXIF_ORIENTATION = 0x0112


class NotAnImage(ValueError):
    """The file is not a JPEG or PNG image we can read: ``key`` (with ``values``) names
    the catalogue text that says why."""

    def __init__(self, reason: str, key: str, **values: object) -> None:
        super().__init__(reason)
        self.key = key
        self.values = values


def photo_to_dicom(
    data: bytes,
    *,
    patient: Patient,
    study_uid: str,
    series_uid: str,
    instance_number: int,
    modality: str = "OT",
    now: dt.datetime | None = None,
) -> Dataset:
    try:
        image = Image.open(io.BytesIO(data))
        image.size  # noqa: B018 - reading the header is what checks it
    except (UnidentifiedImageError, OSError) as exc:
        raise NotAnImage("not a JPEG or PNG image", N_("intake_not_a_photo")) from exc
    if image.format not in ("JPEG", "PNG"):
        raise NotAnImage(
            f"{image.format} images are not taken; send JPEG or PNG",
            N_("intake_photo_format"),
            format=str(image.format),
        )
    width, height = image.size
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise NotAnImage(
            f"absurd image size {width} x {height}",
            N_("intake_photo_size"),
            width=width,
            height=height,
        )
    lossy_source = image.format == "JPEG"
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    wrap = (
        image.format == "JPEG"
        and image.mode in ("L", "RGB")
        and not image.info.get("progressive")
        and not image.info.get("progression")
        and orientation == 1
    )
    ds = Dataset()
    now = now or dt.datetime.now(dt.UTC)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid(prefix=None)  # 2.25 and a random number: node-made
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = f"TSF^{patient.pseudonym}"
    ds.PatientID = patient.pseudonym
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.Laterality = ""
    ds.ConversionType = "DF"
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.DateOfSecondaryCapture = now.strftime("%Y%m%d")
    ds.TimeOfSecondaryCapture = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "tsfnode: made from a photo, with no patient attribute"
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    ds.BurnedInAnnotation = "YES"  # a film's label may show: the sender confirms or masks
    if wrap:
        samples = 1 if image.mode == "L" else 3
        ds.SamplesPerPixel = samples
        ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "YBR_FULL_422"
        pixel = encapsulate([data])
        syntax = JPEGBaseline8Bit
        ratio = width * height * samples / len(data)
    else:
        upright = ImageOps.exif_transpose(image)
        decoded = upright.convert("L" if upright.mode in ("L", "I;16", "1") else "RGB")
        samples = 1 if decoded.mode == "L" else 3
        ds.SamplesPerPixel = samples
        ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
        pixel = decoded.tobytes()
        width, height = decoded.size
        syntax = ExplicitVRLittleEndian
        ratio = 0.0
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixel
    if lossy_source:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        if ratio:
            ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
    else:
        ds.LossyImageCompression = "00"
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    if syntax == JPEGBaseline8Bit:
        ds["PixelData"].VR = "OB"
    return ds
