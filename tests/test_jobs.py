"""Jobs: wait for a job, its failure and timeout, and cancel / pause / resume / resubmit.

A dedicated server runs one job at a time. A C-STORE to a "black hole" modality (a socket that
accepts the connection and never answers) keeps its worker busy for DicomScuTimeout (2 s), so
a job submitted after it stays Pending long enough to be paused, resumed and cancelled.
"""
import socket
import time

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig


@pytest.fixture(scope="module")
def jobs_conn(make_server):
    return make_server("jobs", config={"ConcurrentJobs": 1, "DicomScuTimeout": 2}).conn


@pytest.fixture(scope="module")
def black_hole(jobs_conn):
    """A modality whose socket accepts connections and never answers an association."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    o._put(jobs_conn, "/modalities/blackhole",
           {"AET": "HOLE", "Host": "127.0.0.1", "Port": listener.getsockname()[1]})
    yield "blackhole"
    listener.close()


@pytest.fixture(scope="module")
def closed_port_modality(jobs_conn):
    o._put(jobs_conn, "/modalities/closed",
           {"AET": "CLOSED", "Host": "127.0.0.1", "Port": orthanc_rig.free_port()})
    return "closed"


@pytest.fixture
def instance_id(jobs_conn):
    return o.upload(jobs_conn, h.generate_test_dicom_file(8, 8))[0]


@pytest.fixture
def study_id(jobs_conn, instance_id):
    return o.get_parent_id(jobs_conn, o.INSTANCES, instance_id, o.STUDIES)


def _store_job(conn, modality, instance_id):
    return o._start_job(conn, f"/modalities/{modality}/store", {"Resources": [instance_id]})


@pytest.fixture
def pending_job(jobs_conn, black_hole, instance_id, study_id):
    """A job that waits behind a busy worker: (job id, the blocking job id)."""
    blocker = _store_job(jobs_conn, black_hole, instance_id)
    assert h.wait_until(lambda: o.get_job(jobs_conn, blocker)["State"] == "Running", 10)
    job_id = o._start_job(jobs_conn, f"/studies/{study_id}/anonymize", {})
    yield job_id
    for job in (job_id, blocker):
        if o.get_job(jobs_conn, job)["State"] not in ("Success", "Failure"):
            o.cancel_job(jobs_conn, job)


def test_start_job_returns_the_id_of_a_job_the_server_knows(jobs_conn, study_id):
    job_id = o._start_job(jobs_conn, f"/studies/{study_id}/anonymize", {})
    assert o.get_job(jobs_conn, job_id)["ID"] == job_id


def test_start_job_does_not_mutate_the_body(jobs_conn, study_id):
    body = {"Replace": {"PatientName": "X"}}
    o._start_job(jobs_conn, f"/studies/{study_id}/modify", body)
    assert body == {"Replace": {"PatientName": "X"}}


def test_wait_job_returns_the_final_dict_of_a_successful_job(jobs_conn, study_id):
    job_id = o._start_job(jobs_conn, f"/studies/{study_id}/anonymize", {})
    job = o.wait_job(jobs_conn, job_id, timeout=30)
    assert job["ID"] == job_id and job["State"] == "Success" and job["Progress"] == 100
    assert o.exists(jobs_conn, o.STUDIES, job["Content"]["ID"])


def test_wait_job_reports_the_jobs_progress_up_to_100(jobs_conn, study_id):
    seen = []
    job_id = o._start_job(jobs_conn, f"/studies/{study_id}/anonymize", {})
    o.wait_job(jobs_conn, job_id, timeout=30, polling_interval=0.01,
               progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (100, 100)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_wait_job_raises_job_failed_with_orthancs_error_code_and_description(
        jobs_conn, closed_port_modality, instance_id):
    job_id = _store_job(jobs_conn, closed_port_modality, instance_id)
    with pytest.raises(o.JobFailed) as info:
        o.wait_job(jobs_conn, job_id, timeout=30)
    job = info.value.job
    assert job["ID"] == job_id and job["State"] == "Failure" and job["ErrorCode"] != 0
    message = str(info.value)
    assert job_id in message and f"ErrorCode {job['ErrorCode']}" in message
    assert job["ErrorDescription"] in message
    if job.get("ErrorDetails"):
        assert job["ErrorDetails"] in message


def test_wait_job_raises_orthanc_timeout_past_the_timeout(jobs_conn, pending_job):
    started = time.monotonic()
    with pytest.raises(o.OrthancTimeout) as info:
        o.wait_job(jobs_conn, pending_job, timeout=0.5, polling_interval=0.1)
    assert time.monotonic() - started < 4
    assert isinstance(info.value, TimeoutError)
    assert info.value.job["ID"] == pending_job and pending_job in str(info.value)


def test_get_job_raises_not_found_for_an_unknown_job(jobs_conn):
    with pytest.raises(o.NotFound):
        o.get_job(jobs_conn, "no-such-job")


def test_pause_job_pauses_and_resume_job_resumes_a_pending_job(jobs_conn, pending_job):
    o.pause_job(jobs_conn, pending_job)
    assert o.get_job(jobs_conn, pending_job)["State"] == "Paused"
    o.resume_job(jobs_conn, pending_job)
    assert o.get_job(jobs_conn, pending_job)["State"] in ("Pending", "Running", "Success")


def test_a_resumed_job_runs_to_success(jobs_conn, pending_job):
    o.pause_job(jobs_conn, pending_job)
    o.resume_job(jobs_conn, pending_job)
    assert o.wait_job(jobs_conn, pending_job, timeout=30)["State"] == "Success"


def test_cancel_job_makes_the_job_fail_and_wait_job_says_so(jobs_conn, pending_job):
    o.cancel_job(jobs_conn, pending_job)
    with pytest.raises(o.JobFailed) as info:
        o.wait_job(jobs_conn, pending_job, timeout=10)
    assert info.value.job["State"] == "Failure"


def test_resubmit_job_runs_a_failed_job_again(jobs_conn, closed_port_modality, instance_id):
    job_id = _store_job(jobs_conn, closed_port_modality, instance_id)
    with pytest.raises(o.JobFailed) as first:
        o.wait_job(jobs_conn, job_id, timeout=30)
    time.sleep(0.01)  # CompletionTime has microseconds: the rerun must differ
    o.resubmit_job(jobs_conn, job_id)
    with pytest.raises(o.JobFailed) as second:
        o.wait_job(jobs_conn, job_id, timeout=30)
    assert second.value.job["CompletionTime"] != first.value.job["CompletionTime"]


def test_job_functions_refuse_a_job_id_that_is_not_a_path_segment(jobs_conn):
    for function in (o.get_job, o.cancel_job, o.pause_job, o.resume_job, o.resubmit_job,
                     o.delete_job):
        with pytest.raises(o.OrthancValueError):
            function(jobs_conn, "../system")


def test_anonymize_raises_orthanc_timeout_when_its_job_does_not_finish_in_time(
        jobs_conn, pending_job, study_id):
    with pytest.raises(o.OrthancTimeout) as info:
        o.anonymize(jobs_conn, o.STUDIES, study_id, delete_original=True, timeout=0.5)
    job = info.value.job
    assert job["Type"] == "ResourceModification" and job["ID"] in str(info.value)
    o.cancel_job(jobs_conn, job["ID"])
    assert o.exists(jobs_conn, o.STUDIES, study_id)


# ---- job history, priority and user data

def test_get_jobs_lists_a_job_the_server_ran(jobs_conn, study_id):
    job_id = o.modify_as_job(jobs_conn, o.STUDIES, study_id, replace_tags={"PatientName": "J"},
                             delete_original=False)
    assert job_id in o.get_jobs(jobs_conn)


def test_get_jobs_with_expand_returns_each_jobs_dict(jobs_conn, study_id):
    job_id = o.anonymize_as_job(jobs_conn, o.STUDIES, study_id)
    o.wait_job(jobs_conn, job_id, timeout=30)
    jobs = {job["ID"]: job for job in o.get_jobs(jobs_conn, expand=True)}
    assert jobs[job_id]["State"] == "Success"
    assert jobs[job_id]["Type"] == "ResourceModification"


def test_priority_is_the_jobs_priority_on_the_server(jobs_conn, study_id):
    job_id = o.anonymize_as_job(jobs_conn, o.STUDIES, study_id, priority=7)
    assert o.get_job(jobs_conn, job_id)["Priority"] == 7


def test_a_job_of_higher_priority_runs_before_one_submitted_earlier(
        jobs_conn, black_hole, instance_id, study_id):
    blocker = _store_job(jobs_conn, black_hole, instance_id)
    assert h.wait_until(lambda: o.get_job(jobs_conn, blocker)["State"] == "Running", 10)
    low = o.anonymize_as_job(jobs_conn, o.STUDIES, study_id, priority=0)
    high = o.modality_send_as_job(jobs_conn, black_hole, instance_id, priority=10)
    # the worker is free again once the blocker gives up; the high-priority job goes first
    o.wait_job(jobs_conn, low, timeout=60)
    with pytest.raises(o.JobFailed) as info:
        o.wait_job(jobs_conn, high, timeout=60)
    assert info.value.job["CompletionTime"] < o.get_job(jobs_conn, low)["CompletionTime"]


def test_peer_send_as_job_passes_its_priority(jobs_conn, instance_id):
    o.configure_peer(jobs_conn, "nowhere", f"http://127.0.0.1:{orthanc_rig.free_port()}/")
    job_id = o.peer_send_as_job(jobs_conn, "nowhere", instance_id, priority=3)
    assert o.get_job(jobs_conn, job_id)["Priority"] == 3


def test_delete_job_on_orthanc_1_10_raises_unsupported_by_server(jobs_conn, study_id):
    job_id = o.anonymize_as_job(jobs_conn, o.STUDIES, study_id)
    o.wait_job(jobs_conn, job_id, timeout=30)
    with pytest.raises(o.UnsupportedByServer) as info:
        o.delete_job(jobs_conn, job_id)
    assert info.value.needed == (1, 12, 2) and "1.12.2" in str(info.value)
    assert job_id in o.get_jobs(jobs_conn)


def test_user_data_on_orthanc_1_10_raises_unsupported_by_server_and_starts_no_job(
        jobs_conn, study_id):
    before = set(o.get_jobs(jobs_conn))
    with pytest.raises(o.UnsupportedByServer) as info:
        o.anonymize_as_job(jobs_conn, o.STUDIES, study_id, user_data={"batch": 1})
    assert info.value.needed == (1, 12, 9)
    assert set(o.get_jobs(jobs_conn)) == before


@pytest.mark.v112
def test_user_data_on_orthanc_1_12_7_raises_unsupported_by_server_as_it_would_drop_it(conn_112):
    study_id = _study_on(conn_112)
    before = set(o.get_jobs(conn_112))
    with pytest.raises(o.UnsupportedByServer) as info:
        o.modify(conn_112, o.STUDIES, study_id, replace_tags={"PatientName": "U"},
                 user_data="mine")
    assert info.value.actual == (1, 12, 7)
    assert set(o.get_jobs(conn_112)) == before
    assert o.exists(conn_112, o.STUDIES, study_id)


def _study_on(conn):
    instance_id = o.upload(conn, h.generate_test_dicom_file(8, 8))[0]
    return o.get_parent_id(conn, o.INSTANCES, instance_id, o.STUDIES)


@pytest.mark.v113
def test_user_data_of_a_job_is_visible_in_get_job(conn_113):
    job_id = o.anonymize_as_job(conn_113, o.STUDIES, _study_on(conn_113),
                                user_data={"batch": "b-17", "n": [1, 2]})
    assert o.get_job(conn_113, job_id)["UserData"] == {"batch": "b-17", "n": [1, 2]}


@pytest.mark.v113
def test_a_job_waiting_function_passes_user_data_to_its_job(conn_113):
    marker = {"who": "test_a_job_waiting_function"}
    new_id = o.modify(conn_113, o.STUDIES, _study_on(conn_113),
                      replace_tags={"PatientName": "W"}, user_data=marker, priority=2)
    jobs = [job for job in o.get_jobs(conn_113, expand=True) if job.get("UserData") == marker]
    assert len(jobs) == 1
    assert jobs[0]["Content"]["ID"] == new_id and jobs[0]["Priority"] == 2


@pytest.mark.parametrize("tier", [pytest.param("conn_112", marks=pytest.mark.v112),
                                  pytest.param("conn_113", marks=pytest.mark.v113)])
def test_delete_job_removes_a_finished_job_from_the_history(request, tier):
    conn = request.getfixturevalue(tier)
    job_id = o.anonymize_as_job(conn, o.STUDIES, _study_on(conn))
    o.wait_job(conn, job_id, timeout=30)
    o.delete_job(conn, job_id)
    assert job_id not in o.get_jobs(conn)
    with pytest.raises(o.NotFound):
        o.get_job(conn, job_id)


@pytest.mark.v113
def test_delete_job_raises_not_found_for_an_unknown_job(conn_113):
    with pytest.raises(o.NotFound):
        o.delete_job(conn_113, "no-such-job")


STARTERS = {
    "modify_as_job": lambda c, study: o.modify_as_job(
        c, o.STUDIES, study, replace_tags={"PatientName": "S"}, delete_original=False, **JOB),
    "anonymize_as_job": lambda c, study: o.anonymize_as_job(c, o.STUDIES, study, **JOB),
    "modify_bulk_as_job": lambda c, study: o.modify_bulk_as_job(
        c, o.STUDIES, [study], replace_tags={"PatientName": "B"}, delete_original=False,
        **JOB),
    "anonymize_bulk_as_job": lambda c, study: o.anonymize_bulk_as_job(
        c, o.STUDIES, [study], **JOB),
    "modality_send_as_job": lambda c, study: o.modality_send_as_job(c, "nowhere", study, **JOB),
    "peer_send_as_job": lambda c, study: o.peer_send_as_job(c, "nowhere", study, **JOB),
    "modality_retrieve_as_job C-MOVE": lambda c, study: o.modality_retrieve_as_job(
        c, "nowhere", o.STUDIES, "1.2.3", **JOB),
    "modality_retrieve_as_job C-GET": lambda c, study: o.modality_retrieve_as_job(
        c, "nowhere", o.STUDIES, "1.2.3", method="C-GET", **JOB),
}
JOB = {"priority": 6, "user_data": {"started by": "a test"}}


@pytest.mark.v113
@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_every_job_starter_gives_its_job_the_priority_and_user_data(conn_113, starter):
    nowhere = orthanc_rig.free_port()
    o.configure_modality(conn_113, "nowhere", "NOWHERE", "127.0.0.1", nowhere)
    o.configure_peer(conn_113, "nowhere", f"http://127.0.0.1:{nowhere}/")
    job = o.get_job(conn_113, STARTERS[starter](conn_113, _study_on(conn_113)))
    assert job["Priority"] == 6 and job["UserData"] == {"started by": "a test"}


@pytest.mark.v113
def test_dicomweb_retrieve_keeps_the_priority_and_the_plugin_drops_the_user_data(
        conn_113, server_113):
    """The DICOMweb plugin submits its own jobs and reads only their priority (also for STOW,
    see dicomweb_send_as_job): the retrieve from this server's own DICOMweb API keeps 6."""
    o.rest_put(conn_113, "/dicom-web/servers/self",
               {"Url": server_113.url + "/dicom-web/", "Username": orthanc_rig.USER,
                "Password": orthanc_rig.PASSWORD})
    try:
        uid = o.get_info(conn_113, o.STUDIES, _study_on(conn_113))["MainDicomTags"][
            "StudyInstanceUID"]
        before = set(o.get_jobs(conn_113))
        assert o.dicomweb_retrieve(conn_113, "self", uid, timeout=60, priority=6,
                                   user_data={"started by": "a test"}) == 1
        jobs = [o.get_job(conn_113, j) for j in o.get_jobs(conn_113) if j not in before]
        assert [(job["Type"], job["Priority"], "UserData" in job) for job in jobs] == [
            ("DicomWebWadoRetrieveClient", 6, False)]
    finally:
        o.rest_delete(conn_113, "/dicom-web/servers/self")


@pytest.mark.v113
def test_delete_job_of_a_running_job_raises_not_found_saying_it_is_not_finished(conn_113):
    listener = socket.socket()  # a black hole: the C-STORE job runs until its DICOM timeout
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        o.configure_modality(conn_113, "hole", "HOLE", "127.0.0.1", listener.getsockname()[1])
        job_id = o.modality_send_as_job(conn_113, "hole", _study_on(conn_113))
        assert h.wait_until(lambda: o.get_job(conn_113, job_id)["State"] == "Running", 10)
        with pytest.raises(o.NotFound) as info:
            o.delete_job(conn_113, job_id)
        assert f"job {job_id} is Running" in str(info.value)
        o.cancel_job(conn_113, job_id)
    finally:
        listener.close()
