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
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple

if TYPE_CHECKING:  # names for the type checker only, never imported at run time
    import numpy
    import pydicom

    import orthanc_fn

__all__ = [
    "to_dicom_date", "from_dicom_date", "to_dicom_time", "from_dicom_time",
    "from_orthanc_datetime", "wait_until", "get_random_dicom_date",
    "generate_test_dicom_file", "generate_test_study",
    # DICOM data as researchers use it
    "from_dicom_date_and_time", "get_dataset", "iter_datasets", "upload_dataset", "get_pixels",
    "Volume", "get_volume", "download_nifti",
]


# ==== The core, dates, times and waiting (standard library only) ====

def _core():
    """The orthanc_fn module beside this file, imported on first use by a helper that needs it.

    Installed, it is the top-level ``orthanc_fn``; vendored with this file inside a package,
    it is that package's copy (``mypkg.orthanc_fn``): one module, one pool, one ``NotFound``.
    """
    import importlib
    return importlib.import_module(".orthanc_fn", __package__) if __package__ \
        else importlib.import_module("orthanc_fn")


def to_dicom_date(date: datetime.date) -> str:
    """Format a ``date`` (or ``datetime``) as DICOM ``YYYYMMDD``.

    >>> to_dicom_date(datetime.datetime(2026, 1, 2, 3, 4))
    '20260102'
    """
    if not isinstance(date, datetime.date):
        raise TypeError(f"expected a date or datetime, got {date!r}")
    return date.strftime("%Y%m%d")


def from_dicom_date(text: str | None) -> datetime.date | None:
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


def to_dicom_time(value: datetime.time | datetime.datetime) -> str:
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


def from_dicom_time(text: str | None) -> datetime.time | None:
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


def from_orthanc_datetime(text: str) -> datetime.datetime:
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


def from_dicom_date_and_time(date: str | None, time_of_day: str | None) -> datetime.datetime:
    """Combine a DICOM date (DA) and time (TM) into a ``datetime``, fractions of seconds kept.

    An empty time means midnight; an empty or malformed date raises ValueError naming it.

    >>> from_dicom_date_and_time("20260126", "101010.25")
    datetime.datetime(2026, 1, 26, 10, 10, 10, 250000)
    >>> from_dicom_date_and_time("20260126", "")
    datetime.datetime(2026, 1, 26, 0, 0)
    """
    day = from_dicom_date(date)
    if day is None:
        raise ValueError(f"not a DICOM date (YYYYMMDD): {date!r}")
    return datetime.datetime.combine(day, from_dicom_time(time_of_day) or datetime.time())


def wait_until(predicate: Callable[[], object], timeout: float,
               polling_interval: float = 0.1) -> bool:
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


def get_random_dicom_date(date_from: datetime.date | str,
                          date_to: datetime.date | str | None = None) -> str:
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


# ==== DICOM generation (pydicom + numpy) ====

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
_MODALITY_TAGS: dict[str, dict[str, Any]] = {
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


def generate_test_dicom_file(width: int = 128, height: int = 128,
                             tags: Mapping[str, Any] | None = None, *, modality: str | None = None,
                             bits: int = 16, seed: int | None = None,
                             image: str | numpy.ndarray = "gradient") -> bytes:
    """Return the bytes of a valid DICOM file with a ``width`` x ``height`` image.

    ``tags`` maps DICOM keywords to values (``{"PatientName": "DOE^JOHN"}``) and wins over
    the defaults; UIDs not given are generated, and the PatientID not given is derived from
    the StudyInstanceUID, so files sharing a study UID share a patient. ``modality`` (CT, MR,
    CR, DX or OT; default ``tags["Modality"]`` or CT) picks the SOP class and the attributes
    its module expects; another modality is stored as Secondary Capture. ``bits`` (2 to 16)
    is BitsStored of the monochrome pixels. ``image``: ``"gradient"`` (values rising along
    rows and columns), ``"flat"`` (every pixel at half the range), ``"random"`` (drawn from
    ``seed``), or a numpy array: 2-D of unsigned or signed 8/16-bit integers (its shape and
    type replace ``width``, ``height`` and ``bits``), or rows x columns x 3 of ``uint8`` (RGB).
    Needs pydicom and numpy.

    Raises:
        ValueError: a key of ``tags`` is not a DICOM keyword, ``bits`` is out of range, or
            ``image`` is none of the above.
    """
    _need("pydicom", "generate_test_dicom_file")
    np = _need("numpy", "generate_test_dicom_file")
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    tags = dict(tags or {})
    unknown = sorted(key for key in tags if tag_for_keyword(key) is None)
    if unknown:
        raise ValueError(f"not DICOM keywords: {', '.join(map(repr, unknown))}")
    if not 2 <= int(bits) <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits!r}")
    pixels = _test_image(np, image, int(width), int(height), int(bits), seed)
    modality = str(modality or tags.get("Modality") or "CT").upper()
    ds = Dataset()
    ds.SOPClassUID = _SOP_CLASSES.get(modality, _SECONDARY_CAPTURE)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = "TEST^PATIENT"
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
    rgb = pixels.ndim == 3
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = int(bits) if image is None or isinstance(image, str) else ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if "PatientID" not in tags:  # after the caller's tags: their study UID gives the patient
        import hashlib
        ds.PatientID = "TEST-" + hashlib.sha1(ds.StudyInstanceUID.encode()).hexdigest()[:10]
    if "ImageOrientationPatient" in ds and "ImagePositionPatient" not in ds:
        ds.ImagePositionPatient = [0, 0, int(ds.InstanceNumber or 1)]
    data = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)  # values have an even length
    return _to_bytes(ds)


def _test_image(np, image, width, height, bits, seed):
    """The pixel array ``generate_test_dicom_file`` writes (see its ``image`` option)."""
    dtype = np.uint16 if bits > 8 else np.uint8
    top = 2 ** bits - 1
    if isinstance(image, str) and image == "gradient":
        rows, columns = np.indices((height, width))
        return (((rows + columns) * top) // max(1, height + width - 2)).astype(dtype)
    if isinstance(image, str) and image == "flat":
        return np.full((height, width), 2 ** (bits - 1), dtype=dtype)
    if isinstance(image, str) and image == "random":
        return np.random.default_rng(seed).integers(0, top + 1, size=(height, width),
                                                    dtype=dtype)
    if isinstance(image, np.ndarray):
        if image.ndim == 2 and image.dtype.kind in "iu" and image.dtype.itemsize in (1, 2):
            return image
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
    raise ValueError('image must be "gradient", "flat", "random", a 2-D array of 8- or '
                     f"16-bit integers or a rows x columns x 3 uint8 array, got {image!r:.80}")


def _to_bytes(dataset):
    """Write a dataset as a DICOM file (with its file meta) and return the bytes.

    The dataset is not changed: it is written from a shallow copy with its own file meta,
    made when missing (explicit VR little endian).
    """
    import copy

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset(dataset)  # a new mapping of the same elements
    meta = FileMetaDataset(copy.deepcopy(getattr(dataset, "file_meta", None) or Dataset()))
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    else:  # pydicom 2.x (Debian 12 ships 2.3)
        syntax = meta.TransferSyntaxUID
        ds.is_little_endian = syntax.is_little_endian
        ds.is_implicit_VR = syntax.is_implicit_VR
        pydicom.dcmwrite(buffer, ds, write_like_original=False)
    return buffer.getvalue()


def generate_test_study(series: int = 2, instances: int = 3, tags: Mapping[str, Any] | None = None,
                        *, width: int = 32, height: int = 32,
                        modality: str | None = None) -> list[bytes]:
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


# ==== DICOM data as researchers use it (pydicom + numpy) ====

def get_dataset(conn: orthanc_fn.Connection, instance_id: str) -> pydicom.Dataset:
    """Return the stored DICOM file of an instance as a ``pydicom.Dataset``.

    Orthanc: GET /instances/{id}/file. Needs pydicom.

    See also: ``iter_datasets`` for many, ``get_pixels`` for decoded pixels.
    """
    pydicom = _need("pydicom", "get_dataset")
    return pydicom.dcmread(io.BytesIO(_core().get_file(conn, instance_id)))


def iter_datasets(conn: orthanc_fn.Connection, level: str, orthanc_id: str, *,
                  workers: int = 8) -> Iterator[tuple[str, pydicom.Dataset]]:
    """Yield ``(instance_id, Dataset)`` for every instance of a resource, downloaded in parallel.

    Instances come in Orthanc's order for the resource; at most ``workers`` files are in
    flight or waiting to be yielded, so memory stays bounded whatever the resource's size.
    Closing the generator early cancels the downloads not started. Orthanc: GET
    /{level}/{id}/instances, then GET /instances/{id}/file per instance. Needs pydicom.
    """
    pydicom = _need("pydicom", "iter_datasets")
    for instance_id, data in _iter_files(conn, _instances_of(conn, level, orthanc_id), workers):
        yield instance_id, pydicom.dcmread(io.BytesIO(data))


def _instances_of(conn, level, orthanc_id):
    core = _core()
    if core._level(level) == core.INSTANCES:
        return [str(orthanc_id)]
    return core.get_children_ids(conn, level, orthanc_id, core.INSTANCES)


def _iter_files(conn, instances_ids, workers, fetch=None):
    """Yield ``(id, fetch(conn, id))`` in order, ``workers`` requests at a time over the pool.

    ``fetch`` defaults to ``orthanc_fn.get_file``. Results are yielded in the order of
    ``instances_ids``; no more than ``workers`` are pending at any time.
    """
    import collections
    from concurrent.futures import ThreadPoolExecutor

    fetch = fetch or _core().get_file
    workers = max(1, int(workers))
    pending = collections.deque()
    ids = iter(instances_ids)
    with ThreadPoolExecutor(workers, thread_name_prefix="orthanc_fn-datasets") as pool:
        try:
            for instance_id in ids:
                pending.append((instance_id, pool.submit(fetch, conn, instance_id)))
                if len(pending) >= workers:
                    done_id, future = pending.popleft()
                    yield done_id, future.result()
            while pending:
                done_id, future = pending.popleft()
                yield done_id, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def upload_dataset(conn: orthanc_fn.Connection, dataset: pydicom.Dataset) -> list[str]:
    """Write a pydicom ``Dataset`` as a DICOM file, store it, and return the instance ids.

    The dataset is not changed (a file meta is made for the written copy when it has none:
    explicit VR little endian). Orthanc: POST /instances. Needs pydicom.
    """
    _need("pydicom", "upload_dataset")
    return _core().upload(conn, _to_bytes(dataset))


# Decoding rule, from measurements on Orthanc 1.10.1 and 1.13.0 with pydicom's own test files:
# pydicom decodes the stored file when it has a decoder for its transfer syntax here (nothing
# asked beyond the file); otherwise Orthanc sends the file transcoded to explicit VR little
# endian, which pydicom decodes exactly (same type, every frame), in 1-6 ms for these files.
# Orthanc's /instances/{id}/numpy route (1.10) was measured as the other way and is not used:
# no faster, it converts 16-bit colour wrongly, answers 500 "Not implemented yet" for the
# 15-frame 32-bit RT dose, and on 1.10.1 uses only DCMTK's decoders (JPEG 2000 fails even
# with the GDCM plugin, which transcoding uses). JPEG 2000 needs the GDCM plugin.
_UNCOMPRESSED = "1.2.840.10008.1.2.1"  # explicit VR little endian


def get_pixels(conn: orthanc_fn.Connection, instance_id: str, *, frame: int | None = None,
               rescale: bool = True) -> numpy.ndarray:
    """Return the decoded pixels of an instance as a numpy array.

    Shape: frames x rows x columns (x samples for colour); ``frame`` (from 0) gives that one
    frame, rows x columns (x samples). ``rescale`` applies RescaleSlope and RescaleIntercept
    (per frame for enhanced multi-frame files) to monochrome images: the result is an integer
    array wide enough for the stored range when both are integers, float32 otherwise.
    Compressed transfer syntaxes pydicom cannot decode here are decoded by Orthanc (the rule
    is in the source, above this function). Needs pydicom and numpy.

    Raises:
        OrthancError: neither pydicom nor the server can decode the file (the message names
            the transfer syntax, the packages pydicom lacks and the GDCM plugin).
        OrthancValueError: ``frame`` is out of range.
    """
    np = _need("numpy", "get_pixels")
    _need("pydicom", "get_pixels")
    ds, pixels = _decoded(conn, instance_id, np)
    frames = pixels.shape[0]
    if frame is not None:
        if not -frames <= int(frame) < frames:
            raise _core().OrthancValueError(
                f"get_pixels: instance {instance_id} has {frames} frame(s), no frame {frame}")
        index = int(frame) % frames
        return _rescaled(np, ds, pixels[index:index + 1], rescale, first=index)[0]
    return _rescaled(np, ds, pixels, rescale)


def _decoded(conn, instance_id, np):
    """``(dataset, pixels)`` of an instance, pixels as frames x rows x columns [x samples]."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_core().get_file(conn, instance_id)))
    if "PixelData" not in ds:
        raise _core().OrthancValueError(f"instance {instance_id} has no pixel data "
                                        f"(Modality {ds.get('Modality', '?')})")
    missing = _missing_decoder(ds)
    if missing is not None:
        ds = pydicom.dcmread(io.BytesIO(_transcoded_file(conn, instance_id, missing)))
    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    return ds, pixels.reshape((frames, ds.Rows, ds.Columns) + ((samples,) if samples > 1 else ()))


def _missing_decoder(ds):
    """None when pydicom can decode the dataset's pixels here, else what it lacks (a str)."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        return None
    lacks = f"{syntax.name} ({syntax}): "
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2: try it
        try:
            ds.pixel_array  # noqa: B018
            return None
        except Exception as exc:  # pydicom 2 raises RuntimeError or NotImplementedError
            return lacks + str(exc)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return lacks + "no decoder at all"
    if decoder.is_available:
        return None
    return lacks + ("; ".join(decoder.missing_dependencies) or "no decoder plugin")


def _transcoded_file(conn, instance_id, missing):
    """The instance's file re-encoded by Orthanc as explicit VR little endian.

    Orthanc: see ``orthanc_fn.get_file(..., transcode=)``.
    """
    core = _core()
    try:
        return core.get_file(conn, instance_id, transcode=_UNCOMPRESSED)
    except core.HttpError as exc:
        raise _undecodable(instance_id, missing, exc) from exc


def _undecodable(instance_id, missing, exc):
    return _core().OrthancError(
        f"cannot decode the pixels of instance {instance_id}: pydicom lacks a decoder here "
        f"for {missing}, and the server could not transcode the file (for JPEG 2000 load the "
        f"GDCM plugin, libOrthancGdcm.so): {exc}")


def _rescale_of(ds, index):
    """``(slope, intercept)`` of frame ``index``: per frame, shared, or the dataset's own."""
    item = _functional(ds, index, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else ds
    return float(source.get("RescaleSlope", 1) or 1), float(source.get("RescaleIntercept", 0) or 0)


def _functional(ds, index, sequence):
    """The first item of a functional group for frame ``index`` (per frame, then shared)."""
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        items = ds.get(groups)
        if not items:
            continue
        group = items[index] if groups.startswith("PerFrame") and index < len(items) else items[0]
        found = group.get(sequence)
        if found:
            return found[0]
    return None


def _rescale_type(np, ds, rescales):
    """The numpy type holding the stored range once rescaled: an integer type when it can."""
    if any(slope != int(slope) or intercept != int(intercept) for slope, intercept in rescales):
        return np.dtype(np.float32)
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    ends = [value * slope + intercept for slope, intercept in rescales for value in (low, high)]
    for dtype in (np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= min(ends) and max(ends) <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.float64)


def _rescaled(np, ds, pixels, rescale, first=0):
    """Apply the modality rescale to monochrome frames ``first...`` (``pixels`` untouched)."""
    rescales, dtype = _rescales(np, ds, pixels, rescale, first)
    if rescales is None:
        return pixels
    out = np.empty(pixels.shape, dtype)
    _fill(np, out, pixels, rescales)
    return out


def _rescales(np, ds, pixels, rescale, first=0):
    """``([(slope, intercept)] per frame, result type)``, or ``(None, pixels' type)`` when
    nothing is to be done (no ``rescale``, colour, or slope 1 and intercept 0 throughout)."""
    if not rescale or int(ds.get("SamplesPerPixel") or 1) != 1:
        return None, pixels.dtype
    rescales = [_rescale_of(ds, first + k) for k in range(pixels.shape[0])]
    if all(r == (1.0, 0.0) for r in rescales):
        return None, pixels.dtype
    return rescales, _rescale_type(np, ds, rescales)


def _fill(np, out, pixels, rescales):
    """Write ``pixels`` into ``out``, rescaled frame by frame when ``rescales`` is not None."""
    if rescales is None:
        out[...] = pixels
        return
    for k, (slope, intercept) in enumerate(rescales):
        _rescale_into(np, out[k], pixels[k], slope, intercept)


def _rescale_into(np, out, pixels, slope, intercept):
    if out.dtype.kind == "f":
        np.multiply(pixels, slope, out=out, casting="unsafe")
        out += intercept
    else:
        np.copyto(out, pixels, casting="unsafe")
        if slope != 1:
            out *= int(slope)
        if intercept:
            out += int(intercept)


class Volume(NamedTuple):
    """A series as one 3-D array with its geometry (see ``get_volume``).

    ``array`` is slices x rows x columns (x samples); ``spacing`` is ``(z, y, x)`` in mm, in
    the array's axis order; ``origin`` the patient position (x, y, z, mm, DICOM's LPS axes) of
    voxel ``[0, 0, 0]``; ``direction`` three unit vectors in patient axes, one per array axis
    (slice normal, column direction, row direction), so that voxel ``[k, j, i]`` is at
    ``origin + k*spacing[0]*direction[0] + j*spacing[1]*direction[1] + i*spacing[2]*direction[2]``;
    ``instances_ids`` the instance of each slice, in slice order.
    """
    array: object
    spacing: tuple
    origin: tuple
    direction: tuple
    instances_ids: tuple


_POSITION_TOLERANCE = 0.01  # mm: positions, shifts and spacings equal within this
_ORIENTATION_TOLERANCE = 1e-4  # direction cosines equal within this


def get_volume(conn: orthanc_fn.Connection, series_id: str, *, rescale: bool = True,
               workers: int = 8) -> Volume:
    """Return a series as a ``Volume``: its slices stacked along their normal, with geometry.

    Slices are ordered by ImagePositionPatient projected on the normal of
    ImageOrientationPatient (never by InstanceNumber or file order); the z spacing comes from
    the positions (not SliceThickness); multi-frame files give one slice per frame (their
    positions from the per-frame functional groups, or GridFrameOffsetVector or
    SpacingBetweenSlices). The array is allocated once and filled as the files arrive,
    ``workers`` at a time: memory beyond the array stays at a few slices. ``rescale`` as in
    ``get_pixels``. Orthanc: GET /series/{id}/instances, GET /instances/{id}/file each.
    Needs pydicom and numpy.

    Raises:
        OrthancValueError: the series is not one regular volume (a missing slice, irregular
            spacing, several slices at one position, mixed orientations, sizes or pixel
            spacings, slices shifted in their plane, no geometry); the message says which
            instances and where.
    """
    np = _need("numpy", "get_volume")
    _need("pydicom", "get_volume")
    core = _core()
    ids = _instances_of(conn, core.SERIES, series_id)
    if not ids:
        raise core.OrthancValueError(f"get_volume: series {series_id} has no instances")

    def fetch(conn, instance_id):  # in a worker: download, decode, read the geometry
        ds, pixels = _decoded(conn, instance_id, np)
        return (_frames_geometry(np, ds, instance_id), pixels) + _rescales(np, ds, pixels,
                                                                           rescale)

    array: Any = None  # numpy's, allocated at the first slice
    slices: list[tuple[Any, str]] = []
    filled = 0
    for instance_id, (geometry, pixels, rescales, dtype) in _iter_files(conn, ids, workers,
                                                                          fetch):
        count = len(pixels)
        if array is None:  # allocated once, filled in place: no copy of the slices kept
            array = np.empty((len(ids) * count,) + pixels.shape[1:], dtype)
        elif pixels.shape[1:] != array.shape[1:]:
            raise core.OrthancValueError(
                f"get_volume: series {series_id} mixes image sizes: instance {instance_id} is "
                f"{_size(pixels.shape[1:])}, instance {slices[0][1]} {_size(array.shape[1:])}")
        if np.result_type(array.dtype, dtype) != array.dtype:
            array = array.astype(np.result_type(array.dtype, dtype))  # a slice needing more
        if filled + count > len(array):
            array = np.concatenate([array, np.empty((filled + count - len(array),)
                                                    + array.shape[1:], array.dtype)])
        _fill(np, array[filled:filled + count], pixels, rescales)
        filled += count
        slices.extend((frame, instance_id) for frame in geometry)
    if filled < len(array):
        array = array[:filled].copy()
    order, spacing, origin, direction = _layout(np, series_id, slices)
    _permute(array, order)
    return Volume(array, spacing, origin, direction,
                  tuple(slices[index][1] for index in order))


def _size(shape):
    return "x".join(map(str, shape))


def _frames_geometry(np, ds, instance_id):
    """``[(position, orientation, pixel_spacing, thickness)]``, one per frame, as tuples."""
    core = _core()
    frames = int(ds.get("NumberOfFrames") or 1)
    thickness = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    geometry = []
    for index in range(frames):
        plane = _functional(ds, index, "PlanePositionSequence")
        orient = _functional(ds, index, "PlaneOrientationSequence")
        measures = _functional(ds, index, "PixelMeasuresSequence")
        position = (plane or ds).get("ImagePositionPatient")
        orientation = (orient or ds).get("ImageOrientationPatient")
        spacing = (measures if measures is not None and "PixelSpacing" in measures
                   else ds).get("PixelSpacing")
        if position is None or orientation is None or spacing is None:
            missing = [name for name, value in (("ImagePositionPatient", position),
                                                ("ImageOrientationPatient", orientation),
                                                ("PixelSpacing", spacing)) if value is None]
            raise core.OrthancValueError(
                f"get_volume: instance {instance_id} (frame {index}) has no "
                f"{', '.join(missing)}: it is not a slice of a volume")
        position = np.array(position, float)
        orientation = tuple(float(v) for v in orientation)
        if plane is None and frames > 1:  # one position for the file: frames along the normal
            normal = np.cross(orientation[:3], orientation[3:])
            offsets = ds.get("GridFrameOffsetVector")
            if offsets is not None and len(offsets) == frames:
                position = position + normal * float(offsets[index])
            elif thickness:
                position = position + normal * float(thickness) * index
            else:
                raise core.OrthancValueError(
                    f"get_volume: instance {instance_id} has {frames} frames and no position "
                    "per frame (PerFrameFunctionalGroupsSequence, GridFrameOffsetVector or "
                    "SpacingBetweenSlices)")
        geometry.append((tuple(position), orientation, tuple(float(v) for v in spacing),
                         float(thickness) if thickness else None))
    return geometry


def _layout(np, series_id, slices):
    """``(order, spacing, origin, direction)`` of slices ``[(geometry, instance_id)]``.

    Raises OrthancValueError naming the instances when they are not one regular volume.
    """
    core = _core()

    def fail(why):
        return core.OrthancValueError(f"get_volume: series {series_id} is not one regular "
                                      f"volume: {why}")

    (position0, orientation0, pixel0, thickness0), first = slices[0]
    for (position, orientation, pixel, _), instance_id in slices[1:]:
        if max(abs(a - b) for a, b in zip(orientation, orientation0)) > _ORIENTATION_TOLERANCE:
            raise fail(f"mixed orientations: instance {instance_id} has ImageOrientationPatient "
                       f"{_numbers(orientation)}, instance {first} {_numbers(orientation0)}")
        if max(abs(a - b) for a, b in zip(pixel, pixel0)) > _POSITION_TOLERANCE:
            raise fail(f"mixed pixel spacings: instance {instance_id} has PixelSpacing "
                       f"{_numbers(pixel)}, instance {first} {_numbers(pixel0)}")
    row, column = np.array(orientation0[:3]), np.array(orientation0[3:])
    normal = np.cross(row, column)
    positions = np.array([geometry[0] for geometry, _ in slices])
    distances = positions @ normal
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    in_plane = positions - np.outer(distances, normal)
    shift = np.abs(in_plane - in_plane[order[0]]).max(axis=1)
    if shift.max() > _POSITION_TOLERANCE:
        worst = int(shift.argmax())
        raise fail(f"slices shifted in their plane: instance {slices[worst][1]} is "
                   f"{shift[worst]:.3g} mm off the line of instance {slices[order[0]][1]}")
    steps = np.diff(distances[order])
    for k, step in enumerate(steps):
        if step <= _POSITION_TOLERANCE:
            a, b = slices[order[k]][1], slices[order[k + 1]][1]
            raise fail(f"several slices at one position ({distances[order[k]]:.6g} mm along "
                       f"the normal): instances {a} and {b} (several acquisitions stacked?)")
    if len(steps):
        usual = float(np.median(steps))
        for k, step in enumerate(steps):
            if abs(step - usual) > max(_POSITION_TOLERANCE, 0.01 * usual):
                a, b = slices[order[k]][1], slices[order[k + 1]][1]
                what = (f"a missing slice ({round(step / usual) - 1} missing)"
                        if step > usual and abs(step / usual - round(step / usual)) < 0.05
                        else "irregular spacing")
                raise fail(f"{what}: {step:.6g} mm between instance {a} (at "
                           f"{distances[order[k]]:.6g} mm along the normal) and instance {b}, "
                           f"where slices are {usual:.6g} mm apart")
        z = usual
    else:
        z = thickness0 or 1.0
    direction = tuple(tuple(float(v) for v in axis) for axis in (normal, column, row))
    spacing = (float(z), pixel0[0], pixel0[1])
    return order, spacing, tuple(float(v) for v in positions[order[0]]), direction


def _numbers(values):
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _permute(array, order):
    """Reorder ``array`` in place so that ``new[i] == old[order[i]]`` (one slice of scratch)."""
    done = [False] * len(order)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        scratch = array[start].copy()
        here = start
        while True:
            done[here] = True
            source = order[here]
            if source == start:
                array[here] = scratch
                break
            array[here] = array[source]
            here = source


def download_nifti(conn: orthanc_fn.Connection, level: str, orthanc_id: str,
                   path: str | os.PathLike[str]) -> str:
    """Save a series (or a multi-frame instance) as a NIfTI file, streamed; return ``path``.

    A ``path`` ending in ``.gz`` gets the gzip-compressed file. The orthanc-neuro plugin
    converts (Debian package ``orthanc-neuro``, ``libOrthancNeuro.so``); its voxel axes are
    ``nifti[i, j, k] == volume.array[k, rows - 1 - j, i]`` against ``get_volume`` and it
    takes x spacing from PixelSpacing[0] (wrong for non-square pixels). A failed download
    leaves no partial file. Orthanc: GET /{series|instances}/{id}/nifti (orthanc-neuro).

    Raises:
        NotFound: an unknown id, or a server without the neuro plugin (the message says so).
        OrthancValueError: ``level`` is neither series nor instances.
    """
    core = _core()
    level = core._level(level)
    if level not in (core.SERIES, core.INSTANCES):
        raise core.OrthancValueError(
            f"download_nifti: NIfTI exists for series and instances, not {level}")
    query = {"compress": ""} if os.fspath(path).endswith(".gz") else None
    try:
        return core._save(conn, "GET", f"/{level}/{core._segment(orthanc_id)}/nifti", path,
                          query=query, timeout=300)
    except core.NotFound as exc:
        if core.has_plugin(conn, _NEURO_PLUGIN):
            raise
        raise core._restated(exc, f"{exc} (download_nifti needs the orthanc-neuro plugin, "
                                  "libOrthancNeuro.so, Debian package orthanc-neuro: this "
                                  "server has not loaded it)") from None


_NEURO_PLUGIN = "neuro"
