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


def test_get_children_ids_returns_ids_on_orthanc_112_and_newer_too(conn_new):
    _, study_id, _, instance_ids = _upload_study(conn_new, 2, 2)
    children = o.get_children_ids(conn_new, o.STUDIES, study_id, o.INSTANCES)
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


BAD_IDS = ["../system", "a/b", "..", ".", "x?y=1", "x#y", "%2e%2e", "a\\b", "", "a\nb"]

CALLS = {
    "get_info": lambda c, i: o.get_info(c, o.STUDIES, i),
    "get_parent_id": lambda c, i: o.get_parent_id(c, o.SERIES, i, o.STUDIES),
    "get_children_ids": lambda c, i: o.get_children_ids(c, o.STUDIES, i, o.SERIES),
    "delete": lambda c, i: o.delete(c, o.STUDIES, i),
    "delete_list": lambda c, i: o.delete(c, o.STUDIES, ["ok-id", i]),
    "get_tags": lambda c, i: o.get_tags(c, i),
    "get_file": lambda c, i: o.get_file(c, i),
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
