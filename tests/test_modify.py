"""Modify and anonymize: every level, every option, and the original kept until the copy exists.

Server A has OverwriteInstances true, B keeps the default (false).
"""
import io
import os

import pytest
from pydicom.uid import generate_uid

import orthanc_fn as o
import orthanc_fn_helpers as h


def _patient_tags(conn, study_id):
    return o.get_info(conn, o.STUDIES, study_id)["PatientMainDicomTags"]


def _instance_tags(conn, instance_id):
    return o._get(conn, f"/instances/{instance_id}/simplified-tags")


# ---- anonymize

def test_anonymize_study_keeps_and_replaces_tags_and_keeps_the_original(conn_a, upload_study):
    study_id = upload_study(conn_a, tags={"PatientName": "DOE^JOHN"}).id
    new_id = o.anonymize(conn_a, o.STUDIES, study_id, keep_tags=["PatientName"],
                         replace_tags={"PatientID": "ANON"}, force=True, timeout=60)
    assert new_id != study_id
    assert _patient_tags(conn_a, new_id)["PatientName"] == "DOE^JOHN"
    assert _patient_tags(conn_a, new_id)["PatientID"] == "ANON"
    assert o.exists(conn_a, o.STUDIES, study_id)
    assert o.get_info(conn_a, o.STUDIES, new_id)["AnonymizedFrom"] == study_id


def test_anonymize_with_delete_original_deletes_it_once_the_new_study_exists(conn_a, upload_study):
    study_id = upload_study(conn_a, series=2, instances=2).id
    new_id = o.anonymize(conn_a, o.STUDIES, study_id, keep_tags=["PatientName"],
                         replace_tags={"PatientID": "ANON"}, force=True, delete_original=True,
                         timeout=60)
    assert not o.exists(conn_a, o.STUDIES, study_id)
    assert len(o.get_children_ids(conn_a, o.STUDIES, new_id, o.INSTANCES)) == 4


def test_anonymize_without_options_removes_the_patient_name(conn_a, upload_study):
    study_id = upload_study(conn_a, tags={"PatientName": "DOE^JOHN"}).id
    new_id = o.anonymize(conn_a, o.STUDIES, study_id)
    assert _patient_tags(conn_a, new_id)["PatientName"] != "DOE^JOHN"


@pytest.mark.parametrize("level", [o.PATIENTS, o.SERIES, o.INSTANCES])
def test_anonymize_returns_a_new_resource_of_the_same_level(conn_a, level, upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    orthanc_id = (instance_ids[0] if level == o.INSTANCES
                  else o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], level))
    new_id = o.anonymize(conn_a, level, orthanc_id, replace_tags={"StudyDescription": "ANON"})
    assert new_id != orthanc_id
    info = o.get_info(conn_a, level, new_id)
    assert info["Type"] == {o.PATIENTS: "Patient", o.SERIES: "Series",
                            o.INSTANCES: "Instance"}[level]
    assert o.exists(conn_a, level, orthanc_id)


@pytest.mark.parametrize("level", [o.SERIES, o.INSTANCES])
def test_anonymize_with_delete_original_at_lower_levels_deletes_only_the_original(conn_a, level,
                                                                                  upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    orthanc_id = (instance_ids[0] if level == o.INSTANCES
                  else o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], level))
    new_id = o.anonymize(conn_a, level, orthanc_id, delete_original=True)
    assert o.exists(conn_a, level, new_id) and not o.exists(conn_a, level, orthanc_id)


def _file_with_a_private_tag():
    import pydicom
    dataset = pydicom.dcmread(io.BytesIO(h.generate_test_dicom_file(8, 8)))
    block = dataset.private_block(0x0009, "ORTHANC_FN_TEST", create=True)
    block.add_new(0x10, "LO", "private-value")
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("keep, present", [(True, True), (False, False)])
def test_anonymize_keep_private_tags_decides_whether_private_tags_survive(conn_a, keep,
                                                                          present):
    instance_id = o.upload(conn_a, _file_with_a_private_tag())[0]
    new_id = o.anonymize(conn_a, o.INSTANCES, instance_id, keep_private_tags=keep)
    tags = o._get(conn_a, f"/instances/{new_id}/tags", {"short": ""})
    assert ("0009,1010" in tags) == present


def test_anonymize_as_job_returns_a_job_whose_content_is_the_new_study(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    job_id = o.anonymize_as_job(conn_a, o.STUDIES, study_id, replace_tags={"PatientID": "J"},
                                force=True)
    job = o.wait_job(conn_a, job_id, timeout=60)
    assert job["Content"]["IsAnonymization"] is True
    assert _patient_tags(conn_a, job["Content"]["ID"])["PatientID"] == "J"
    assert o.exists(conn_a, o.STUDIES, study_id)


def test_anonymize_as_job_of_an_instance_runs_a_bulk_job_listing_the_new_instance(conn_a,
                                                                                  upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    job = o.wait_job(conn_a, o.anonymize_as_job(conn_a, o.INSTANCES, instance_ids[0]), 60)
    new = [r["ID"] for r in job["Content"]["Resources"] if r["Type"] == "Instance"]
    assert len(new) == 1 and new[0] != instance_ids[0] and o.exists(conn_a, o.INSTANCES, new[0])


# ---- modify

def test_modify_study_replaces_a_tag_and_deletes_the_original_by_default(conn_a, upload_study):
    study_id = upload_study(conn_a, series=2).id
    new_id = o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyDescription": "NEW"},
                      timeout=60)
    info = o.get_info(conn_a, o.STUDIES, new_id)
    assert info["MainDicomTags"]["StudyDescription"] == "NEW"
    assert info["ModifiedFrom"] == study_id and len(info["Series"]) == 2
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_modify_with_delete_original_false_keeps_both(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    new_id = o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyDescription": "NEW"},
                      delete_original=False)
    assert o.exists(conn_a, o.STUDIES, study_id) and o.exists(conn_a, o.STUDIES, new_id)


def test_modify_removes_the_tags_of_remove_tags(conn_a, upload_study):
    study_id = upload_study(conn_a, instances=1, tags={"StudyDescription": "GONE"}).id
    new_id = o.modify(conn_a, o.STUDIES, study_id, remove_tags=["StudyDescription"])
    new_instance = o.get_children_ids(conn_a, o.STUDIES, new_id, o.INSTANCES)[0]
    assert "StudyDescription" not in _instance_tags(conn_a, new_instance)


def test_modify_that_orthanc_refuses_raises_http_error_and_leaves_the_original(conn_a,
                                                                               upload_study):
    study_id, _, _, _, instance_ids = upload_study(conn_a, tags={"StudyDescription": "ORIGINAL"})
    with pytest.raises(o.HttpError) as info:
        o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyInstanceUID": "1.2.3.4"})
    assert info.value.status == 400 and "Force" in str(info.value)
    assert "Force" in info.value.orthanc["Details"]
    assert o.get_info(conn_a, o.STUDIES, study_id)["MainDicomTags"]["StudyDescription"] == \
        "ORIGINAL"
    assert sorted(o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)) == \
        sorted(instance_ids)


def test_modify_with_force_replaces_the_study_instance_uid(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    uid = generate_uid()
    new_id = o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyInstanceUID": uid},
                      force=True)
    assert o.get_info(conn_a, o.STUDIES, new_id)["MainDicomTags"]["StudyInstanceUID"] == uid
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_modify_keeping_every_uid_rewrites_the_study_in_place_and_loses_nothing(conn_a,
                                                                                upload_study):
    study_id, _, _, _, instance_ids = upload_study(conn_a)
    new_id = o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyDescription": "INPLACE"},
                      keep_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
                      force=True, delete_original=True)
    assert new_id == study_id
    assert sorted(o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)) == \
        sorted(instance_ids)
    for instance_id in instance_ids:  # the files changed (the study's index keeps old tags)
        assert _instance_tags(conn_a, instance_id)["StudyDescription"] == "INPLACE"


@pytest.mark.parametrize("conn_name", ["conn_a", "conn_b"])
def test_modify_keeping_only_the_study_uid_replaces_its_instances_and_deletes_the_originals(
        request, conn_name, upload_study):
    conn = request.getfixturevalue(conn_name)  # with and without OverwriteInstances
    study_id, _, _, _, originals = upload_study(conn, series=2, instances=2)
    same = o.modify(conn, o.STUDIES, study_id, replace_tags={"StudyDescription": "KEPT-UID"},
                    keep_tags=["StudyInstanceUID"], force=True, timeout=60)
    assert same == study_id
    instances = o.get_children_ids(conn, o.STUDIES, study_id, o.INSTANCES)
    assert len(instances) == 4 and not set(instances) & set(originals)
    assert {_instance_tags(conn, i)["StudyDescription"] for i in instances} == {"KEPT-UID"}


def test_modify_patient_needs_force_to_replace_the_patient_id(conn_a, upload_study):
    study_id, _, _, _, instance_ids = upload_study(conn_a)
    patient_id = o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], o.PATIENTS)
    new_id = o.modify(conn_a, o.PATIENTS, patient_id, replace_tags={"PatientID": "NEWPID"},
                      force=True)
    assert o.get_info(conn_a, o.PATIENTS, new_id)["MainDicomTags"]["PatientID"] == "NEWPID"
    assert not o.exists(conn_a, o.PATIENTS, patient_id)


def test_modify_series_returns_the_new_series(conn_a, upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    series_id = o.get_parent_id(conn_a, o.INSTANCES, instance_ids[0], o.SERIES)
    new_id = o.modify(conn_a, o.SERIES, series_id, replace_tags={"SeriesDescription": "S2"})
    assert o.get_info(conn_a, o.SERIES, new_id)["MainDicomTags"]["SeriesDescription"] == "S2"
    assert not o.exists(conn_a, o.SERIES, series_id)


def test_modify_instance_stores_the_modified_instance_and_deletes_the_original(conn_a,
                                                                               upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    new_id = o.modify(conn_a, o.INSTANCES, instance_ids[0],
                      replace_tags={"SeriesDescription": "MODIFIED"})
    assert new_id != instance_ids[0]
    assert _instance_tags(conn_a, new_id)["SeriesDescription"] == "MODIFIED"
    assert not o.exists(conn_a, o.INSTANCES, instance_ids[0])


def test_modify_instance_keeping_its_uid_overwrites_it_where_the_server_allows(conn_a,
                                                                               upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    new_id = o.modify(conn_a, o.INSTANCES, instance_ids[0], keep_tags=["SOPInstanceUID"],
                      replace_tags={"SeriesDescription": "OVER"}, force=True)
    assert new_id == instance_ids[0]
    assert _instance_tags(conn_a, new_id)["SeriesDescription"] == "OVER"


def test_modify_instance_keeping_its_uid_raises_already_stored_where_the_server_keeps_it(
        conn_b, upload_study):
    instance_ids = upload_study(conn_b).instances_ids
    with pytest.raises(o.AlreadyStored) as info:
        o.modify(conn_b, o.INSTANCES, instance_ids[0], keep_tags=["SOPInstanceUID"],
                 replace_tags={"SeriesDescription": "OVER"}, force=True)
    assert "OverwriteInstances" in str(info.value) and info.value.instance_id == instance_ids[0]
    assert _instance_tags(conn_b, instance_ids[0])["SeriesDescription"] != "OVER"


def test_modify_as_job_returns_a_job_id_and_the_job_deletes_the_original(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    job_id = o.modify_as_job(conn_a, o.STUDIES, study_id, replace_tags={"StudyDescription": "J"})
    job = o.wait_job(conn_a, job_id, timeout=60)
    assert o.exists(conn_a, o.STUDIES, job["Content"]["ID"])
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_modify_as_job_of_an_instance_keeps_the_original_when_asked(conn_a, upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    job_id = o.modify_as_job(conn_a, o.INSTANCES, instance_ids[0],
                             replace_tags={"SeriesDescription": "J"}, delete_original=False)
    job = o.wait_job(conn_a, job_id, timeout=60)
    new = [r["ID"] for r in job["Content"]["Resources"] if r["Type"] == "Instance"][0]
    assert _instance_tags(conn_a, new)["SeriesDescription"] == "J"
    assert o.exists(conn_a, o.INSTANCES, instance_ids[0])


def test_modify_raises_not_found_for_an_unknown_study(conn_a):
    with pytest.raises(o.NotFound):
        o.modify(conn_a, o.STUDIES, "00000000-00000000-00000000-00000000-00000000",
                 replace_tags={"StudyDescription": "X"})


def test_modify_does_not_mutate_its_arguments(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    replace, remove = {"StudyDescription": "X"}, ["SeriesDescription"]
    o.modify(conn_a, o.STUDIES, study_id, replace_tags=replace, remove_tags=remove)
    assert replace == {"StudyDescription": "X"} and remove == ["SeriesDescription"]


def test_modify_study_keeping_uids_raises_job_failed_where_the_server_does_not_overwrite(
        conn_b, upload_study):
    study_id, _, _, _, instance_ids = upload_study(conn_b, tags={"StudyDescription": "ORIGINAL"})
    with pytest.raises(o.JobFailed) as info:
        o.modify(conn_b, o.STUDIES, study_id, replace_tags={"StudyDescription": "X"},
                 keep_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
                 force=True, timeout=60)
    assert info.value.job["ErrorCode"] != 0
    for instance_id in instance_ids:
        assert _instance_tags(conn_b, instance_id)["StudyDescription"] == "ORIGINAL"


@pytest.mark.parametrize("remove, present", [((), True), (["SeriesNumber"], False)])
def test_anonymize_remove_tags_removes_tags_anonymization_would_keep(conn_a, remove, present,
                                                                     upload_study):
    instance_ids = upload_study(conn_a).instances_ids
    new_id = o.anonymize(conn_a, o.INSTANCES, instance_ids[0], remove_tags=remove)
    assert ("SeriesNumber" in _instance_tags(conn_a, new_id)) == present


# ---- Orthanc's other options: transcode, permissive, private_creator, dicom_version, labels

LOSSLESS_JPEG = "1.2.840.10008.1.2.4.70"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"


def _transfer_syntax(conn, instance_id):
    """The transfer syntax of the stored file, read back with pydicom."""
    import pydicom
    return str(pydicom.dcmread(io.BytesIO(o.get_file(conn, instance_id))).file_meta
               .TransferSyntaxUID)


def _transfer_syntaxes(conn, level, orthanc_id):
    return {_transfer_syntax(conn, i) for i in o.get_children_ids(conn, level, orthanc_id,
                                                                   o.INSTANCES)}


def test_modify_with_transcode_stores_the_new_study_re_encoded(conn_a, upload_study):
    study_id = upload_study(conn_a, series=1, instances=2).id
    new_id = o.modify(conn_a, o.STUDIES, study_id, replace_tags={"StudyDescription": "TS"},
                      transcode=LOSSLESS_JPEG)
    assert _transfer_syntaxes(conn_a, o.STUDIES, new_id) == {LOSSLESS_JPEG}


def test_modify_instance_with_transcode_stores_the_instance_re_encoded(conn_a, upload_study):
    instance_id, _ = upload_study(conn_a).instances_ids
    new_id = o.modify(conn_a, o.INSTANCES, instance_id, replace_tags={"SeriesNumber": "5"},
                      transcode=LOSSLESS_JPEG)
    assert _transfer_syntax(conn_a, new_id) == LOSSLESS_JPEG
    assert not o.exists(conn_a, o.INSTANCES, instance_id)


def test_anonymize_bulk_with_transcode_stores_the_anonymized_copies_re_encoded(conn_a,
                                                                               upload_study):
    instance_ids = upload_study(conn_a, series=1, instances=2).instances_ids
    result = o.anonymize_bulk(conn_a, o.INSTANCES, instance_ids, transcode=LOSSLESS_JPEG)
    assert len(result.instances) == 2
    assert {_transfer_syntax(conn_a, i) for i in result.instances} == {LOSSLESS_JPEG}


def test_modify_bulk_as_job_with_transcode_re_encodes_in_its_job(conn_a, upload_study):
    study_id = upload_study(conn_a, series=1, instances=1).id
    job = o.wait_job(conn_a, o.modify_bulk_as_job(
        conn_a, o.STUDIES, [study_id], replace_tags={"StudyDescription": "BULK TS"},
        transcode=LOSSLESS_JPEG, delete_original=False), timeout=60)
    new_study, = [r["ID"] for r in job["Content"]["Resources"] if r["Type"] == "Study"]
    assert _transfer_syntaxes(conn_a, o.STUDIES, new_study) == {LOSSLESS_JPEG}


@pytest.mark.v113
def test_modify_with_transcode_to_jpeg_2000_uses_the_gdcm_plugin_on_1_13(conn_113, upload_study):
    study_id = upload_study(conn_113, series=1, instances=1).id
    new_id = o.modify(conn_113, o.STUDIES, study_id, replace_tags={"StudyDescription": "J2K"},
                      transcode=JPEG_2000_LOSSLESS)
    assert _transfer_syntaxes(conn_113, o.STUDIES, new_id) == {JPEG_2000_LOSSLESS}


@pytest.mark.parametrize("version, profile", [("2008", "PS 3.15-2008"),
                                              ("2017c", "PS 3.15-2017c")])
def test_anonymize_with_dicom_version_applies_that_profile(conn_a, version, profile, upload_study):
    instance_id, _ = upload_study(conn_a).instances_ids
    new_id = o.anonymize(conn_a, o.INSTANCES, instance_id, dicom_version=version)
    assert profile in _instance_tags(conn_a, new_id)["DeidentificationMethod"]


def test_anonymize_as_job_passes_dicom_version_and_priority(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    job_id = o.anonymize_as_job(conn_a, o.STUDIES, study_id, dicom_version="2008",
                                priority=4)
    job = o.wait_job(conn_a, job_id, timeout=60)
    assert job["Priority"] == 4
    instance_id = o.get_first_instance_id(conn_a, o.STUDIES, job["Content"]["ID"])
    assert "PS 3.15-2008" in _instance_tags(conn_a, instance_id)["DeidentificationMethod"]


@pytest.fixture(scope="module")
def own_server(make_server):
    """A server of this module's own (its storage is damaged on purpose, and it has no
    storage cache that would hide it), whose dictionary declares the private tag 0009,1001
    (LO) of the creator ORTHANC_FN."""
    return make_server("modopts", config={
        "MaximumStorageCacheSize": 0,
        "Dictionary": {"0009,1001": ["LO", "FnComment", 1, 1, "ORTHANC_FN"]}})


def test_modify_with_private_creator_writes_the_private_tag_with_its_dictionary_vr(own_server,
                                                                                   upload_study):
    import pydicom
    conn = own_server.conn
    instance_id, _ = upload_study(conn).instances_ids
    results = {}
    for creator in (None, "ORTHANC_FN"):
        new_id = o.modify(conn, o.INSTANCES, instance_id, delete_original=False,
                          replace_tags={"0009,1001": "a note"}, private_creator=creator)
        ds = pydicom.dcmread(io.BytesIO(o.get_file(conn, new_id)))
        results[creator] = ds[0x00091001].VR
    assert results == {None: "UN", "ORTHANC_FN": "LO"}


def _study_with_a_lost_file(server, upload_study):
    """A study of two instances, the stored file of one removed from the storage folder."""
    conn = server.conn
    study_id, _, _, _, instance_ids = upload_study(conn, series=1, instances=2)
    uuid = o._get(conn, f"/instances/{instance_ids[0]}/attachments/dicom/info")["Uuid"]
    os.remove(os.path.join(server.dir, "storage", uuid[:2], uuid[2:4], uuid))
    return study_id


@pytest.mark.parametrize("permissive", [False, True])
def test_permissive_decides_whether_an_instance_that_cannot_be_read_fails_the_job(
        own_server, permissive, upload_study):
    conn = own_server.conn
    study_id = _study_with_a_lost_file(own_server, upload_study)
    job_id = o.modify_as_job(conn, o.STUDIES, study_id, replace_tags={"StudyDescription": "P"},
                             permissive=permissive, delete_original=False)
    if not permissive:
        with pytest.raises(o.JobFailed):
            o.wait_job(conn, job_id, timeout=60)
        return
    job = o.wait_job(conn, job_id, timeout=60)
    assert job["Content"]["FailedInstancesCount"] == 1
    assert len(o.get_children_ids(conn, o.STUDIES, job["Content"]["ID"], o.INSTANCES)) == 1


def test_keep_labels_on_orthanc_1_10_raises_unsupported_by_server_and_changes_nothing(conn_a,
                                                                                      upload_study):
    study_id = upload_study(conn_a).id
    studies = set(o.get_all_ids(conn_a, o.STUDIES))
    for call in (o.modify, o.anonymize, o.modify_as_job, o.anonymize_as_job):
        with pytest.raises(o.UnsupportedByServer) as info:
            call(conn_a, o.STUDIES, study_id, keep_labels=True)
        assert info.value.needed == (1, 12, 3)
    assert set(o.get_all_ids(conn_a, o.STUDIES)) == studies


@pytest.mark.v112
@pytest.mark.parametrize("keep", [True, False])
def test_keep_labels_decides_whether_the_modified_study_has_the_labels(conn_112, keep,
                                                                       upload_study):
    study_id = upload_study(conn_112).id
    o.add_label(conn_112, o.STUDIES, study_id, "reviewed")
    new_id = o.modify(conn_112, o.STUDIES, study_id, replace_tags={"StudyDescription": "L"},
                      keep_labels=keep)
    assert o.get_labels(conn_112, o.STUDIES, new_id) == (["reviewed"] if keep else [])


@pytest.mark.v113
def test_anonymize_bulk_keeps_labels_when_asked(conn_113, upload_study):
    study_id = upload_study(conn_113).id
    o.add_label(conn_113, o.STUDIES, study_id, "cohort-a")
    result = o.anonymize_bulk(conn_113, o.STUDIES, [study_id], keep_labels=True)
    assert o.get_labels(conn_113, o.STUDIES, result.studies[0]) == ["cohort-a"]


def test_modify_instances_set_with_transcode_returns_re_encoded_instances(conn_a, upload_study):
    study_id = upload_study(conn_a, series=1, instances=2).id
    s = o.instances_set_from_study(conn_a, study_id)
    modified = o.modify_instances_set(conn_a, s, replace_tags={"SeriesDescription": "SET TS"},
                                      transcode=LOSSLESS_JPEG, priority=1)
    assert len(modified) == 2
    assert {_transfer_syntax(conn_a, i) for i in modified.instances_ids} == {LOSSLESS_JPEG}


# ---- bulk modification ----

def test_modify_bulk_modifies_every_study_and_deletes_the_originals(conn_a, upload_study):
    studies = [upload_study(conn_a, 1, 2).id, upload_study(conn_a, 2, 1).id]
    result = o.modify_bulk(conn_a, o.STUDIES, studies, replace_tags={"StudyDescription": "bulk"})
    assert isinstance(result, o.BulkResult)
    assert len(result.studies) == 2 and len(result.series) == 3 and len(result.instances) == 4
    assert len(result.patients) == 2
    for study_id in result.studies:
        info = o.get_info(conn_a, o.STUDIES, study_id)
        assert info["MainDicomTags"]["StudyDescription"] == "bulk"
    assert not any(o.exists(conn_a, o.STUDIES, s) for s in studies)


def test_anonymize_bulk_keeps_the_originals_and_gives_new_patients(conn_a, upload_study):
    series = upload_study(conn_a, 2, 1, tags={"PatientName": "BULK^ORIGINAL"}).series_ids
    result = o.anonymize_bulk(conn_a, "Series", series)
    assert len(result.series) == 2 and len(result.instances) == 2
    assert all(o.exists(conn_a, o.SERIES, s) for s in series)
    patient = o.get_info(conn_a, o.PATIENTS, result.patients[0])["MainDicomTags"]
    assert patient.get("PatientName") != "BULK^ORIGINAL"


def test_modify_bulk_of_instances_returns_them_and_their_parents(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 2).id
    instances = o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)
    result = o.modify_bulk(conn_a, o.INSTANCES, instances,
                           replace_tags={"SeriesDescription": "renamed"}, delete_original=False)
    assert len(result.instances) == 2 and set(result.instances).isdisjoint(instances)
    assert all(o.exists(conn_a, o.INSTANCES, i) for i in instances)


def test_modify_bulk_as_job_returns_a_job_listing_the_new_resources(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    job_id = o.modify_bulk_as_job(conn_a, o.STUDIES, [study_id],
                                  replace_tags={"StudyDescription": "job"})
    job = o.wait_job(conn_a, job_id, timeout=60)
    types = sorted(r["Type"] for r in job["Content"]["Resources"])
    assert types == ["Instance", "Patient", "Series", "Study"]


def test_anonymize_bulk_as_job_returns_a_job_id(conn_a, upload_study):
    study_id = upload_study(conn_a, 1, 1).id
    job = o.wait_job(conn_a, o.anonymize_bulk_as_job(conn_a, o.STUDIES, study_id), timeout=60)
    assert job["State"] == "Success" and job["Content"]["IsAnonymization"] is True


def test_a_failed_bulk_job_raises_job_failed(conn_b, upload_study):
    study_id = upload_study(conn_b, 1, 2).id
    instances = o.get_children_ids(conn_b, o.STUDIES, study_id, o.INSTANCES)
    # Both results get one SOPInstanceUID: B does not overwrite, so the second store fails.
    with pytest.raises(o.JobFailed) as info:
        o.modify_bulk(conn_b, o.INSTANCES, instances, force=True, delete_original=False,
                      replace_tags={"SOPInstanceUID": "1.2.826.0.1.3680043.8.498.4242"})
    assert info.value.job["State"] == "Failure"
    assert all(o.exists(conn_b, o.INSTANCES, i) for i in instances)


def test_modify_bulk_modifies_a_study_and_deletes_the_original_on_orthanc_112_and_newer(
        conn_new, upload_study):
    study_id = upload_study(conn_new, 1, 2).id
    result = o.modify_bulk(conn_new, o.STUDIES, [study_id], replace_tags={"StudyDescription": "x"})
    assert len(result.studies) == 1 and not o.exists(conn_new, o.STUDIES, study_id)
    info = o.get_info(conn_new, o.STUDIES, result.studies[0])
    assert info["MainDicomTags"]["StudyDescription"] == "x"


def test_modify_keeping_every_uid_with_transcode_re_encodes_the_study_in_place(conn_a,
                                                                               upload_study):
    """Server A has OverwriteInstances: the same study and instance ids come back."""
    study_id, _, _, _, instance_ids = upload_study(conn_a, series=1, instances=2)
    new_id = o.modify(conn_a, o.STUDIES, study_id, force=True, transcode=LOSSLESS_JPEG,
                      keep_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    assert new_id == study_id
    assert sorted(o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)) == \
        sorted(instance_ids)
    assert _transfer_syntaxes(conn_a, o.STUDIES, study_id) == {LOSSLESS_JPEG}
