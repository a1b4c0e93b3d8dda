"""Remote modalities, peers and DICOMweb servers: real associations between real servers.

A and B (Orthanc 1.10) are each other's DICOM modality, Orthanc peer and DICOMweb server,
named "b" on A and "a" on B. Every test makes its own studies (conftest's upload_study: a new
PatientID each), with unique patient names where a query matches on them.
"""
import json
import socket
import time
import uuid

import pytest

import dicom_peers as dp
import orthanc_fn as o
import orthanc_rig


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on."""
    return orthanc_rig.free_port()


@pytest.fixture
def temporary_modality(conn_a):
    """Configure modalities on A under fresh names; delete them after the test."""
    names = []

    def make(aet, host, port, **options):
        name = "tmp-" + uuid.uuid4().hex[:8]
        o.configure_modality(conn_a, name, aet, host, port, **options)
        names.append(name)
        return name

    yield make
    for name in names:
        if name in o.get_modalities(conn_a):
            o.delete_modality(conn_a, name)


# ---- C-STORE, peers, DICOMweb sends

def test_modality_send_stores_the_study_on_the_remote(conn_a, conn_b, upload_study):
    study_id, _, _, _, ids = upload_study(conn_a)
    content = o.modality_send(conn_a, "b", study_id, timeout=60)
    assert content["InstancesCount"] == len(ids) and content["FailedInstancesCount"] == 0
    assert o.exists(conn_b, o.STUDIES, study_id)


def test_modality_send_as_job_returns_a_job_that_wait_job_follows(conn_a, conn_b, upload_study):
    study_id, _, _, _, ids = upload_study(conn_a)
    job_id = o.modality_send_as_job(conn_a, "b", [study_id])
    job = o.wait_job(conn_a, job_id, timeout=60)
    assert job["Type"] == "DicomModalityStore" and job["Content"]["InstancesCount"] == len(ids)
    assert o.exists(conn_b, o.STUDIES, study_id)


def test_modality_send_to_a_closed_port_raises_job_failed_with_orthanc_details(
        conn_a, temporary_modality, closed_port, upload_study):
    name = temporary_modality("NOBODY", "127.0.0.1", closed_port)
    study_id = upload_study(conn_a).id
    with pytest.raises(o.JobFailed) as info:
        o.modality_send(conn_a, name, study_id, timeout=30)
    assert "Connection refused" in str(info.value) and "NOBODY" in str(info.value)
    assert info.value.job["ErrorDetails"]


def test_peer_send_stores_the_study_on_the_peer(conn_a, conn_b, upload_study):
    study_id, _, _, _, ids = upload_study(conn_a)
    o.peer_send(conn_a, "b", study_id, timeout=60)
    assert o.exists(conn_b, o.STUDIES, study_id)
    assert len(o.get_children_ids(conn_b, o.STUDIES, study_id, o.INSTANCES)) == len(ids)


def test_peer_send_as_job_returns_a_job_that_wait_job_follows(conn_a, conn_b, upload_study):
    study_id = upload_study(conn_a).id
    job = o.wait_job(conn_a, o.peer_send_as_job(conn_a, "b", study_id), timeout=60)
    assert job["Type"] == "OrthancPeerStore"
    assert o.exists(conn_b, o.STUDIES, study_id)


def test_dicomweb_send_stores_the_study_on_the_dicomweb_server(conn_a, conn_b, upload_study):
    study_id, _, _, _, ids = upload_study(conn_a)
    content = o.dicomweb_send(conn_a, "b", study_id, timeout=60)
    assert int(content["InstancesCount"]) == len(ids)
    assert o.exists(conn_b, o.STUDIES, study_id)


def test_dicomweb_retrieve_counts_the_instances_it_received(conn_a, conn_b, upload_study):
    study_id, uid, _, _, ids = upload_study(conn_b, 2, 2)
    assert o.dicomweb_retrieve(conn_a, "b", uid, timeout=60) == len(ids)
    assert len(o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)) == len(ids)


def test_dicomweb_retrieve_of_one_series_receives_only_that_series(conn_a, conn_b, upload_study):
    study_id, uid = upload_study(conn_b, 2, 3)[:2]
    series_id = o.get_children_ids(conn_b, o.STUDIES, study_id, o.SERIES)[0]
    series_uid = o.get_info(conn_b, o.SERIES, series_id)["MainDicomTags"]["SeriesInstanceUID"]
    assert o.dicomweb_retrieve(conn_a, "b", uid, series_uid, timeout=60) == 3


def test_dicomweb_retrieve_gives_its_job_the_priority(conn_a, conn_b, upload_study):
    uid = upload_study(conn_b, 1, 2)[1]
    before = set(o.get_jobs(conn_a))
    assert o.dicomweb_retrieve(conn_a, "b", uid, timeout=60, priority=7) == 2
    jobs = [o.get_job(conn_a, job_id) for job_id in o.get_jobs(conn_a) if job_id not in before]
    assert [(job["Priority"], job["State"]) for job in jobs] == [(7, "Success")]


def test_dicomweb_retrieve_with_user_data_on_orthanc_110_raises_before_retrieving(
        conn_a, conn_b, upload_study):
    study_id, uid = upload_study(conn_b, 1, 2)[:2]
    with pytest.raises(o.UnsupportedByServer):
        o.dicomweb_retrieve(conn_a, "b", uid, timeout=60, user_data={"batch": 1})
    assert not o.exists(conn_a, o.STUDIES, study_id)


def test_dicomweb_retrieve_refuses_an_instance_without_its_series(conn_a):
    with pytest.raises(o.OrthancValueError):
        o.dicomweb_retrieve(conn_a, "b", "1.2.3", sop_uid="1.2.3.4.5")


# ---- C-FIND, C-MOVE

def test_modality_query_studies_gets_every_match_in_one_answers_request(
        conn_a, conn_b, count_requests, upload_study):
    prefix = "QRY" + uuid.uuid4().hex[:6].upper()
    uids = {upload_study(conn_b, tags={"PatientName": f"{prefix}^{n}"}).uid for n in range(3)}
    upload_study(conn_b, tags={"PatientName": "OTHER" + prefix})  # must not match
    count_requests.clear()
    seen = count_requests
    answers = o.modality_query_studies(conn_a, "b", {"PatientName": prefix + "^*"})
    assert {a["dicom_id"] for a in answers} == uids
    assert [url.split("?")[0].rsplit("/", 1)[-1] for _, url, _ in seen] == ["query", "answers"]
    for answer in answers:
        assert answer["remote_modality_id"] == "b" and answer["level"] == o.STUDIES
        assert answer["tags"]["PatientName"].startswith(prefix + "^")
        assert answer["tags"]["StudyInstanceUID"] == answer["dicom_id"]


def test_modality_query_at_series_level_returns_series_uids(conn_a, conn_b, upload_study):
    name = "SER" + uuid.uuid4().hex[:6].upper()
    study_id, uid = upload_study(conn_b, 2, tags={"PatientName": name})[:2]
    expected = {o.get_info(conn_b, o.SERIES, s)["MainDicomTags"]["SeriesInstanceUID"]
                for s in o.get_children_ids(conn_b, o.STUDIES, study_id, o.SERIES)}
    answers = o.modality_query(conn_a, "b", "Series", {"StudyInstanceUID": uid})
    assert {a["dicom_id"] for a in answers} == expected
    assert {a["level"] for a in answers} == {o.SERIES}


def test_modality_query_of_nothing_returns_an_empty_list(conn_a):
    assert o.modality_query_studies(conn_a, "b", {"PatientName": "NOBODY" + uuid.uuid4().hex}) == []


def test_modality_retrieve_study_moves_it_into_this_server_and_returns_its_local_id(
        conn_a, conn_b, upload_study):
    name = "MOVE" + uuid.uuid4().hex[:6].upper()
    study_id, uid, _, _, ids = upload_study(conn_b, tags={"PatientName": name})
    answers = o.modality_query_studies(conn_a, "b", {"PatientName": name})
    assert not o.exists(conn_a, o.STUDIES, study_id)
    local_id = o.modality_retrieve_study(conn_a, "b", answers[0]["dicom_id"], timeout=60)
    assert o.get_info(conn_a, o.STUDIES, local_id)["MainDicomTags"]["StudyInstanceUID"] == uid
    assert len(o.get_children_ids(conn_a, o.STUDIES, local_id, o.INSTANCES)) == len(ids)


def test_modality_retrieve_at_series_level_moves_only_that_series(conn_a, conn_b, upload_study):
    study_id, uid = upload_study(conn_b, 2, 2)[:2]
    series_id = o.get_children_ids(conn_b, o.STUDIES, study_id, o.SERIES)[0]
    series_uid = o.get_info(conn_b, o.SERIES, series_id)["MainDicomTags"]["SeriesInstanceUID"]
    o.modality_retrieve(conn_a, "b", o.SERIES,
                        [{"StudyInstanceUID": uid, "SeriesInstanceUID": series_uid}])
    assert o.get_children_ids(conn_a, o.STUDIES, study_id, o.SERIES) == [series_id]


def test_modality_retrieve_is_one_synchronous_call_on_orthanc_110(conn_a, conn_b, count_requests,
                                                                   upload_study):
    study_id, uid = upload_study(conn_b)[:2]
    count_requests.clear()
    seen = count_requests
    o.modality_retrieve(conn_a, "b", o.STUDIES, uid)
    assert [(method, url.rsplit("/", 1)[-1]) for method, url, _ in seen] == [
        ("GET", "system"), ("POST", "move")]
    body = json.loads(seen[1][2]["body"])
    assert "Asynchronous" not in body and seen[1][2]["timeout"].read_timeout > body["Timeout"]
    assert o.exists(conn_a, o.STUDIES, study_id)


def test_modality_retrieve_study_of_an_unknown_uid_raises_with_orthanc_details(conn_a):
    with pytest.raises(o.HttpError) as info:
        o.modality_retrieve_study(conn_a, "b", "1.2.3.4." + str(uuid.uuid4().int)[:20])
    assert "C-MOVE" in str(info.value) and info.value.orthanc["OrthancStatus"] == 9


def test_modality_retrieve_to_an_unknown_target_raises_with_orthanc_details(conn_a, conn_b,
                                                                          upload_study):
    uid = upload_study(conn_b).uid
    with pytest.raises(o.HttpError) as info:
        o.modality_retrieve(conn_a, "b", o.STUDIES, uid, target_aet="NOWHERE")
    assert "C-MOVE" in str(info.value)


def test_modality_retrieve_runs_as_a_job_on_orthanc_112_and_newer(
        server_new, conn_new, server_b, conn_b, count_requests, upload_study):
    o.configure_modality(conn_new, "b", server_b.aet, "127.0.0.1", server_b.dicom_port)
    o.configure_modality(conn_b, server_new.name, server_new.aet, "127.0.0.1",
                         server_new.dicom_port)
    try:
        study_id, uid = upload_study(conn_b)[:2]
        count_requests.clear()
        seen = count_requests
        assert o.modality_retrieve_study(conn_new, "b", uid, timeout=60) == study_id
        move = next(kw for method, url, kw in seen if url.endswith("/modalities/b/move"))
        assert json.loads(move["body"])["Asynchronous"] is True
        assert any("/jobs/" in url for _, url, _ in seen)
    finally:
        o.delete_modality(conn_b, server_new.name)
        o.delete_modality(conn_new, "b")


# ---- C-ECHO and timeouts

def test_modality_echo_is_true_for_a_configured_modality(conn_a):
    assert o.modality_echo(conn_a, "b") is True


def test_modality_echo_is_false_fast_for_a_closed_port(conn_a, temporary_modality, closed_port):
    name = temporary_modality("NOBODY", "127.0.0.1", closed_port)
    start = time.monotonic()
    assert o.modality_echo(conn_a, name) is False
    assert time.monotonic() - start < 5  # a refused connection, not a timeout


def test_modality_echo_raises_not_found_for_an_unknown_name(conn_a):
    with pytest.raises(o.NotFound) as info:
        o.modality_echo(conn_a, "no-such-modality")
    assert "no-such-modality" in str(info.value)


def test_modality_echo_is_false_when_the_remote_accepts_tcp_but_never_answers(
        conn_a, temporary_modality):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        name = temporary_modality("SILENT", "127.0.0.1", silent.getsockname()[1])
        # Orthanc gives up after twice the DICOM timeout (1 s), before our read timeout (7 s)
        assert o.modality_echo(conn_a, name, timeout=2) is False


def test_dicom_calls_read_longer_than_orthancs_two_dicom_waits(conn_a, conn_b, count_requests):
    count_requests.clear()
    seen = count_requests
    o.modality_echo(conn_a, "b")
    o.modality_echo(conn_a, "b", timeout=3)
    o.modality_query_studies(conn_a, "b", {"PatientName": "NOBODY"}, timeout=15)
    posts = [kw for method, _, kw in seen if method == "POST"]
    assert [json.loads(kw["body"])["Timeout"] for kw in posts] == [10, 1, 5]
    for kw in posts:  # Orthanc waits for the answer, then for the release: two timeouts
        assert kw["timeout"].read_timeout >= 2 * json.loads(kw["body"])["Timeout"] + 5


def test_dicomweb_send_as_job_gives_its_job_the_priority(conn_a, upload_study):
    study_id = upload_study(conn_a).id
    job_id = o.dicomweb_send_as_job(conn_a, "b", study_id, priority=7)
    assert o.get_job(conn_a, job_id)["Priority"] == 7
    o.wait_job(conn_a, job_id, timeout=60)


def test_dicomweb_send_as_job_returns_a_stow_job_that_wait_job_follows(conn_a, conn_b,
                                                                      upload_study):
    study_id, _, _, _, ids = upload_study(conn_a)
    job = o.wait_job(conn_a, o.dicomweb_send_as_job(conn_a, "b", study_id), timeout=60)
    assert int(job["Content"]["InstancesCount"]) == len(ids)
    assert o.exists(conn_b, o.STUDIES, study_id)


# ---- configuration at run time

def test_configure_modality_at_run_time_makes_it_usable_until_deleted(
        conn_a, conn_b, server_b, upload_study):
    name = "rt-" + uuid.uuid4().hex[:8]
    o.configure_modality(conn_a, name, server_b.aet, "127.0.0.1", server_b.dicom_port,
                         Manufacturer="Generic")
    try:
        assert o.get_modalities(conn_a)[name]["AET"] == server_b.aet
        assert o.modality_echo(conn_a, name)
        study_id = upload_study(conn_a).id
        o.modality_send(conn_a, name, study_id, timeout=60)
        assert o.exists(conn_b, o.STUDIES, study_id)
    finally:
        o.delete_modality(conn_a, name)
    assert name not in o.get_modalities(conn_a)
    with pytest.raises(o.NotFound):
        o.modality_echo(conn_a, name)


def test_configure_peer_at_run_time_makes_it_usable_until_deleted(conn_a, conn_b, server_b,
                                                                  upload_study):
    name = "rt-" + uuid.uuid4().hex[:8]
    o.configure_peer(conn_a, name, server_b.url, orthanc_rig.USER, orthanc_rig.PASSWORD)
    try:
        peer = o.get_peers(conn_a)[name]
        assert peer["Url"].rstrip("/") == server_b.url and peer["Username"] == orthanc_rig.USER
        study_id = upload_study(conn_a).id
        o.peer_send(conn_a, name, study_id, timeout=60)
        assert o.exists(conn_b, o.STUDIES, study_id)
    finally:
        o.delete_peer(conn_a, name)
    assert name not in o.get_peers(conn_a)
    with pytest.raises(o.NotFound):
        o.peer_send_as_job(conn_a, name, study_id)


def test_get_modalities_and_get_peers_list_the_rig_wiring(conn_a, server_b):
    assert o.get_modalities(conn_a)["b"]["Port"] == server_b.dicom_port
    assert o.get_peers(conn_a)["b"]["Url"].rstrip("/") == server_b.url


# ---- worklists

def test_modality_find_worklist_returns_the_matching_worklists(
        make_server, server_a, conn_a, temporary_modality, tmp_path):
    folder = tmp_path / "worklists"
    folder.mkdir()
    for file, name, accession in (("one", "WL^ONE", "ACC1"), ("two", "WL^TWO", "ACC2"),
                                  ("other", "OTHER^X", "ACC3")):
        dp.write_dataset(dp.worklist_dataset(name, accession, server_a.aet),
                         str(folder / f"{file}.wl"))
    server = make_server("wl" + uuid.uuid4().hex[:6], plugins=("libModalityWorklists.so",),
                         config={"Worklists": {"Enable": True, "Database": str(folder)},
                                 "DicomModalities": {"a": server_a.as_modality()}})
    name = temporary_modality(server.aet, "127.0.0.1", server.dicom_port)
    answers = o.modality_find_worklist(conn_a, name, {
        "PatientName": "WL^*", "AccessionNumber": "",
        "ScheduledProcedureStepSequence": [{"Modality": "CT"}]})
    assert sorted(a["AccessionNumber"] for a in answers) == ["ACC1", "ACC2"]
    assert answers[0]["ScheduledProcedureStepSequence"] == [{"Modality": "CT"}]
