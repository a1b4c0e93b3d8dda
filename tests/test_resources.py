"""Resources: ids, info, parents, children, deletion; ids never leave their URL segment."""
import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


def _upload_study(conn, series=2, instances=2, tags=None):
    """Upload a generated study; return (patient_id, study_id, series_ids, instance_ids)."""
    files = h.generate_test_study(series, instances, tags, width=8, height=8)
    instance_ids = [i for data in files for i in o.upload(conn, data)]
    study_id = o.get_parent_id(conn, o.INSTANCES, instance_ids[0], o.STUDIES)
    patient_id = o.get_parent_id(conn, o.STUDIES, study_id, o.PATIENTS)
    series_ids = sorted({o.get_parent_id(conn, o.INSTANCES, i, o.SERIES) for i in instance_ids})
    return patient_id, study_id, series_ids, instance_ids


def test_get_all_ids_lists_every_study_of_the_server(empty_a):
    first = _upload_study(empty_a, 1, 1)[1]
    second = _upload_study(empty_a, 1, 1)[1]
    assert sorted(o.get_all_ids(empty_a, o.STUDIES)) == sorted([first, second])


def test_get_info_returns_orthancs_dict_with_main_dicom_tags(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1, {"StudyDescription": "INFO TEST"})
    info = o.get_info(conn_a, o.STUDIES, study_id)
    assert info["ID"] == study_id and info["Type"] == "Study"
    assert info["MainDicomTags"]["StudyDescription"] == "INFO TEST"
    assert "PatientMainDicomTags" in info


def test_get_info_accepts_orthancs_singular_level_names(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1)
    assert o.get_info(conn_a, "Study", study_id)["ID"] == study_id


def test_get_info_raises_not_found_for_an_unknown_id(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.get_info(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")
    assert info.value.status == 404


def test_exists_tells_a_stored_resource_from_an_unknown_or_impossible_id(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1)
    assert o.exists(conn_a, o.STUDIES, study_id)
    assert not o.exists(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")
    assert not o.exists(conn_a, o.STUDIES, "../system")


def test_get_parent_id_returns_the_study_of_an_instance_and_the_patient_of_a_series(conn_a):
    patient_id, study_id, series_ids, instance_ids = _upload_study(conn_a, 1, 1)
    assert o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], o.STUDIES) == study_id
    assert o.get_parent_id(conn_a, o.SERIES, series_ids[0], o.PATIENTS) == patient_id
    assert o.get_info(conn_a, o.STUDIES, study_id)["ParentPatient"] == patient_id


def test_get_parent_id_refuses_a_level_that_is_not_above(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.get_parent_id(conn_a, o.STUDIES, "x", o.SERIES)
    with pytest.raises(o.OrthancValueError):
        o.get_parent_id(conn_a, o.STUDIES, "x", o.STUDIES)


def test_get_children_ids_returns_every_instance_of_a_patient(conn_a):
    patient_id, study_id, series_ids, instance_ids = _upload_study(conn_a, 2, 3)
    assert sorted(o.get_children_ids(conn_a, o.PATIENTS, patient_id, o.INSTANCES)) == \
        sorted(instance_ids)
    assert sorted(o.get_children_ids(conn_a, o.STUDIES, study_id, o.SERIES)) == series_ids


@pytest.mark.v112
def test_get_children_ids_returns_ids_on_orthanc_112_too(conn_112):
    _, study_id, _, instance_ids = _upload_study(conn_112, 2, 2)
    children = o.get_children_ids(conn_112, o.STUDIES, study_id, o.INSTANCES)
    assert sorted(children) == sorted(instance_ids)


def test_get_children_ids_refuses_a_level_that_is_not_below(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.get_children_ids(conn_a, o.SERIES, "x", o.STUDIES)


def test_get_children_ids_raises_not_found_for_an_unknown_id(conn_a):
    with pytest.raises(o.NotFound):
        o.get_children_ids(conn_a, o.PATIENTS, "0" * 8, o.INSTANCES)


def test_delete_removes_the_study_and_its_instances(conn_a):
    _, study_id, _, instance_ids = _upload_study(conn_a, 2, 2)
    o.delete(conn_a, o.STUDIES, study_id)
    assert not o.exists(conn_a, o.STUDIES, study_id)
    assert not any(o.exists(conn_a, o.INSTANCES, i) for i in instance_ids)


def test_delete_of_a_list_removes_every_resource_and_keeps_the_others(conn_a):
    studies = [_upload_study(conn_a, 1, 1)[1] for _ in range(3)]
    o.delete(conn_a, o.STUDIES, studies[:2])
    assert [o.exists(conn_a, o.STUDIES, s) for s in studies] == [False, False, True]


def test_delete_of_an_unknown_id_raises_not_found(conn_a):
    with pytest.raises(o.NotFound):
        o.delete(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000")


def test_delete_of_an_empty_list_does_nothing(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1)
    o.delete(conn_a, o.STUDIES, [])
    assert o.exists(conn_a, o.STUDIES, study_id)


def test_delete_with_missing_ok_ignores_an_id_that_is_already_gone(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1)
    o.delete(conn_a, o.STUDIES, study_id)
    o.delete(conn_a, o.STUDIES, study_id, missing_ok=True)
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_delete_with_missing_ok_still_deletes_an_id_that_exists(conn_a):
    _, study_id, _, _ = _upload_study(conn_a, 1, 1)
    o.delete(conn_a, o.STUDIES, study_id, missing_ok=True)
    assert not o.exists(conn_a, o.STUDIES, study_id)


BAD_IDS = ["../system", "a/b", "..", ".", "x?y=1", "x#y", "%2e%2e", "a\\b", "", "a\nb"]

CALLS = {
    "get_info": lambda c, i: o.get_info(c, o.STUDIES, i),
    "get_parent_id": lambda c, i: o.get_parent_id(c, o.SERIES, i, o.STUDIES),
    "get_children_ids": lambda c, i: o.get_children_ids(c, o.STUDIES, i, o.SERIES),
    "delete": lambda c, i: o.delete(c, o.STUDIES, i),
    "delete_list": lambda c, i: o.delete(c, o.STUDIES, ["ok-id", i]),
    "get_tags": lambda c, i: o.get_tags(c, i),
    "get_file": lambda c, i: o.get_file(c, i),
    "get_file_transcoded": lambda c, i: o.get_file(c, i, transcode="1.2.840.10008.1.2"),
    "is_protected": lambda c, i: o.is_protected(c, i),
    "set_protected": lambda c, i: o.set_protected(c, i),
    "reconstruct": lambda c, i: o.reconstruct(c, o.STUDIES, i),
    "get_shared_tags": lambda c, i: o.get_shared_tags(c, o.STUDIES, i),
    "get_all_metadata": lambda c, i: o.get_all_metadata(c, o.STUDIES, i),
    "get_string_metadata": lambda c, i: o.get_string_metadata(c, o.STUDIES, i, 1024),
    "metadata_name": lambda c, i: o.get_string_metadata(c, o.STUDIES, "ok-id", i),
    "set_attachment": lambda c, i: o.set_attachment(c, o.STUDIES, "ok-id", i, b"x"),
    "download_archive": lambda c, i: o.download_archive(c, o.STUDIES, i, "/nonexistent/x"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_an_id_that_could_reach_another_endpoint_is_refused_before_any_request(call, bad_id):
    # a server that is not there: any request would raise OrthancConnectionError instead
    conn = o.Connection(f"http://127.0.0.1:{orthanc_rig.free_port()}")
    with pytest.raises(o.OrthancValueError):
        CALLS[call](conn, bad_id)


# ---- protection from recycling, reconstruction

@pytest.fixture(scope="module")
def small_server(make_server):
    """A server that keeps at most one patient and has no storage cache."""
    return make_server("onepatient", config={"MaximumPatientCount": 1,
                                            "MaximumStorageCacheSize": 0})


def _patient(conn, name):
    data = h.generate_test_dicom_file(8, 8, {"PatientID": name, "PatientName": name})
    return o.get_parent_id(conn, o.INSTANCES, o.upload(conn, data)[0], o.PATIENTS)


def test_set_protected_then_is_protected_reads_it_back(conn_a):
    patient_id = _upload_study(conn_a, 1, 1)[0]
    assert o.is_protected(conn_a, patient_id) is False
    o.set_protected(conn_a, patient_id)
    assert o.is_protected(conn_a, patient_id) is True
    o.set_protected(conn_a, patient_id, False)
    assert o.is_protected(conn_a, patient_id) is False


def test_a_protected_patient_is_not_recycled_when_the_server_is_full(small_server):
    conn = small_server.conn
    o.delete_all_content(conn)
    kept = _patient(conn, "PROTECTED-1")
    o.set_protected(conn, kept)
    with pytest.raises(o.HttpError):  # Orthanc 1.10: "The file storage is full"
        _patient(conn, "NEWCOMER-2")
    assert o.get_all_ids(conn, o.PATIENTS) == [kept]


def test_an_unprotected_patient_is_recycled_when_the_server_is_full(small_server):
    conn = small_server.conn
    o.delete_all_content(conn)
    first = _patient(conn, "RECYCLED-1")
    second = _patient(conn, "NEWCOMER-2")
    assert o.get_all_ids(conn, o.PATIENTS) == [second] and first != second


@pytest.mark.parametrize("call", [o.is_protected, o.set_protected])
def test_protection_of_an_unknown_patient_raises_not_found(conn_a, call):
    with pytest.raises(o.NotFound) as info:
        call(conn_a, "00000000-00000000-00000000-00000000-00000000")
    assert info.value.status == 404


@pytest.mark.v113
def test_protection_of_an_unknown_patient_raises_not_found_on_1_13(conn_113):
    with pytest.raises(o.NotFound):
        o.is_protected(conn_113, "00000000-00000000-00000000-00000000-00000000")


def test_reconstruct_rebuilds_the_index_from_the_stored_file(small_server):
    """The stored file is replaced on disk behind Orthanc's back: only the index is stale."""
    import io
    import os
    import pydicom
    conn = small_server.conn
    o.delete_all_content(conn)
    data = h.generate_test_dicom_file(8, 8, {"StudyDescription": "BEFORE"})
    instance_id = o.upload(conn, data)[0]
    study_id = o.get_parent_id(conn, o.INSTANCES, instance_id, o.STUDIES)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyDescription = "AFTER"
    uuid = o._get(conn, f"/instances/{instance_id}/attachments/dicom/info")["Uuid"]
    ds.save_as(os.path.join(small_server.dir, "storage", uuid[:2], uuid[2:4], uuid))
    assert o.get_info(conn, o.STUDIES, study_id)["MainDicomTags"]["StudyDescription"] == "BEFORE"
    o.reconstruct(conn, o.STUDIES, study_id)
    assert o.get_info(conn, o.STUDIES, study_id)["MainDicomTags"]["StudyDescription"] == "AFTER"


# ---- files re-encoded on the way out

LOSSLESS_JPEG = "1.2.840.10008.1.2.4.70"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"


def _syntax(data):
    import io
    import pydicom
    return str(pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID)


def _zip_syntaxes(path):
    import zipfile
    with zipfile.ZipFile(path) as archive:
        return {_syntax(archive.read(n)) for n in archive.namelist()
                if not n.endswith("DICOMDIR")}, archive.namelist()


def test_get_file_with_transcode_on_1_10_returns_the_file_re_encoded_and_stores_nothing(conn_a):
    _, _, _, (instance_id, *_) = _upload_study(conn_a, 1, 1)
    original = o.get_file(conn_a, instance_id)
    count = o.get_statistics(conn_a)["CountInstances"]
    data = o.get_file(conn_a, instance_id, transcode=LOSSLESS_JPEG)
    assert _syntax(data) == LOSSLESS_JPEG
    assert o.get_statistics(conn_a)["CountInstances"] == count
    assert o.get_file(conn_a, instance_id) == original


@pytest.mark.v112
def test_get_file_with_transcode_on_1_12_uses_the_transcode_argument(conn_112, count_requests):
    _, _, _, (instance_id, *_) = _upload_study(conn_112, 1, 1)
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


def test_download_file_with_transcode_saves_the_re_encoded_file(conn_a, tmp_path):
    _, _, _, (instance_id, *_) = _upload_study(conn_a, 1, 1)
    path = o.download_file(conn_a, instance_id, tmp_path / "one.dcm", transcode=LOSSLESS_JPEG)
    assert _syntax(open(path, "rb").read()) == LOSSLESS_JPEG


def test_download_instances_with_transcode_asks_the_version_once(conn_a, tmp_path,
                                                                  count_requests):
    _, _, _, instance_ids = _upload_study(conn_a, 2, 2)
    count_requests.clear()
    saved = o.download_instances(conn_a, instance_ids, tmp_path, transcode=LOSSLESS_JPEG)
    assert {_syntax(open(p, "rb").read()) for _, p in saved} == {LOSSLESS_JPEG}
    assert sum(url.endswith("/system") for _, url, _ in count_requests) == 1


def test_download_archive_with_transcode_re_encodes_every_file(conn_a, tmp_path):
    _, study_id, _, _ = _upload_study(conn_a, 2, 1)
    path = o.download_archive(conn_a, o.STUDIES, study_id, tmp_path / "s.zip",
                              transcode=LOSSLESS_JPEG)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG} and len(names) == 2


def test_download_media_of_an_instance_with_transcode_has_a_dicomdir(conn_a, tmp_path):
    _, _, _, (instance_id, *_) = _upload_study(conn_a, 1, 1)
    path = o.download_media(conn_a, o.INSTANCES, instance_id, tmp_path / "m.zip",
                            transcode=LOSSLESS_JPEG)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG} and "DICOMDIR" in names


@pytest.mark.parametrize("media", [False, True])
def test_download_instances_set_with_transcode_and_media(conn_a, tmp_path, media):
    _, study_id, _, _ = _upload_study(conn_a, 1, 2)
    s = o.instances_set_from_study(conn_a, study_id)
    path = o.download_instances_set(conn_a, s, tmp_path / "set.zip", transcode=LOSSLESS_JPEG,
                                    media=media)
    syntaxes, names = _zip_syntaxes(path)
    assert syntaxes == {LOSSLESS_JPEG}
    assert ("DICOMDIR" in names) == media
    assert len([n for n in names if not n.endswith("DICOMDIR")]) == 2
