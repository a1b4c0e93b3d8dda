"""Download: the instances of a resource one file each, and DICOMDIR media."""
import zipfile

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h


def test_download_instances_writes_one_identical_file_per_instance(conn_a, tmp_path, upload_study):
    study_id = upload_study(conn_a, 2, 3).id
    ids = o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)
    folder = tmp_path / "new" / "folder"
    saved = o.download_instances(conn_a, ids, folder)
    assert [instance_id for instance_id, _ in saved] == ids
    assert sorted(p.name for p in folder.iterdir()) == sorted(i + ".dcm" for i in ids)
    for instance_id, path in saved:
        with open(path, "rb") as f:
            assert f.read() == o.get_file(conn_a, instance_id)


def test_download_instances_raises_for_an_unknown_id_and_keeps_no_partial_file(conn_a,
                                                                              tmp_path):
    good = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    with pytest.raises(o.NotFound):
        o.download_instances(conn_a, [good, "0" * 8 + "-unknown"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good + ".dcm"]


@pytest.mark.parametrize("level", [o.STUDIES, o.INSTANCES])
def test_download_media_saves_a_zip_with_a_dicomdir(conn_a, tmp_path, level, upload_study):
    import zipfile
    study_id = upload_study(conn_a, 1, 2).id
    orthanc_id = (study_id if level == o.STUDIES
                  else o.get_first_instance_id(conn_a, o.STUDIES, study_id))
    path = o.download_media(conn_a, level, orthanc_id, tmp_path / "media.zip")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "DICOMDIR" in names
    assert len([n for n in names if n != "DICOMDIR"]) == (2 if level == o.STUDIES else 1)


# ---- files re-encoded on the way out

LOSSLESS_JPEG = "1.2.840.10008.1.2.4.70"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"


def _syntax(data):
    import io
    import pydicom
    return str(pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID)


def _zip_syntaxes(path):
    with zipfile.ZipFile(path) as archive:
        return {_syntax(archive.read(n)) for n in archive.namelist()
                if not n.endswith("DICOMDIR")}, archive.namelist()


def test_get_file_with_transcode_on_1_10_returns_the_file_re_encoded_and_stores_nothing(conn_a, upload_study):
    instance_id = upload_study(conn_a, 1, 1).instances_ids[0]
    original = o.get_file(conn_a, instance_id)
    count = o.get_statistics(conn_a)["CountInstances"]
    data = o.get_file(conn_a, instance_id, transcode=LOSSLESS_JPEG)
    assert _syntax(data) == LOSSLESS_JPEG
    assert o.get_statistics(conn_a)["CountInstances"] == count
    assert o.get_file(conn_a, instance_id) == original


@pytest.mark.v112
def test_get_file_with_transcode_on_1_12_uses_the_transcode_argument(conn_112, count_requests, upload_study):
    instance_id = upload_study(conn_112, 1, 1).instances_ids[0]
    count_requests.clear()
    assert _syntax(o.get_file(conn_112, instance_id, transcode=IMPLICIT_LITTLE)) == \
        IMPLICIT_LITTLE
    assert [m for m, _, _ in count_requests] == ["GET", "GET"]  # /system, then the file
    assert "transcode=" + IMPLICIT_LITTLE in count_requests[-1][1]
    assert o.get_statistics(conn_112)["CountInstances"] == 1


@pytest.mark.v113
def test_get_file_with_transcode_to_jpeg_2000_on_1_13_with_gdcm(conn_113):
    # 64x64: Orthanc 1.13.0 with GDCM 1.8 crashes (heap corruption) encoding an 8x8 image
    instance_id = o.upload(conn_113, h.generate_test_dicom_file(64, 64))[0]
    assert _syntax(o.get_file(conn_113, instance_id, transcode=JPEG_2000_LOSSLESS)) == \
        JPEG_2000_LOSSLESS


def test_download_file_with_transcode_saves_the_re_encoded_file(conn_a, tmp_path, upload_study):
    instance_id = upload_study(conn_a, 1, 1).instances_ids[0]
    path = o.download_file(conn_a, instance_id, tmp_path / "one.dcm", transcode=LOSSLESS_JPEG)
    with open(path, "rb") as f:
        assert _syntax(f.read()) == LOSSLESS_JPEG


def test_download_instances_with_transcode_asks_the_version_once(conn_a, tmp_path,
                                                                  count_requests, upload_study):
    instance_ids = upload_study(conn_a, 2, 2).instances_ids
    count_requests.clear()
    saved = o.download_instances(conn_a, instance_ids, tmp_path, transcode=LOSSLESS_JPEG)
    syntaxes = set()
    for _, path in saved:
        with open(path, "rb") as f:
            syntaxes.add(_syntax(f.read()))
    assert syntaxes == {LOSSLESS_JPEG}
    assert sum(url.endswith("/system") for _, url, _ in count_requests) == 1


def test_download_archive_with_transcode_re_encodes_every_file(conn_a, tmp_path, upload_study):
    study_id = upload_study(conn_a, 2, 1).id
    path = o.download_archive(conn_a, o.STUDIES, study_id, tmp_path / "s.zip",
                              transcode=LOSSLESS_JPEG)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG} and len(names) == 2


def test_download_media_of_an_instance_with_transcode_has_a_dicomdir(conn_a, tmp_path, upload_study):
    instance_id = upload_study(conn_a, 1, 1).instances_ids[0]
    path = o.download_media(conn_a, o.INSTANCES, instance_id, tmp_path / "m.zip",
                            transcode=LOSSLESS_JPEG)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG} and "DICOMDIR" in names


@pytest.mark.parametrize("media", [False, True])
def test_download_instances_set_with_transcode_and_media(conn_a, tmp_path, media, upload_study):
    study_id = upload_study(conn_a, 1, 2).id
    s = o.instances_set_from_study(conn_a, study_id)
    path = o.download_instances_set(conn_a, s, tmp_path / "set.zip", transcode=LOSSLESS_JPEG,
                                    media=media)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG}
    assert ("DICOMDIR" in names) == media
    assert len([n for n in names if not n.endswith("DICOMDIR")]) == 2
