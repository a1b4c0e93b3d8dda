"""orthanc_fn_helpers: DICOM dates and times, waiting, and generated test DICOM files."""
import datetime
import glob
import io
import os
import shutil
import subprocess
import sys
import time
import types

import numpy
import pydicom
import pytest
import urllib3

import orthanc_fn as o
import orthanc_fn_helpers as h

# ---- dates and times ----


def test_dicom_dates_round_trip():
    day = datetime.date(2026, 2, 28)
    assert h.to_dicom_date(day) == "20260228"
    assert h.from_dicom_date("20260228") == day
    assert h.to_dicom_date(datetime.datetime(2026, 2, 28, 23, 59)) == "20260228"


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_an_empty_dicom_date_or_time_is_none(empty):
    assert h.from_dicom_date(empty) is None
    assert h.from_dicom_time(empty) is None


@pytest.mark.parametrize("garbage", ["2026-01-01", "20261301", "20260230", "abcdefgh",
                                     "2026011", "202601011"])
def test_a_malformed_dicom_date_raises_value_error_naming_it(garbage):
    with pytest.raises(ValueError) as info:
        h.from_dicom_date(garbage)
    assert repr(garbage) in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("10", datetime.time(10)),
    ("1011", datetime.time(10, 11)),
    ("101112", datetime.time(10, 11, 12)),
    ("101112.5", datetime.time(10, 11, 12, 500000)),
    ("101112.123456", datetime.time(10, 11, 12, 123456)),
])
def test_dicom_times_of_every_precision_parse(text, expected):
    assert h.from_dicom_time(text) == expected


@pytest.mark.parametrize("garbage", ["25", "1060", "10111", "1011.5", "101112.1234567",
                                     "10:11:12", "ab", "101112.x"])
def test_a_malformed_dicom_time_raises_value_error_naming_it(garbage):
    with pytest.raises(ValueError) as info:
        h.from_dicom_time(garbage)
    assert repr(garbage) in str(info.value)


def test_dicom_times_round_trip_with_and_without_microseconds():
    for value in (datetime.time(0, 0, 1), datetime.time(23, 59, 59, 999999)):
        assert h.from_dicom_time(h.to_dicom_time(value)) == value


def test_formatting_something_that_is_not_a_date_or_time_raises_type_error():
    with pytest.raises(TypeError):
        h.to_dicom_date("20260101")
    with pytest.raises(TypeError):
        h.to_dicom_time("101010")


def test_orthanc_date_times_parse_with_and_without_fraction():
    assert h.from_orthanc_datetime("20260126T101010") == datetime.datetime(2026, 1, 26, 10, 10, 10)
    assert h.from_orthanc_datetime("20260126T101010.250000") == datetime.datetime(
        2026, 1, 26, 10, 10, 10, 250000)


@pytest.mark.parametrize("garbage", ["20260126", "20260126T", "T101010", "2026-01-26T10:10:10",
                                     "20261326T101010", None])
def test_a_malformed_orthanc_date_time_raises_value_error_naming_it(garbage):
    with pytest.raises(ValueError) as info:
        h.from_orthanc_datetime(garbage)
    assert repr(str(garbage)) in str(info.value)


def test_orthanc_date_times_parse_what_the_server_writes(conn_a):
    now = h.from_orthanc_datetime(o._get(conn_a, "/tools/now-local"))
    assert abs(now - datetime.datetime.now()) < datetime.timedelta(minutes=5)


# ---- waiting ----

def test_wait_until_returns_true_as_soon_as_the_predicate_holds():
    calls = []
    assert h.wait_until(lambda: calls.append(1) or len(calls) >= 3, timeout=10,
                        polling_interval=0.01) is True
    assert len(calls) == 3


def test_wait_until_returns_false_after_the_timeout_having_retried():
    calls = []
    start = time.monotonic()
    assert h.wait_until(lambda: calls.append(1), timeout=0.3, polling_interval=0.05) is False
    assert 0.3 <= time.monotonic() - start < 5
    assert len(calls) >= 3


def test_wait_until_calls_the_predicate_once_even_with_no_time():
    calls = []
    assert h.wait_until(lambda: calls.append(1) or True, timeout=0) is True
    assert calls == [1]


# ---- random dates ----

def test_random_dates_stay_within_the_bounds():
    first, last = datetime.date(2020, 2, 27), datetime.date(2020, 3, 2)
    seen = {h.from_dicom_date(h.get_random_dicom_date(first, last)) for _ in range(300)}
    assert seen == {first + datetime.timedelta(days=n) for n in range(5)}


def test_random_dates_accept_dicom_strings_as_bounds():
    assert h.get_random_dicom_date("20200505", "20200505") == "20200505"


def test_random_dates_refuse_a_start_after_the_end():
    with pytest.raises(ValueError):
        h.get_random_dicom_date(datetime.date(2021, 1, 2), datetime.date(2021, 1, 1))


def test_random_dates_read_today_at_each_call(monkeypatch):
    class Day(datetime.date):
        @classmethod
        def today(cls):
            return cls(2031, 7, 1)

    fake = types.SimpleNamespace(date=Day, datetime=datetime.datetime,
                                 timedelta=datetime.timedelta, time=datetime.time)
    monkeypatch.setattr(h, "datetime", fake)
    assert h.get_random_dicom_date(Day(2031, 7, 1)) == "20310701"


# ---- generated DICOM ----

MODALITIES = ["CT", "MR", "CR", "DX", "OT"]


@pytest.mark.parametrize("modality", MODALITIES)
def test_pydicom_reads_back_the_requested_tags_and_pixel_size(modality):
    tags = {"PatientName": "DOE^JANE", "StudyDescription": "read back", "SeriesNumber": 7}
    data = h.generate_test_dicom_file(40, 24, tags, modality=modality)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert (ds.Rows, ds.Columns) == (24, 40)
    assert ds.pixel_array.shape == (24, 40)
    assert str(ds.PatientName) == "DOE^JANE" and ds.StudyDescription == "read back"
    assert ds.SeriesNumber == 7 and ds.Modality == modality
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_the_modality_tag_picks_the_sop_class():
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(8, 8, {"Modality": "MR"})))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"


def test_eight_bit_images_of_odd_size_read_back():
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(7, 3, bits=8, seed=1)))
    assert ds.pixel_array.shape == (3, 7) and ds.pixel_array.dtype == numpy.uint8


def test_a_seed_gives_the_same_pixels():
    def pixels():
        return pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(8, 8, seed=42))).PixelData
    assert pixels() == pixels()


def test_an_unknown_keyword_raises_value_error_naming_it():
    with pytest.raises(ValueError) as info:
        h.generate_test_dicom_file(8, 8, {"PatientNam": "X"})
    assert "PatientNam" in str(info.value)


def test_orthanc_stores_a_generated_file_of_each_modality(conn_a):
    for modality in MODALITIES:
        (instance_id,) = o.upload(conn_a, h.generate_test_dicom_file(16, 12, modality=modality))
        tags = o._get(conn_a, f"/instances/{instance_id}/simplified-tags")
        assert (tags["Modality"], tags["Rows"], tags["Columns"]) == (modality, "12", "16")


def test_a_generated_study_shares_one_study_and_patient(conn_a):
    files = h.generate_test_study(series=2, instances=3, tags={"PatientName": "STUDY^ONE"})
    datasets = [pydicom.dcmread(io.BytesIO(f)) for f in files]
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    assert len({d.PatientID for d in datasets}) == 1
    assert len({d.SeriesInstanceUID for d in datasets}) == 2
    assert len({d.SOPInstanceUID for d in datasets}) == 6
    ids = [i for f in files for i in o.upload(conn_a, f)]
    study = o._get(conn_a, f"/instances/{ids[0]}/study")
    assert len(study["Series"]) == 2
    assert study["PatientMainDicomTags"]["PatientName"] == "STUDY^ONE"


# ---- without pydicom or numpy ----

def _bare_python(tmp_path, *packages):
    """A folder holding only the two project files and links to the given packages."""
    for module in (o, h):
        shutil.copy(module.__file__, tmp_path)
    for package in (urllib3,) + packages:
        folder = os.path.dirname(package.__file__)
        for path in [folder] + glob.glob(f"{folder}-*.dist-info"):  # with its metadata
            os.symlink(path, tmp_path / os.path.basename(path))
    return [sys.executable, "-S", "-c"]


_VENDORED = """
import sys; sys.path[:0] = [sys.argv[1]]
path = list(sys.path)
import mypkg.orthanc_fn_helpers as h
assert "mypkg.orthanc_fn" not in sys.modules, "the helpers imported the core before a need"
assert h.get_random_dicom_date("2026-01-30", "20260130") == "20260130"  # the core's date rule
import mypkg.orthanc_fn as o
assert h._core() is o and sys.path == path
assert not any(name == "orthanc_fn" or name.endswith(".orthanc_fn") and name != "mypkg.orthanc_fn"
               for name in sys.modules), "a second copy of the core was loaded"
try:
    o.get_info(o.Connection(sys.argv[2]), o.STUDIES, "no-such-study")
except h._core().NotFound as exc:
    print(type(exc).__module__, type(exc).__name__, exc.status)
"""


def test_both_files_vendored_in_a_package_load_the_core_once_with_one_pool_and_one_not_found(
        tmp_path, conn_a):
    run = _bare_python(tmp_path)
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in (o, h):
        os.replace(tmp_path / os.path.basename(module.__file__),
                   package / os.path.basename(module.__file__))
    url = conn_a.url.replace("://", f"://{conn_a.auth[0]}:{conn_a.auth[1]}@")
    out = subprocess.run(run + [_VENDORED, str(tmp_path), url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mypkg.orthanc_fn", "NotFound", "404"]


_SCRIPT = """
import sys; sys.path[:0] = [sys.argv[1]]
import orthanc_fn_helpers as h
assert "pydicom" not in sys.modules and "numpy" not in sys.modules
print(h.to_dicom_date(h.from_dicom_date("20260101")))
try:
    h.generate_test_dicom_file()
except ImportError as exc:
    print(exc)
"""


def test_the_helpers_import_without_pydicom_and_the_generators_name_it(tmp_path):
    out = subprocess.run(_bare_python(tmp_path) + [_SCRIPT, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "20260101"
    assert "generate_test_dicom_file needs pydicom" in second


def test_with_pydicom_but_without_numpy_the_generators_name_numpy(tmp_path):
    out = subprocess.run(_bare_python(tmp_path, pydicom) + [_SCRIPT, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "generate_test_dicom_file needs numpy" in out.stdout.splitlines()[1]


# ---- generated DICOM: one study, images, dates and times ----

def test_two_generated_files_with_one_study_uid_make_one_study_in_orthanc(conn_a):
    tags = {"StudyInstanceUID": pydicom.uid.generate_uid()}
    ids = [i for _ in range(2) for i in o.upload(conn_a, h.generate_test_dicom_file(8, 8, tags))]
    studies = {o._get(conn_a, f"/instances/{i}/study")["ID"] for i in ids}
    assert len(studies) == 1


def test_a_caller_patient_id_wins_over_the_derived_one():
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(4, 4, {"PatientID": "P-7"})))
    assert ds.PatientID == "P-7"


def _pixels(**options):
    return pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(**options))).pixel_array


def test_the_default_image_is_a_gradient_over_the_whole_range():
    pixels = _pixels(width=5, height=4, bits=12)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 4095
    assert (numpy.diff(pixels, axis=0) > 0).all() and (numpy.diff(pixels, axis=1) > 0).all()


def test_a_flat_image_has_one_value_at_half_the_range():
    assert set(_pixels(width=3, height=2, bits=8, image="flat").ravel()) == {128}


def test_a_random_image_follows_its_seed():
    first = _pixels(width=6, height=6, image="random", seed=5)
    assert numpy.array_equal(first, _pixels(width=6, height=6, image="random", seed=5))
    assert not numpy.array_equal(first, _pixels(width=6, height=6, image="random", seed=6))


@pytest.mark.parametrize("dtype", [numpy.uint8, numpy.int16, numpy.uint16])
def test_an_array_image_is_stored_as_given_with_its_size_and_type(dtype):
    image = (numpy.arange(12).reshape(3, 4) - 4).astype(dtype)
    pixels = _pixels(image=image)
    assert pixels.dtype == numpy.dtype(dtype) and numpy.array_equal(pixels, image)


def test_an_rgb_array_image_is_stored_as_rgb():
    image = numpy.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=numpy.uint8)
    ds = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(image=image)))
    assert ds.PhotometricInterpretation == "RGB" and numpy.array_equal(ds.pixel_array, image)


@pytest.mark.parametrize("image", ["noise", numpy.zeros((2, 2, 2)), numpy.zeros(4)])
def test_an_unknown_image_raises_value_error(image):
    with pytest.raises(ValueError, match="image must be"):
        h.generate_test_dicom_file(image=image)


def test_a_dicom_date_and_time_combine_keeping_fractions():
    assert h.from_dicom_date_and_time("20260126", "101010.123456") == datetime.datetime(
        2026, 1, 26, 10, 10, 10, 123456)
    assert h.from_dicom_date_and_time("20260126", None) == datetime.datetime(2026, 1, 26)


@pytest.mark.parametrize("date", ["", None, "2026-01-26"])
def test_a_dicom_date_and_time_without_a_valid_date_raises_value_error(date):
    with pytest.raises(ValueError):
        h.from_dicom_date_and_time(date, "101010")
