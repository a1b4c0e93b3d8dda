"""orthanc_fn_helpers: dates, waiting, and generated test DICOM data for orthanc_fn.

Date and time helpers need only the standard library. The DICOM generators need pydicom and
numpy, imported inside the functions that use them; without them those functions raise an
ImportError naming the missing package.

>>> to_dicom_date(datetime.date(2026, 11, 30))
'20261130'
>>> from_dicom_time("101010.5")
datetime.time(10, 10, 10, 500000)

Copyright (c) 2026 the orthanc_fn authors. MIT License: use, copy, modify and distribute
freely, keeping this notice; no warranty (the full text is in the project's LICENSE file).
"""
from __future__ import annotations

import datetime
import io
import os
import random
import sys
import time

__all__ = [
    "to_dicom_date", "from_dicom_date", "to_dicom_time", "from_dicom_time",
    "from_orthanc_datetime", "wait_until", "get_random_dicom_date",
    "generate_test_dicom_file", "generate_test_study",
]


def _core():
    """The orthanc_fn module beside this file, imported on first use by a helper that needs it.

    Installed, it is the top-level ``orthanc_fn``; vendored with this file inside a package,
    it is that package's copy (``mypkg.orthanc_fn``): one module, one pool, one ``NotFound``.
    """
    if __package__:
        from . import orthanc_fn
    else:
        import orthanc_fn
    return orthanc_fn


def to_dicom_date(date):
    """Format a ``date`` (or ``datetime``) as DICOM ``YYYYMMDD``.

    >>> to_dicom_date(datetime.datetime(2026, 1, 2, 3, 4))
    '20260102'
    """
    if not isinstance(date, datetime.date):
        raise TypeError(f"expected a date or datetime, got {date!r}")
    return date.strftime("%Y%m%d")


def from_dicom_date(text):
    """Parse DICOM ``YYYYMMDD`` into a ``date``; None or empty gives None.

    >>> from_dicom_date("20260126")
    datetime.date(2026, 1, 26)
    >>> from_dicom_date("") is None
    True
    >>> from_dicom_date("2026-01")
    Traceback (most recent call last):
    ...
    ValueError: not a DICOM date (YYYYMMDD): '2026-01'
    """
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError
        return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise ValueError(f"not a DICOM date (YYYYMMDD): {value!r}") from None


def to_dicom_time(value):
    """Format a ``time`` or ``datetime`` as DICOM ``HHMMSS`` (``.ffffff`` when it has them).

    >>> to_dicom_time(datetime.time(7, 8, 9))
    '070809'
    >>> to_dicom_time(datetime.datetime(2026, 1, 1, 7, 8, 9, 120000))
    '070809.120000'
    """
    if not isinstance(value, (datetime.time, datetime.datetime)):
        raise TypeError(f"expected a time or datetime, got {value!r}")
    text = value.strftime("%H%M%S")
    return text + f".{value.microsecond:06d}" if value.microsecond else text


def from_dicom_time(text):
    """Parse DICOM ``HH``, ``HHMM``, ``HHMMSS`` or ``HHMMSS.ffffff`` into a ``time``.

    None or empty gives None; anything else raises ValueError naming the value.

    >>> from_dicom_time("0930")
    datetime.time(9, 30)
    """
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()
    main, _, fraction = value.partition(".")
    try:
        if len(main) not in (2, 4, 6) or not main.isdigit() or (fraction and (
                not fraction.isdigit() or len(fraction) > 6 or len(main) != 6)):
            raise ValueError
        hour, minute, second = int(main[:2]), int(main[2:4] or 0), int(main[4:6] or 0)
        return datetime.time(hour, minute, second, int(fraction.ljust(6, "0")) if fraction else 0)
    except ValueError:
        raise ValueError(f"not a DICOM time (HHMMSS.ffffff): {value!r}") from None


def from_orthanc_datetime(text):
    """Parse Orthanc's ``20260126T101010`` (optionally ``.ffffff``) into a ``datetime``.

    Orthanc writes it in ``LastUpdate``, ``ReceptionDate`` and the jobs' times.

    >>> from_orthanc_datetime("20260126T101010")
    datetime.datetime(2026, 1, 26, 10, 10, 10)
    """
    value = str(text).strip()
    date_part, _, time_part = value.partition("T")
    try:
        date, time_of_day = from_dicom_date(date_part), from_dicom_time(time_part)
    except ValueError:
        date = None
    if date is None or time_of_day is None:
        raise ValueError(f"not an Orthanc date-time (YYYYMMDDTHHMMSS): {value!r}")
    return datetime.datetime.combine(date, time_of_day)


def wait_until(predicate, timeout, polling_interval=0.1):
    """Call ``predicate()`` until it is true or ``timeout`` seconds pass; tell whether it was.

    The predicate is called at least once, and once more at the deadline.

    >>> wait_until(lambda: True, timeout=1)
    True
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(polling_interval, remaining))


def get_random_dicom_date(date_from, date_to=None):
    """Return a random DICOM date between ``date_from`` and ``date_to`` (today), inclusive.

    Bounds are dates or ``'YYYY-MM-DD'`` / ``'YYYYMMDD'`` strings, read by the core's one date
    rule (a wrong one raises ``OrthancValueError``, a ValueError); today is read at each call.

    >>> get_random_dicom_date(datetime.date(2020, 5, 5), "2020-05-05")
    '20200505'
    """
    as_date = _core()._as_date
    first = as_date(date_from)
    last = datetime.date.today() if date_to is None else as_date(date_to)
    if first > last:
        raise ValueError(f"get_random_dicom_date: {date_from!r} is after {last!r}")
    return to_dicom_date(first + datetime.timedelta(days=random.randint(0, (last - first).days)))


# ---- DICOM generation (pydicom + numpy) ----

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "OT": _SECONDARY_CAPTURE,
}

# A few attributes each image module expects, so that viewers and tools take the files.
_CROSS_SECTION = {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "PixelSpacing": [0.5, 0.5],
                  "SliceThickness": 1, "PatientPosition": "HFS"}
_MODALITY_TAGS = {
    "CT": dict(_CROSS_SECTION, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"], KVP=120,
               RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU"),
    "MR": dict(_CROSS_SECTION, ImageType=["ORIGINAL", "PRIMARY", "M"], ScanningSequence="SE",
               SequenceVariant="NONE", ScanOptions="", MRAcquisitionType="2D", EchoTime=10,
               RepetitionTime=500, MagneticFieldStrength=1.5),
    "CR": {"BodyPartExamined": "CHEST", "ViewPosition": "PA", "PatientOrientation": ["L", "F"]},
    "DX": {"ImageType": ["ORIGINAL", "PRIMARY"], "PresentationIntentType": "FOR PRESENTATION",
           "BodyPartExamined": "CHEST", "ViewPosition": "PA", "PatientOrientation": ["L", "F"],
           "ImagerPixelSpacing": [0.1, 0.1], "PixelIntensityRelationship": "LIN",
           "PixelIntensityRelationshipSign": 1, "RescaleIntercept": 0, "RescaleSlope": 1,
           "RescaleType": "US", "BurnedInAnnotation": "NO"},
    "OT": {"ConversionType": "WSD"},
}


def _need(module, helper):
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(f"orthanc_fn_helpers.{helper} needs {module}: "
                          f"`pip install {module}` (or `pip install orthanc_fn[helpers]`)") from exc


def generate_test_dicom_file(width=128, height=128, tags=None, *, modality=None, bits=16,
                             seed=None):
    """Return the bytes of a valid DICOM file with a ``width`` x ``height`` image.

    ``tags`` maps DICOM keywords to values (``{"PatientName": "DOE^JOHN"}``) and wins over
    the defaults; UIDs not given are generated. ``modality`` (CT, MR, CR, DX or OT; default
    ``tags["Modality"]`` or CT) picks the SOP class and the attributes its module expects;
    another modality is stored as Secondary Capture. ``bits`` (2 to 16) is BitsStored of the
    random monochrome pixels, drawn from ``seed``. Needs pydicom and numpy.

    Raises:
        ValueError: a key of ``tags`` is not a DICOM keyword, or ``bits`` is out of range.
    """
    pydicom = _need("pydicom", "generate_test_dicom_file")
    np = _need("numpy", "generate_test_dicom_file")
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    tags = dict(tags or {})
    unknown = sorted(key for key in tags if tag_for_keyword(key) is None)
    if unknown:
        raise ValueError(f"not DICOM keywords: {', '.join(map(repr, unknown))}")
    if not 2 <= int(bits) <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits!r}")
    modality = str(modality or tags.get("Modality") or "CT").upper()
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASSES.get(modality, _SECONDARY_CAPTURE)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = "TEST^PATIENT"
    ds.PatientID = "TEST-" + ds.StudyInstanceUID[-8:]
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = to_dicom_date(datetime.date.today())
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyDescription = "orthanc_fn test study"
    ds.SeriesDescription = "orthanc_fn test series"
    ds.AccessionNumber = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = modality
    ds.Manufacturer = "orthanc_fn"
    ds.ReferringPhysicianName = ""
    for keyword, value in _MODALITY_TAGS.get(modality, _MODALITY_TAGS["OT"]).items():
        setattr(ds, keyword, value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(height)
    ds.Columns = int(width)
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = int(bits)
    ds.HighBit = int(bits) - 1
    ds.PixelRepresentation = 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if "ImageOrientationPatient" in ds and "ImagePositionPatient" not in ds:
        ds.ImagePositionPatient = [0, 0, int(ds.InstanceNumber or 1)]
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 2 ** int(bits), size=(int(height), int(width)),
                          dtype=np.uint16 if bits > 8 else np.uint8)
    data = pixels.tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)  # values have an even length
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    else:  # pydicom 2.x (Debian 12 ships 2.3)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(buffer, ds, write_like_original=False)
    return buffer.getvalue()


def generate_test_study(series=2, instances=3, tags=None, *, width=32, height=32,
                        modality=None):
    """Return ``series`` x ``instances`` DICOM files (bytes) of one study and one patient.

    ``tags`` apply to every file; each series gets its own SeriesInstanceUID, number and
    frame of reference, each instance its number. Needs pydicom and numpy.
    """
    _need("pydicom", "generate_test_study")
    from pydicom.uid import generate_uid

    common = {"StudyInstanceUID": generate_uid(), "PatientID": "TEST-" + generate_uid()[-10:]}
    common.update(tags or {})
    files = []
    for series_number in range(1, series + 1):
        series_tags = {"SeriesInstanceUID": generate_uid(), "SeriesNumber": series_number,
                       "FrameOfReferenceUID": generate_uid()}
        series_tags.update(common)
        for instance_number in range(1, instances + 1):
            files.append(generate_test_dicom_file(
                width, height, dict(series_tags, InstanceNumber=instance_number),
                modality=modality))
    return files
