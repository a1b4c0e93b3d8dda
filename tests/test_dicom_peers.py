"""Orthanc talking to third-party DICOM peers: pynetdicom SCPs and DCMTK's storescp / wlmscpfs.

Each test starts its own peers on free loopback ports (``tests/rig/dicom_peers.py``), registers
them in Orthanc at run time with ``configure_modality`` and removes them at the end. A test
with a faulty peer (one that rejects the association, one that accepts and never answers) runs
under a watchdog and checks that the call ended before orthanc_fn's own read timeout, with
Orthanc's answer (False from ``modality_echo``, Orthanc's typed error elsewhere).
"""
import contextlib
import os
import signal
import time
import uuid

import pytest

import dicom_peers as dp
import orthanc_fn as o
import orthanc_fn_helpers as h

WATCHDOG = 120  # s: far above any bound below; a hung call fails the test instead of the run
ECHO_READ_TIMEOUT = 25  # s: modality_echo's HTTP read timeout by default (2 x 10 s + 5 s)


class _Stopwatch:
    seconds = None


@contextlib.contextmanager
def watchdog(label, seconds=WATCHDOG):
    """Fail the block if it lasts more than ``seconds``; the stopwatch says how long it took."""
    def expired(signum, frame):
        raise AssertionError(f"watchdog: {label} still running after {seconds} s")

    watch = _Stopwatch()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    start = time.monotonic()
    try:
        yield watch
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        watch.seconds = time.monotonic() - start
        print(f"\n[timing] {label}: {watch.seconds:.1f} s")


def raises_in_time(error, bound, label, function, *args, **kwargs):
    """Call ``function`` under the watchdog: it must raise ``error`` within ``bound`` s."""
    with watchdog(label) as watch:
        with pytest.raises(error) as info:
            function(*args, **kwargs)
    assert watch.seconds < bound
    return info.value


def _name(prefix):
    return f"{prefix}^{uuid.uuid4().hex[:8].upper()}"


def _archive(patient_name=None, series=2, instances=2, **tags):
    """The datasets of one new study (for a peer's archive)."""
    tags["PatientName"] = patient_name or _name("PEER")
    files = h.generate_test_study(series=series, instances=instances, tags=tags)
    return [dp.read_dataset(f) for f in files]


def _uids(datasets, keyword):
    return {str(ds[keyword].value) for ds in datasets}


@pytest.fixture
def peer(server_a):
    """``peer(datasets, behaviour=..., conn=..., servers=...)``: a pynetdicom SCP known to
    ``conn`` (default server A) as a modality; ``servers`` are C-MOVE destinations besides A."""
    made = []

    def make(datasets=(), *, behaviour="answer", worklist=(), conn=None, servers=()):
        conn = conn or server_a.conn
        aet = "PY" + uuid.uuid4().hex[:10].upper()
        destinations = {s.aet: ("127.0.0.1", s.dicom_port) for s in (server_a, *servers)}
        scp = dp.PynetdicomPeer(aet, datasets=datasets, worklist=worklist,
                                destinations=destinations, behaviour=behaviour)
        scp.name = "peer-" + aet.lower()
        made.append((scp, conn))
        o.configure_modality(conn, scp.name, aet, "127.0.0.1", scp.port)
        return scp

    yield make
    for scp, conn in made:
        scp.stop()
        o.delete_modality(conn, scp.name)


# ---- C-ECHO

def test_echo_to_a_pynetdicom_peer_is_true(conn_a, peer):
    scp = peer()
    assert o.modality_echo(conn_a, scp.name) is True
    assert scp.requests == ["C-ECHO"]


def test_echo_to_a_peer_that_rejects_the_association_is_false(conn_a, peer):
    scp = peer(behaviour="reject")
    with watchdog("echo, rejected association") as watch:
        assert o.modality_echo(conn_a, scp.name) is False
    assert scp.requests == []
    assert watch.seconds < ECHO_READ_TIMEOUT


def test_echo_to_a_peer_that_never_answers_is_false_before_our_read_timeout(conn_a, peer):
    # the default timeout: Orthanc waits 10 s for the echo, 10 s for the release, then answers
    scp = peer(behaviour="hang")
    with watchdog("echo, hung peer, default timeout") as watch:
        assert o.modality_echo(conn_a, scp.name) is False
    assert scp.requests == ["C-ECHO"]
    assert watch.seconds < ECHO_READ_TIMEOUT


# ---- C-FIND

def test_query_studies_on_a_peer_matches_a_wildcard(conn_a, peer):
    prefix = "WILD" + uuid.uuid4().hex[:6].upper()
    one, two = _archive(prefix + "^ONE"), _archive(prefix + "^TWO")
    scp = peer(one + two + _archive("OTHER^" + prefix))
    answers = o.modality_query_studies(conn_a, scp.name, {"PatientName": prefix + "^*"})
    assert {a["dicom_id"] for a in answers} == _uids(one + two, "StudyInstanceUID")
    assert {a["tags"]["PatientName"] for a in answers} == {prefix + "^ONE", prefix + "^TWO"}


def test_query_patients_on_a_peer_returns_one_answer_per_patient(conn_a, peer):
    prefix = "PAT" + uuid.uuid4().hex[:6].upper()
    one = _archive(prefix + "^ONE", series=1, instances=2)
    scp = peer(one + _archive(prefix + "^TWO", series=1, instances=1))
    answers = o.modality_query(conn_a, scp.name, o.PATIENTS, {"PatientName": prefix + "?*"})
    assert sorted(a["tags"]["PatientName"] for a in answers) == [prefix + "^ONE", prefix + "^TWO"]
    assert str(one[0].PatientID) in {a["dicom_id"] for a in answers}
    assert scp.queries[-1].QueryRetrieveLevel == "PATIENT"


def test_query_studies_on_a_peer_matches_a_date_range(conn_a, peer):
    name = _name("DATES")
    old, new = _archive(name, StudyDate="20200115"), _archive(name, StudyDate="20250601")
    scp = peer(old + new)
    answers = o.modality_query_studies(conn_a, scp.name,
                                       {"PatientName": name, "StudyDate": "20240101-20251231"})
    assert [a["dicom_id"] for a in answers] == [str(new[0].StudyInstanceUID)]
    assert answers[0]["tags"]["StudyDate"] == "20250601"


def test_query_series_on_a_peer_returns_the_series_of_the_study(conn_a, peer):
    study = _archive(series=3, instances=1)
    scp = peer(study + _archive())
    answers = o.modality_query(conn_a, scp.name, o.SERIES,
                               {"StudyInstanceUID": str(study[0].StudyInstanceUID)})
    assert {a["dicom_id"] for a in answers} == _uids(study, "SeriesInstanceUID")
    assert {a["level"] for a in answers} == {o.SERIES}


def test_query_instances_on_a_peer_returns_the_sop_instance_uids_of_the_series(conn_a, peer):
    study = _archive(series=2, instances=3)
    series_uid = str(study[0].SeriesInstanceUID)
    scp = peer(study)
    answers = o.modality_query(conn_a, scp.name, o.INSTANCES, {
        "StudyInstanceUID": str(study[0].StudyInstanceUID), "SeriesInstanceUID": series_uid})
    expected = {str(ds.SOPInstanceUID) for ds in study if ds.SeriesInstanceUID == series_uid}
    assert {a["dicom_id"] for a in answers} == expected and len(expected) == 3
    assert scp.queries[-1].QueryRetrieveLevel == "IMAGE"


def test_query_with_normalize_false_returns_a_tag_outside_orthancs_main_tags(conn_a, peer):
    name = _name("NORM")
    scp = peer(_archive(name, Manufacturer="ACME"))
    query = {"PatientName": name, "Manufacturer": ""}  # not a study-level main tag
    normalized = o.modality_query_studies(conn_a, scp.name, query)
    raw = o.modality_query_studies(conn_a, scp.name, query, normalize=False)
    assert "Manufacturer" not in normalized[0]["tags"]
    assert raw[0]["tags"]["Manufacturer"] == "ACME"


def test_query_keeps_a_latin1_name_under_orthancs_default_encoding(conn_a, peer):
    name = "MÜLLER^JÜRGEN" + uuid.uuid4().hex[:4].upper()
    scp = peer(_archive(name, SpecificCharacterSet="ISO_IR 192"))
    answers = o.modality_query_studies(conn_a, scp.name, {"PatientName": name})
    assert [a["tags"]["PatientName"] for a in answers] == [name]


def test_query_loses_a_name_outside_latin1_under_orthancs_default_encoding(conn_a, peer):
    # Orthanc re-encodes C-FIND answers to its DefaultEncoding (Latin1): Greek is dropped
    marker = _name("GREEK")
    scp = peer(_archive("ΩΜΕΓΑ^ΔΕΛΤΑ", SpecificCharacterSet="ISO_IR 192",
                        AccessionNumber=marker[-8:]))
    answers = o.modality_query_studies(conn_a, scp.name,
                                       {"AccessionNumber": marker[-8:], "PatientName": ""})
    assert len(answers) == 1
    assert answers[0]["tags"]["PatientName"] == "^"  # what 1.10.1 and 1.13.0 answer


def test_query_for_a_name_outside_latin1_matches_nothing_under_orthancs_default_encoding(
        conn_a, peer):
    scp = peer(_archive("ΩΜΕΓΑ^ΔΕΛΤΑ", SpecificCharacterSet="ISO_IR 192"))
    query = {"PatientName": "ΩΜΕΓΑ^ΔΕΛΤΑ"}
    assert o.modality_query_studies(conn_a, scp.name, query) == []
    assert scp.requests == ["C-FIND"]  # the peer was asked, with a name it cannot match


def test_query_keeps_any_name_on_a_server_with_default_encoding_utf8(make_server, peer):
    server = make_server("utf8" + uuid.uuid4().hex[:6], config={"DefaultEncoding": "Utf8"})
    names = ["ΩΜΕΓΑ^ΔΕΛΤΑ", "山田^太郎", "MÜLLER^JÜRGEN"]
    scp = peer([ds for n in names for ds in _archive(n, SpecificCharacterSet="ISO_IR 192")],
               conn=server.conn)
    for name in names:
        answers = o.modality_query_studies(server.conn, scp.name, {"PatientName": name})
        assert [a["tags"]["PatientName"] for a in answers] == [name]


def test_query_to_a_peer_that_rejects_the_association_raises_orthancs_error(conn_a, peer):
    scp = peer(behaviour="reject")
    error = raises_in_time(o.HttpError, 120, "query, rejected association",
                           o.modality_query_studies, conn_a, scp.name, {"PatientName": "*"})
    assert error.orthanc["OrthancStatus"] == 9 and "Rejected" in str(error)


def test_query_to_a_peer_that_never_answers_raises_orthancs_error_not_a_timeout(conn_a, peer):
    scp = peer(behaviour="hang")
    error = raises_in_time(o.HttpError, 15, "query, hung peer, timeout=15",
                           o.modality_query_studies, conn_a, scp.name, {"PatientName": "*"},
                           timeout=15)
    assert error.orthanc["OrthancStatus"] == 9 and "C-FIND" in str(error)
    assert scp.requests == ["C-FIND"]


# ---- C-MOVE (the peer C-STOREs back to Orthanc)

def test_retrieve_study_by_c_move_from_a_peer_stores_every_instance_here(empty_a, peer):
    study = _archive(series=2, instances=2)
    scp = peer(study + _archive())
    study_id = o.modality_retrieve_study(empty_a, scp.name, str(study[0].StudyInstanceUID),
                                         timeout=60)
    instances = o.get_children_ids(empty_a, o.STUDIES, study_id, o.INSTANCES)
    assert {o.get_simplified_tags(empty_a, i)["SOPInstanceUID"] for i in instances} == \
        _uids(study, "SOPInstanceUID")
    assert scp.requests == ["C-MOVE"]


def test_retrieve_one_series_by_a_study_series_tuple_moves_only_that_series(empty_a, peer):
    study = _archive(series=2, instances=2)
    scp = peer(study)
    wanted = (str(study[0].StudyInstanceUID), str(study[0].SeriesInstanceUID))
    o.modality_retrieve(empty_a, scp.name, o.SERIES, wanted, timeout=60)
    series = o.get_all_ids(empty_a, o.SERIES)
    assert [o.get_info(empty_a, o.SERIES, s)["MainDicomTags"]["SeriesInstanceUID"]
            for s in series] == [wanted[1]]


def test_retrieve_with_one_dict_identifier_sends_one_c_move_for_one_instance(empty_a, peer):
    study = _archive(series=1, instances=3)
    scp = peer(study)
    target = study[1]
    o.modality_retrieve(empty_a, scp.name, o.INSTANCES, {
        "StudyInstanceUID": str(target.StudyInstanceUID),
        "SeriesInstanceUID": str(target.SeriesInstanceUID),
        "SOPInstanceUID": str(target.SOPInstanceUID)}, timeout=60)
    assert scp.requests == ["C-MOVE"]
    (instance,) = o.get_all_ids(empty_a, o.INSTANCES)
    assert o.get_simplified_tags(empty_a, instance)["SOPInstanceUID"] == target.SOPInstanceUID


def test_orthanc_itself_refuses_a_bare_series_uid_in_a_c_move(conn_a, peer):
    # why modality_retrieve refuses bare UIDs below the study before sending anything
    study = _archive(series=1, instances=1)
    scp = peer(study)
    with pytest.raises(o.HttpError) as info:
        o._post(conn_a, f"/modalities/{scp.name}/move", {
            "Level": "Series",
            "Resources": [{"SeriesInstanceUID": str(study[0].SeriesInstanceUID)}]})
    assert info.value.status == 400 and info.value.orthanc["OrthancStatus"] == 8
    assert scp.requests == []  # refused before any association


def test_retrieve_refuses_a_bare_series_uid_before_any_request():
    nowhere = o.Connection("http://127.0.0.1:9")  # any request would raise a connection error
    with pytest.raises(o.OrthancValueError) as info:
        o.modality_retrieve(nowhere, "pacs", o.SERIES, "1.2.3.4")
    assert "StudyInstanceUID" in str(info.value) and "tuple" in str(info.value)
    with pytest.raises(o.OrthancValueError):
        o.modality_retrieve(nowhere, "pacs", o.INSTANCES, [{"SOPInstanceUID": "1.2.3.4.5"}])
    with pytest.raises(o.OrthancValueError):
        o.modality_retrieve(nowhere, "pacs", o.SERIES, ("1.2", "1.2.3", "1.2.3.4"))


def test_c_get_refuses_a_target_aet_before_any_request():
    with pytest.raises(o.OrthancValueError):
        o.modality_retrieve(o.Connection("http://127.0.0.1:9"), "pacs", o.STUDIES, "1.2",
                            target_aet="OTHER", method="C-GET")


def test_retrieve_from_a_peer_that_never_answers_raises_orthancs_error(conn_a, peer):
    scp = peer(behaviour="hang")
    error = raises_in_time(o.HttpError, 9, "C-MOVE on Orthanc 1.10 (synchronous), hung peer, "
                           "timeout=9", o.modality_retrieve, conn_a, scp.name, o.STUDIES,
                           "1.2.3.4", timeout=9)
    assert error.orthanc["OrthancStatus"] == 9 and "C-MOVE" in str(error)
    assert scp.requests == ["C-MOVE"]


def test_retrieve_from_a_peer_that_rejects_the_association_raises_orthancs_error(conn_a, peer):
    scp = peer(behaviour="reject")
    error = raises_in_time(o.HttpError, 15, "C-MOVE, rejected association",
                           o.modality_retrieve, conn_a, scp.name, o.STUDIES, "1.2.3.4",
                           timeout=15)
    assert error.orthanc["OrthancStatus"] == 9 and "Rejected" in str(error)


# ---- C-GET (Orthanc >= 1.12.6)

@pytest.mark.v112
def test_retrieve_study_by_c_get_from_a_peer_stores_it_on_orthanc_112(conn_112, peer):
    study = _archive(series=2, instances=2)
    scp = peer(study, conn=conn_112)
    study_id = o.modality_retrieve_study(conn_112, scp.name, str(study[0].StudyInstanceUID),
                                         method="C-GET", timeout=60)
    assert len(o.get_children_ids(conn_112, o.STUDIES, study_id, o.INSTANCES)) == len(study)
    assert scp.requests == ["C-GET"]


@pytest.mark.v113
def test_c_get_from_a_peer_that_never_answers_fails_with_orthancs_error_on_orthanc_113(
        conn_113, peer):
    scp = peer(behaviour="hang", conn=conn_113)
    error = raises_in_time(o.JobFailed, 9, "C-GET job on Orthanc 1.13, hung peer, timeout=9",
                           o.modality_retrieve, conn_113, scp.name, o.STUDIES, "1.2.3.4",
                           method="C-GET", timeout=9)
    assert error.job["Type"] == "DicomGetScu" and "C-GET" in str(error)
    assert scp.requests == ["C-GET"]


@pytest.mark.v112
def test_c_get_of_a_study_from_a_hung_peer_on_orthanc_112_raises_that_it_did_not_arrive(
        conn_112, peer):
    # Orthanc 1.12.7 ends this C-GET job in Success (1.13 fails it): the study's absence shows
    scp = peer(behaviour="hang", conn=conn_112)
    error = raises_in_time(o.OrthancError, 9, "C-GET of a study on Orthanc 1.12, hung peer, "
                           "timeout=9", o.modality_retrieve_study, conn_112, scp.name,
                           "1.2.3.4", method="C-GET", timeout=9)
    assert type(error) is o.OrthancError and "C-GET of study 1.2.3.4" in str(error)
    assert scp.requests == ["C-GET"]


@pytest.fixture
def v112_and_v113(server_112, server_113):
    """Orthanc 1.12 and 1.13 as each other's modality ("v113" on 1.12, "v112" on 1.13)."""
    o.delete_all_content(server_112.conn)
    o.delete_all_content(server_113.conn)
    o.configure_modality(server_112.conn, "v113", server_113.aet, "127.0.0.1",
                         server_113.dicom_port)
    o.configure_modality(server_113.conn, "v112", server_112.aet, "127.0.0.1",
                         server_112.dicom_port)
    yield server_112.conn, server_113.conn
    o.delete_modality(server_112.conn, "v113")
    o.delete_modality(server_113.conn, "v112")


@pytest.mark.v112
@pytest.mark.v113
def test_c_get_between_orthanc_112_and_113_keeps_the_instance_ids(v112_and_v113, upload_study):
    conn_112, conn_113 = v112_and_v113
    study = upload_study(conn_113, series=2, instances=2)
    assert o.modality_retrieve_study(conn_112, "v113", study.uid, method="C-GET",
                                     timeout=60) == study.id
    assert sorted(o.get_children_ids(conn_112, o.STUDIES, study.id, o.INSTANCES)) == \
        sorted(study.instances_ids)


@pytest.mark.v112
@pytest.mark.v113
def test_c_get_as_job_on_orthanc_113_lists_the_received_instance_ids(v112_and_v113,
                                                                    upload_study):
    conn_112, conn_113 = v112_and_v113
    study = upload_study(conn_112, series=2, instances=2)
    job_id = o.modality_retrieve_as_job(conn_113, "v112", o.STUDIES, study.uid, method="C-GET")
    job = o.wait_job(conn_113, job_id, timeout=60)
    assert job["Type"] == "DicomGetScu"
    assert sorted(job["Content"]["Details"][0]["ReceivedInstancesIds"]) == \
        sorted(study.instances_ids)


@pytest.mark.v112
@pytest.mark.v113
def test_c_move_as_job_on_orthanc_112_moves_the_series_it_names(v112_and_v113, upload_study):
    conn_112, conn_113 = v112_and_v113
    study = upload_study(conn_113, series=2, instances=2)
    series_id = study.series_ids[0]
    series_uid = o.get_info(conn_113, o.SERIES, series_id)["MainDicomTags"]["SeriesInstanceUID"]
    job_id = o.modality_retrieve_as_job(conn_112, "v113", o.SERIES, [(study.uid, series_uid)])
    assert o.wait_job(conn_112, job_id, timeout=60)["Type"] == "DicomMoveScu"
    assert o.get_all_ids(conn_112, o.SERIES) == [series_id]


def test_c_get_on_orthanc_110_raises_unsupported_by_server(conn_a):
    with pytest.raises(o.UnsupportedByServer) as info:
        o.modality_retrieve(conn_a, "b", o.STUDIES, "1.2.3", method="C-GET")
    assert info.value.needed == (1, 12, 6) and "1.12.6" in str(info.value)
    with pytest.raises(o.UnsupportedByServer):
        o.modality_retrieve_as_job(conn_a, "b", o.STUDIES, "1.2.3", method="C-GET")


def test_retrieve_with_user_data_on_orthanc_110_raises_unsupported_by_server_before_moving(
        conn_a, peer):
    scp = peer(_archive())
    with pytest.raises(o.UnsupportedByServer) as info:
        o.modality_retrieve(conn_a, scp.name, o.STUDIES, "1.2.3", user_data={"batch": 1})
    assert info.value.needed == (1, 12, 9)
    assert scp.requests == []


def test_retrieve_as_job_on_orthanc_110_raises_unsupported_by_server(conn_a):
    with pytest.raises(o.UnsupportedByServer) as info:
        o.modality_retrieve_as_job(conn_a, "b", o.STUDIES, "1.2.3")
    assert info.value.needed == (1, 11, 1) and "1.11.1" in str(info.value)


# ---- C-STORE to third-party storage peers

def test_modality_send_to_a_pynetdicom_peer_delivers_every_instance(empty_a, peer,
                                                                    upload_study):
    study = upload_study(empty_a, series=2, instances=2)
    scp = peer()
    content = o.modality_send(empty_a, scp.name, study.id, timeout=60)
    assert content["InstancesCount"] == 4 and content["FailedInstancesCount"] == 0
    sent = {o.get_simplified_tags(empty_a, i)["SOPInstanceUID"] for i in study.instances_ids}
    assert {str(ds.SOPInstanceUID) for ds in scp.stored} == sent


def test_modality_send_to_a_peer_that_rejects_the_association_raises_job_failed(
        conn_a, peer, upload_study):
    study = upload_study(conn_a, series=1, instances=1)
    scp = peer(behaviour="reject")
    error = raises_in_time(o.JobFailed, 60, "C-STORE, rejected association",
                           o.modality_send, conn_a, scp.name, study.id, timeout=60)
    assert "Rejected" in str(error)


def test_modality_send_to_dcmtk_storescp_writes_every_instance(empty_a, tmp_path,
                                                              upload_study):
    study = upload_study(empty_a, series=2, instances=2)
    with dp.DcmtkPeer.storescp(tmp_path) as scp:
        o.configure_modality(empty_a, "storescp", "STORESCP", "127.0.0.1", scp.port)
        try:
            o.modality_send(empty_a, "storescp", study.id, timeout=60)
        finally:
            o.delete_modality(empty_a, "storescp")
        received = scp.received()
    sent = {o.get_simplified_tags(empty_a, i)["SOPInstanceUID"] for i in study.instances_ids}
    assert {str(dp.read_dataset((tmp_path / f).read_bytes()).SOPInstanceUID)
            for f in received} == sent


# ---- worklists (C-FIND MWL)

_WORKLIST_QUERY = {"PatientName": "", "AccessionNumber": "",
                   "ScheduledProcedureStepSequence": [{"Modality": "CT"}]}


def test_find_worklist_on_a_pynetdicom_peer_returns_the_matching_items(conn_a, peer):
    items = [dp.worklist_dataset("WL^ONE", "A1", "X"), dp.worklist_dataset("WL^TWO", "A2", "X"),
             dp.worklist_dataset("WL^MR", "A3", "X", modality="MR")]
    scp = peer(worklist=items)
    answers = o.modality_find_worklist(conn_a, scp.name, _WORKLIST_QUERY)
    assert sorted(a["AccessionNumber"] for a in answers) == ["A1", "A2"]


def test_find_worklist_on_dcmtk_wlmscpfs_returns_the_matching_items(conn_a, tmp_path):
    with dp.DcmtkPeer.wlmscpfs(tmp_path / "wl") as scp:
        for n, (name, modality) in enumerate([("WL^ONE", "CT"), ("WL^TWO", "CT"),
                                              ("WL^MR", "MR")]):
            dp.write_dataset(dp.worklist_dataset(name, f"D{n}", "X", modality=modality),
                             os.path.join(scp.worklist_folder, f"item{n}.wl"))
        o.configure_modality(conn_a, "wlmscpfs", scp.aet, "127.0.0.1", scp.port)
        try:
            answers = o.modality_find_worklist(conn_a, "wlmscpfs", _WORKLIST_QUERY)
        finally:
            o.delete_modality(conn_a, "wlmscpfs")
    assert sorted(a["AccessionNumber"] for a in answers) == ["D0", "D1"]
    assert answers[0]["ScheduledProcedureStepSequence"][0]["Modality"] == "CT"


def test_find_worklist_on_a_peer_that_never_answers_raises_orthancs_error(conn_a, peer):
    scp = peer(behaviour="hang")
    error = raises_in_time(o.HttpError, 9, "find-worklist, hung peer, timeout=9",
                           o.modality_find_worklist, conn_a, scp.name, _WORKLIST_QUERY,
                           timeout=9)
    assert error.orthanc["OrthancStatus"] == 9 and "C-FIND" in str(error)
    assert scp.requests == ["C-FIND"]
