"""orthanc_fn_helpers for researchers: pydicom datasets, decoded pixels, volumes and NIfTI.

Ground truth is built by each test: generated series of known geometry and pixels, or
pydicom's own real test files with their uncompressed twins.
"""
import io
import random
import threading

import numpy
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

import orthanc_fn as o
import orthanc_fn_helpers as h


@pytest.fixture(scope="module")
def neuro(make_server):
    """A 1.10 server with the neuro plugin. Not GDCM: transcoding JPEG 2000 through Debian's GDCM
    kills Orthanc 1.10.1 about one try in four (see conftest's ``server_gdcm``), so JPEG 2000
    decoding is tested on 1.13 (``test_orthanc_113_transcodes_jpeg_2000_for_get_pixels``)."""
    return make_server("research", plugins=("libOrthancNeuro.so",))


@pytest.fixture
def conn_n(neuro):
    o.delete_all_content(neuro.conn)
    return neuro.conn


def _real(name):
    return get_testdata_file(name)


def _upload_real(conn, name):
    with open(_real(name), "rb") as f:
        (instance_id,) = o.upload(conn, f.read())
    return instance_id


def _series_id(conn, instance_id):
    return o._get(conn, f"/instances/{instance_id}/series")["ID"]


# An oblique plane: rows along x, columns tilted 30 degrees about x.
_ROW = (1.0, 0.0, 0.0)
_COLUMN = (0.0, 0.8660254037844387, 0.5)
_NORMAL = tuple(numpy.cross(_ROW, _COLUMN))


def _slice_image(k, rows=6, columns=5):
    return (numpy.arange(rows * columns, dtype=numpy.int16).reshape(rows, columns) + 100 * k)


def _oblique_series(conn, count=6, spacing=2.5, *, skip=(), tags=None, origin=(10, -20, 30),
                    shuffle=True):
    """Upload an oblique series (InstanceNumbers shuffled); return (series id, files by k)."""
    study, series = generate_uid(), generate_uid()
    numbers = list(range(1, count + 1))
    if shuffle:
        random.Random(7).shuffle(numbers)
    files = {}
    for k in range(count):
        if k in skip:
            continue
        position = [float(origin[i] + k * spacing * _NORMAL[i]) for i in range(3)]
        files[k] = h.generate_test_dicom_file(image=_slice_image(k), tags=dict({
            "StudyInstanceUID": study, "SeriesInstanceUID": series,
            "InstanceNumber": numbers[k], "ImagePositionPatient": position,
            "ImageOrientationPatient": list(_ROW + _COLUMN), "PixelSpacing": [0.7, 0.9],
            "SliceThickness": 9, "RescaleSlope": 2, "RescaleIntercept": -1000}, **(tags or {})))
    order = list(files)
    random.Random(3).shuffle(order)
    ids = [i for k in order for i in o.upload(conn, files[k])]
    return _series_id(conn, ids[0]), files


def _local_stack(files):
    """The volume built locally with pydicom, in the known order, rescaled."""
    datasets = [pydicom.dcmread(io.BytesIO(files[k])) for k in sorted(files)]
    return numpy.stack([d.pixel_array * int(d.RescaleSlope) + int(d.RescaleIntercept)
                        for d in datasets])


# ---- datasets ----

def test_get_dataset_returns_the_stored_file_as_a_dataset(conn_a):
    data = h.generate_test_dicom_file(8, 8, {"PatientName": "DATA^SET"})
    (instance_id,) = o.upload(conn_a, data)
    ds = h.get_dataset(conn_a, instance_id)
    assert str(ds.PatientName) == "DATA^SET"
    assert ds.SOPInstanceUID == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID


def test_iter_datasets_yields_every_instance_of_a_study_once(conn_a):
    files = h.generate_test_study(series=2, instances=4)
    ids = [i for f in files for i in o.upload(conn_a, f)]
    study_id = o._get(conn_a, f"/instances/{ids[0]}/study")["ID"]
    seen = {instance_id: ds.SOPInstanceUID
            for instance_id, ds in h.iter_datasets(conn_a, "studies", study_id, workers=3)}
    assert set(seen) == set(ids)
    assert set(seen.values()) == {pydicom.dcmread(io.BytesIO(f)).SOPInstanceUID for f in files}


def test_iter_datasets_keeps_at_most_workers_files_in_flight(conn_a, monkeypatch):
    files = h.generate_test_study(series=1, instances=12)
    ids = [i for f in files for i in o.upload(conn_a, f)]
    lock, state = threading.Lock(), {"now": 0, "most": 0, "started": 0}
    real = o.get_file

    def counting_get_file(conn, instance_id):  # a counter around the real download
        with lock:
            state["now"] += 1
            state["started"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            return real(conn, instance_id)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(o, "get_file", counting_get_file)
    series_id = _series_id(conn_a, ids[0])
    generator = h.iter_datasets(conn_a, "series", series_id, workers=3)
    next(generator)
    threading.Event().wait(0.5)  # the consumer is slow: downloads must not run ahead
    assert state["started"] <= 4
    assert len(list(generator)) == 11
    assert state["most"] <= 3


def test_upload_dataset_stores_the_dataset_and_leaves_it_unchanged(conn_a):
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(8, 8)))
    del ds.file_meta
    ds.PatientName = "UPLOADED^DATASET"
    before = ds.to_json_dict()
    (instance_id,) = h.upload_dataset(conn_a, ds)
    assert ds.to_json_dict() == before and "file_meta" not in ds.__dict__
    tags = o._get(conn_a, f"/instances/{instance_id}/simplified-tags")
    assert tags["PatientName"] == "UPLOADED^DATASET"


def test_iter_datasets_of_one_instance_yields_it(conn_a):
    (instance_id,) = o.upload(conn_a, h.generate_test_dicom_file(4, 4))
    assert [i for i, _ in h.iter_datasets(conn_a, "instances", instance_id)] == [instance_id]


# ---- pixels ----

def test_get_pixels_of_an_instance_without_pixels_says_so(conn_a):
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(4, 4)))
    del ds.PixelData
    (instance_id,) = h.upload_dataset(conn_a, ds)
    with pytest.raises(o.OrthancValueError, match="no pixel data"):
        h.get_pixels(conn_a, instance_id)


def test_get_pixels_of_an_unknown_instance_is_not_found(conn_a):
    with pytest.raises(o.NotFound):
        h.get_pixels(conn_a, "no-such-instance")


# (a real file, its uncompressed twin or None): RLE and the dose decode in pydicom, JPEG-LS
# needs Orthanc (DCMTK); JPEG 2000 (GDCM) is tested on 1.13 below
_REAL = [
    ("MR_small.dcm", "MR_small.dcm"),
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("rtdose_rle.dcm", "rtdose.dcm"),
    ("SC_rgb_rle_2frame.dcm", None),
]


@pytest.mark.parametrize("name, twin", _REAL)
def test_get_pixels_of_a_real_file_equal_its_uncompressed_twin(conn_n, name, twin):
    pixels = h.get_pixels(conn_n, _upload_real(conn_n, name), rescale=False)
    reference = pydicom.dcmread(_real(twin or name)).pixel_array
    frames = int(pydicom.dcmread(_real(name)).get("NumberOfFrames") or 1)
    assert pixels.shape == (reference.shape if frames > 1 else (1,) + reference.shape)
    assert numpy.array_equal(pixels.reshape(reference.shape), reference)
    assert pixels.dtype == reference.dtype


def test_get_pixels_of_a_lossy_rgb_jpeg_is_close_to_the_lossless_image(conn_n):
    pixels = h.get_pixels(conn_n, _upload_real(conn_n, "SC_rgb_jpeg_dcmtk.dcm"))
    reference = pydicom.dcmread(_real("SC_rgb_rle.dcm")).pixel_array
    assert pixels.shape == (1, 100, 100, 3) and pixels.dtype == numpy.uint8
    assert numpy.abs(pixels[0].astype(int) - reference).mean() < 3


def test_get_pixels_rescales_a_real_ct_to_hounsfield_units(conn_n):
    ds = pydicom.dcmread(_real("CT_small.dcm"))
    pixels = h.get_pixels(conn_n, _upload_real(conn_n, "CT_small.dcm"), frame=0)
    expected = ds.pixel_array.astype(int) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert pixels.dtype.kind == "i" and numpy.array_equal(pixels, expected)


def test_get_pixels_gives_floats_only_when_the_slope_is_not_an_integer(conn_a):
    image = numpy.arange(12, dtype=numpy.uint16).reshape(3, 4)
    (plain,) = o.upload(conn_a, h.generate_test_dicom_file(
        image=image, tags={"RescaleSlope": 1, "RescaleIntercept": 0}))
    (scaled,) = o.upload(conn_a, h.generate_test_dicom_file(
        image=image, tags={"RescaleSlope": 0.5, "RescaleIntercept": -2}))
    assert h.get_pixels(conn_a, plain).dtype == numpy.uint16
    values = h.get_pixels(conn_a, scaled, frame=0)
    assert values.dtype == numpy.float32 and numpy.array_equal(values, image * 0.5 - 2)
    assert numpy.array_equal(h.get_pixels(conn_a, scaled, rescale=False)[0], image)


def test_get_pixels_frame_picks_one_frame_and_refuses_one_out_of_range(conn_n):
    instance_id = _upload_real(conn_n, "rtdose_rle.dcm")
    reference = pydicom.dcmread(_real("rtdose.dcm")).pixel_array
    assert numpy.array_equal(h.get_pixels(conn_n, instance_id, frame=14), reference[14])
    with pytest.raises(o.OrthancValueError, match="15 frame"):
        h.get_pixels(conn_n, instance_id, frame=15)


def test_get_pixels_names_what_is_missing_when_nobody_can_decode(conn_a):
    instance_id = _upload_real(conn_a, "JPEG2000.dcm")  # conn_a has no GDCM plugin
    with pytest.raises(o.OrthancError) as info:
        h.get_pixels(conn_a, instance_id)
    message = str(info.value)
    assert "pylibjpeg" in message and "GDCM" in message and instance_id in message
    assert "1.2.840.10008.1.2.4.91" in message  # the transfer syntax


@pytest.mark.v113
def test_orthanc_113_transcodes_jpeg_2000_for_get_pixels(conn_113):
    pixels = h.get_pixels(conn_113, _upload_real(conn_113, "MR_small_jp2klossless.dcm"))
    assert numpy.array_equal(pixels[0], pydicom.dcmread(_real("MR_small.dcm")).pixel_array)
    assert h.get_pixels(conn_113, _upload_real(conn_113, "JPEG2000.dcm")).shape == (1, 1024, 256)


# ---- volumes ----

def test_get_volume_sorts_an_oblique_series_by_position_not_instance_number(conn_a):
    series_id, files = _oblique_series(conn_a)
    volume = h.get_volume(conn_a, series_id, workers=3)
    assert numpy.array_equal(volume.array, _local_stack(files))
    assert volume.array.dtype.kind == "i"
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.9))  # not SliceThickness (9)
    assert volume.origin == pytest.approx((10, -20, 30))
    assert numpy.allclose(volume.direction, (_NORMAL, _COLUMN, _ROW))
    uids = [pydicom.dcmread(io.BytesIO(files[k])).SOPInstanceUID for k in sorted(files)]
    assert [o._get(conn_a, f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
            for i in volume.instances_ids] == uids


def test_get_volume_places_voxels_where_the_geometry_says(conn_a):
    series_id, files = _oblique_series(conn_a, count=3)
    volume = h.get_volume(conn_a, series_id)
    last = pydicom.dcmread(io.BytesIO(files[2]))
    k, j, i = 2, 4, 3
    spot = numpy.array(volume.origin) + sum(
        n * s * numpy.array(d) for n, s, d in zip((k, j, i), volume.spacing, volume.direction))
    expected = numpy.array(last.ImagePositionPatient, float) + j * 0.7 * numpy.array(
        _COLUMN) + i * 0.9 * numpy.array(_ROW)
    assert numpy.allclose(spot, expected)


def test_get_volume_refuses_a_series_with_a_missing_slice_naming_where(conn_a):
    series_id, _ = _oblique_series(conn_a, count=6, skip=(3,))
    with pytest.raises(o.OrthancValueError, match=r"missing slice \(1 missing\): 5 mm"):
        h.get_volume(conn_a, series_id)


def test_get_volume_refuses_mixed_orientations_naming_the_instance(conn_a):
    series_id, _ = _oblique_series(conn_a, count=3)
    (odd,) = o.upload(conn_a, h.generate_test_dicom_file(image=_slice_image(9), tags={
        "SeriesInstanceUID": o._get(conn_a, f"/series/{series_id}")["MainDicomTags"][
            "SeriesInstanceUID"],
        "StudyInstanceUID": o._get(conn_a, f"/series/{series_id}/study")["MainDicomTags"][
            "StudyInstanceUID"],
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "ImagePositionPatient": [0, 0, 99],
        "PixelSpacing": [0.7, 0.9]}))
    with pytest.raises(o.OrthancValueError, match="mixed orientations") as info:
        h.get_volume(conn_a, series_id)
    assert odd in str(info.value)


def test_get_volume_refuses_two_acquisitions_stacked_at_the_same_positions(conn_a):
    series_id, files = _oblique_series(conn_a, count=3)
    for k in files:  # the same slices again, other SOP instances
        ds = pydicom.dcmread(io.BytesIO(files[k]))
        ds.SOPInstanceUID = generate_uid()
        h.upload_dataset(conn_a, ds)
    with pytest.raises(o.OrthancValueError, match="several slices at one position"):
        h.get_volume(conn_a, series_id)


def test_get_volume_of_a_series_without_geometry_says_what_is_missing(conn_a):
    (instance_id,) = o.upload(conn_a, h.generate_test_dicom_file(4, 4, modality="OT"))
    with pytest.raises(o.OrthancValueError, match="no ImagePositionPatient"):
        h.get_volume(conn_a, _series_id(conn_a, instance_id))


def test_get_volume_refuses_mixed_image_sizes(conn_a):
    series_id, files = _oblique_series(conn_a, count=2)
    ds = pydicom.dcmread(io.BytesIO(files[1]))
    bigger = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(
        image=numpy.zeros((8, 8), numpy.int16))))
    ds.SOPInstanceUID, ds.ImagePositionPatient = generate_uid(), [0, 0, 50]
    ds.Rows, ds.Columns, ds.PixelData = 8, 8, bigger.PixelData
    h.upload_dataset(conn_a, ds)
    with pytest.raises(o.OrthancValueError, match="mixes image sizes"):
        h.get_volume(conn_a, series_id)


def test_get_volume_of_an_enhanced_multi_frame_file_uses_each_frames_position(conn_a):
    frames = 5
    positions = [[0.0, 0.0, 3.0 * k] for k in range(frames)]
    order = [3, 0, 4, 1, 2]  # frames stored out of positional order
    stack = numpy.stack([_slice_image(k) for k in range(frames)])
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(image=_slice_image(0))))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                    "RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    ds.NumberOfFrames = frames
    ds.PixelData = stack[order].tobytes()
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.5]
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in order:
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = positions[k]
        item.PixelValueTransformationSequence = Sequence([Dataset()])
        item.PixelValueTransformationSequence[0].RescaleSlope = 1
        item.PixelValueTransformationSequence[0].RescaleIntercept = 10 * k
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    (instance_id,) = h.upload_dataset(conn_a, ds)
    volume = h.get_volume(conn_a, _series_id(conn_a, instance_id))
    expected = stack + (10 * numpy.arange(frames))[:, None, None]
    assert numpy.array_equal(volume.array, expected)
    assert volume.spacing == pytest.approx((3, 0.5, 0.5))
    assert volume.instances_ids == (instance_id,) * frames


def test_get_volume_of_a_real_multi_frame_dose_uses_its_frame_offsets(conn_n):
    volume = h.get_volume(conn_n, _series_id(conn_n, _upload_real(conn_n, "rtdose_rle.dcm")),
                          rescale=False)
    reference = pydicom.dcmread(_real("rtdose.dcm"))
    assert numpy.array_equal(volume.array, reference.pixel_array)
    assert volume.spacing[0] == pytest.approx(float(reference.GridFrameOffsetVector[1]))


def test_get_volume_of_an_rgb_series_keeps_the_samples_last(conn_a):
    study, series = generate_uid(), generate_uid()
    images = [numpy.full((4, 5, 3), k * 40, numpy.uint8) for k in range(3)]
    ids = [i for k in (2, 0, 1) for i in o.upload(conn_a, h.generate_test_dicom_file(
        image=images[k], modality="OT", tags={
            "StudyInstanceUID": study, "SeriesInstanceUID": series,
            "ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "PixelSpacing": [1, 1],
            "ImagePositionPatient": [0, 0, 4 * k]}))]
    volume = h.get_volume(conn_a, _series_id(conn_a, ids[0]))
    assert volume.array.shape == (3, 4, 5, 3)
    assert numpy.array_equal(volume.array, numpy.stack(images))


# ---- NIfTI ----

def test_download_nifti_voxels_match_get_volume(conn_n, tmp_path):
    nibabel = pytest.importorskip("nibabel")  # in the test extra
    series_id, _ = _oblique_series(conn_n, count=4, tags={"PixelSpacing": [0.8, 0.8]})
    volume = h.get_volume(conn_n, series_id)
    for name in ("series.nii", "series.nii.gz"):
        path = h.download_nifti(conn_n, "series", series_id, tmp_path / name)
        voxels = numpy.asarray(nibabel.load(str(path)).get_fdata())
        rows = volume.array.shape[1]
        # the neuro plugin's axes: nifti[i, j, k] == volume[k, rows - 1 - j, i]
        assert numpy.array_equal(voxels, volume.array[:, ::-1, :].transpose(2, 1, 0)), rows
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.v113
def test_on_orthanc_113_download_nifti_voxels_match_get_volume(make_server, tmp_path):
    nibabel = pytest.importorskip("nibabel")
    conn = make_server("research113", tier="1.13", plugins=("libOrthancNeuro.so",)).conn
    series_id, files = _oblique_series(conn, count=3, tags={"PixelSpacing": [0.8, 0.8]})
    volume = h.get_volume(conn, series_id)
    assert numpy.array_equal(volume.array, _local_stack(files))
    voxels = nibabel.load(str(h.download_nifti(conn, "series", series_id,
                                               tmp_path / "s.nii"))).get_fdata()
    assert numpy.array_equal(voxels, volume.array[:, ::-1, :].transpose(2, 1, 0))


def test_download_nifti_without_the_neuro_plugin_says_so(conn_a, tmp_path):
    series_id, _ = _oblique_series(conn_a, count=2)
    with pytest.raises(o.NotFound, match="needs the orthanc-neuro plugin"):
        h.download_nifti(conn_a, "series", series_id, tmp_path / "x.nii")
    assert not list(tmp_path.iterdir())


def test_download_nifti_of_an_unknown_series_is_not_found(conn_n, tmp_path):
    with pytest.raises(o.NotFound) as info:
        h.download_nifti(conn_n, "series", "no-such-series", tmp_path / "x.nii")
    assert "plugin" not in str(info.value)
