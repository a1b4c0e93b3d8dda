"""Reliability against real Orthanc servers: restarts, stale sockets, hangs, bad input, threads.

Every fault test is bounded in time by a watchdog thread: a hang fails the test, it never
blocks the suite. The whole file runs in well under two minutes.
"""
import base64
import concurrent.futures
import hashlib
import http.client
import io
import os
import threading
import time
import zipfile

import pytest
import urllib3

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig
from silent_server import SilentServer


def run_bounded(call, seconds):
    """Run ``call()`` in a thread; fail the test if it has not ended after ``seconds``.

    Returns ``(value, error)``: what it returned, or the exception it raised.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test, which asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call still hangs after {seconds} s (watchdog)"
    return outcome.get("value"), outcome.get("error")


@pytest.fixture
def silent():
    with SilentServer() as server:
        yield server


@pytest.fixture
def short_timeout(monkeypatch):
    """The transport's default timeout lowered to 1 s, for calls that take no ``timeout``."""
    monkeypatch.setattr(o, "_DEFAULT_TIMEOUT", urllib3.Timeout(connect=1.0, read=1.0))


# ---- 3. No POST replay ----

def test_a_post_whose_answer_never_comes_is_sent_once_and_raises_orthanc_timeout(
        silent, short_timeout):
    conn = o.Connection(silent.url, auth=("u", "p"))
    _, error = run_bounded(lambda: o.upload(conn, h.generate_test_dicom_file(8, 8)), 10)
    assert isinstance(error, o.OrthancTimeout) and isinstance(error, TimeoutError)
    assert "POST " + silent.url + "/instances" in str(error)
    time.sleep(0.5)  # a replay, if any, would have arrived by now
    assert silent.requests == ["POST /instances HTTP/1.1"]


def test_a_get_whose_answer_never_comes_is_retried_then_raises_orthanc_timeout(
        silent, short_timeout):
    conn = o.Connection(silent.url)
    _, error = run_bounded(lambda: o.get_system(conn), 10)
    assert isinstance(error, o.OrthancTimeout)
    assert silent.requests == ["GET /system HTTP/1.1"] * (1 + o._RETRY_IDEMPOTENT.read)


def test_upload_with_its_own_timeout_gives_up_after_that_timeout(silent):
    conn = o.Connection(silent.url)
    start = time.monotonic()
    _, error = run_bounded(lambda: o.upload(conn, b"\0" * 1000, timeout=1), 10)
    assert isinstance(error, o.OrthancTimeout)
    assert time.monotonic() - start < 5  # not the 60 s default
    assert silent.requests == ["POST /instances HTTP/1.1"]


# ---- 4. Timeouts everywhere ----

HUNG_CALLS = {
    "get_system": lambda conn: o.get_system(conn),
    "upload": lambda conn: o.upload(conn, b"\0" * 1000),
    "find": lambda conn: o.find(conn, o.STUDIES, {"PatientID": "x"}),
}


@pytest.mark.parametrize("name", list(HUNG_CALLS))
def test_a_call_to_a_server_that_never_answers_fails_within_the_transport_timeout(
        silent, short_timeout, name):
    conn = o.Connection(silent.url, auth=("u", "p"))
    _, error = run_bounded(lambda: HUNG_CALLS[name](conn), 10)  # 3 tries of 1 s at most
    assert isinstance(error, o.OrthancTimeout), repr(error)
    assert silent.requests


def test_wait_job_on_a_server_that_never_answers_fails_within_its_own_timeout(silent):
    conn = o.Connection(silent.url, auth=("u", "p"))
    _, error = run_bounded(lambda: o.wait_job(conn, "0b5e1e0c-job", timeout=2), 10)
    assert isinstance(error, o.OrthancTimeout), repr(error)
    assert silent.requests and silent.requests[0].startswith("GET /jobs/0b5e1e0c-job ")


# ---- 2. Stale keep-alive connections ----

@pytest.fixture(scope="module")
def keep_alive_server(make_server):
    """An Orthanc of its own closing idle keep-alive sockets after 1 s.

    ``KeepAliveTimeout`` exists from Orthanc 1.11.3; 1.10.1 ignores it and its civetweb closes
    idle sockets after 0.5 s anyway (checked below by ``test_the_server_closes_idle_...``).
    """
    server = make_server("keepalive", config={"KeepAlive": True, "KeepAliveTimeout": 1})
    yield server
    server.stop()


def test_the_server_closes_an_idle_keep_alive_socket_within_one_and_a_half_seconds(
        keep_alive_server):
    credentials = base64.b64encode(f"{orthanc_rig.USER}:{orthanc_rig.PASSWORD}".encode())
    client = http.client.HTTPConnection("127.0.0.1", keep_alive_server.http_port, timeout=5)
    client.request("GET", "/system", headers={"Authorization": b"Basic " + credentials})
    answer = client.getresponse()
    assert answer.status == 200 and answer.read() and not answer.will_close
    time.sleep(1.5)
    assert client.sock.recv(1) == b""  # the server closed it: the premise of the next test
    client.close()


def _stale_pooled_sockets(url):
    """How many idle sockets of urllib3's pool for ``url`` the server has already closed."""
    pool = o._POOL.connection_from_url(url)
    sockets = [c.sock for c in list(pool.pool.queue) if c is not None and c.sock is not None]
    return sum(1 for s in sockets if urllib3.util.wait.wait_for_read(s, timeout=0))


@pytest.mark.slow
def test_two_hundred_calls_spaced_past_the_keep_alive_timeout_all_succeed(keep_alive_server):
    conn = keep_alive_server.conn
    dicom = h.generate_test_dicom_file(8, 8)
    instance_id = o.upload(conn, dicom)[0]
    calls = [lambda: o.get_system(conn)["DicomAet"] == "KEEPALIVE",
             lambda: o.upload(conn, dicom) == [instance_id],
             lambda: o.get_info(conn, o.INSTANCES, instance_id)["ID"] == instance_id,
             lambda: o.set_string_metadata(conn, o.INSTANCES, instance_id, "Comment", "x")
             is None]
    results, stale_seen = [], 0
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        for batch in range(8):
            if batch:
                time.sleep(1.5)
                stale_seen += _stale_pooled_sockets(conn.url)
            results += executor.map(lambda i: calls[i % len(calls)](), range(25))
    assert len(results) == 200 and all(results)
    assert stale_seen >= 7  # every pause left at least one pooled socket closed by the server


# ---- 5. Bad inputs: each with its typed error and what its message says ----

def _orthanc_id(*uids):
    """Orthanc's id of a resource: the SHA-1 of its UIDs from the patient down."""
    digest = hashlib.sha1("|".join(uids).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def _zip_of(*files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(files):
            archive.writestr(f"{i}.dcm", data)
    return buffer.getvalue()


@pytest.fixture
def nowhere(conn_a):
    """A modality configured on A whose port nothing listens on."""
    o.configure_modality(conn_a, "nowhere", "NOWHERE", "127.0.0.1", orthanc_rig.free_port())
    yield "nowhere"
    o.delete_modality(conn_a, "nowhere")


def _bad_inputs():
    """``name -> (call(conn, modality), expected error class, words its message holds)``."""
    dicom = h.generate_test_dicom_file(16, 16)
    closed = f"http://127.0.0.1:{orthanc_rig.free_port()}"
    return {
        "url without scheme": (lambda c, m: o.Connection("localhost:8042"),
                               o.OrthancValueError, ["http://", "localhost:8042"]),
        "unknown host": (lambda c, m: o.get_system(o.Connection("http://no-such.invalid:8042")),
                         o.OrthancConnectionError, ["GET http://no-such.invalid:8042/system",
                                                    "cannot connect"]),
        "port closed": (lambda c, m: o.get_system(o.Connection(closed)),
                        o.OrthancConnectionError, [closed + "/system", "refused"]),
        "wrong password": (lambda c, m: o.get_system(c._replace(auth=(c.auth[0], "nope"))),
                           o.NotAuthorized, ["HTTP 401", "password"]),
        "token rejected": (lambda c, m: o.get_system(o.Connection(c.url, token="nope")),
                           o.NotAuthorized, ["HTTP 401", "token"]),
        "unknown id": (lambda c, m: o.get_info(c, o.STUDIES, "1234abcd-unknown"),
                       o.NotFound, ["HTTP 404", "/studies/1234abcd-unknown"]),
        "id with a slash": (lambda c, m: o.get_info(c, o.STUDIES, "a/../../system"),
                            o.OrthancValueError, ["'a/../../system'", "path segment"]),
        "id that is ..": (lambda c, m: o.get_file(c, ".."),
                          o.OrthancValueError, ["'..'", "path segment"]),
        "id with a ?": (lambda c, m: o.delete(c, o.INSTANCES, "x?expand"),
                        o.OrthancValueError, ["'x?expand'", "path segment"]),
        "not DICOM": (lambda c, m: o.upload(c, b"hello, not a DICOM file" * 10),
                      o.BadFileFormat, ["HTTP 400", "Bad file format", "invalid DICOM"]),
        "truncated DICOM": (lambda c, m: o.upload(c, dicom[:len(dicom) // 2]),
                            o.BadFileFormat, ["Bad file format"]),
        "corrupt ZIP": (lambda c, m: o.upload(c, _zip_of(dicom)[:-40]),
                        o.BadFileFormat, ["Bad file format", "ZIP"]),
        "empty file": (lambda c, m: o.upload(c, b""),
                       o.BadFileFormat, ["Bad file format", "empty"]),
        "unknown modality": (lambda c, m: o.modality_echo(c, "no-such-modality"),
                             o.NotFound, ["no-such-modality"]),
        "C-STORE to an unreachable modality": (
            lambda c, m: o.modality_send(c, m, o.upload(c, dicom), timeout=60),
            o.JobFailed, ["failed", "DicomAssociation"]),
        "invalid level name": (lambda c, m: o.get_all_ids(c, "studys"),
                               o.OrthancValueError, ["'studys'", "studies"]),
        "find with a non-dict query": (lambda c, m: o.find(c, o.STUDIES, "PatientID=DOE"),
                                       o.OrthancValueError, ["query", "'PatientID=DOE'"]),
        "a job that fails": (lambda c, m: o.wait_job(
                                 c, o.modality_send_as_job(c, m, o.upload(c, dicom)), timeout=60),
                             o.JobFailed, ["failed", "ErrorCode"]),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_a_bad_input_raises_its_typed_error_with_a_message_saying_what(case, conn_a, nowhere):
    call, expected, words = _bad_inputs()[case]
    _, error = run_bounded(lambda: call(conn_a, nowhere), 60)
    assert isinstance(error, expected), f"{case}: {error!r}"
    message = str(error)
    assert "\n" not in message
    for word in words:
        assert word.lower() in message.lower(), f"{case}: {word!r} not in {message!r}"
    if isinstance(error, o.JobFailed):
        assert error.job["State"] == "Failure"


def test_c_echo_to_an_unreachable_modality_is_false_not_an_error(conn_a, nowhere):
    value, error = run_bounded(lambda: o.modality_echo(conn_a, nowhere), 30)
    assert error is None and value is False


# ---- 6. Concurrency ----

@pytest.mark.slow
def test_eight_threads_sharing_one_connection_make_4000_mixed_calls_correctly(conn_a):
    from pydicom.uid import generate_uid

    def make(i):
        uids = ("CONC-" + generate_uid()[-12:], generate_uid(), generate_uid(), generate_uid())
        tags = dict(zip(("PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                         "SOPInstanceUID"), uids))
        return _orthanc_id(*uids), uids[3], h.generate_test_dicom_file(8, 8, tags)

    stored = [make(i) for i in range(40)]
    fresh = [make(i) for i in range(400)]
    for orthanc_id, _, data in stored:
        assert o.upload(conn_a, data) == [orthanc_id]

    def call(i):
        orthanc_id, sop, data = stored[i % len(stored)]
        kind = i % 10
        if kind == 0:
            new_id, _, new_data = fresh[i // 10]
            return o.upload(conn_a, new_data) == [new_id]
        if kind <= 3:
            info = o.get_info(conn_a, o.INSTANCES, orthanc_id)
            return info["ID"] == orthanc_id and info["MainDicomTags"]["SOPInstanceUID"] == sop
        if kind <= 6:
            return o.find(conn_a, o.INSTANCES, {"SOPInstanceUID": sop}, expand=False) == [
                orthanc_id]
        return o.get_file(conn_a, orthanc_id) == data

    def run():
        with concurrent.futures.ThreadPoolExecutor(8) as executor:
            return list(executor.map(call, range(4000)))

    results, error = run_bounded(run, 100)
    assert error is None, repr(error)
    assert len(results) == 4000 and all(results), results.count(False)
    for new_id, _, new_data in fresh[:20]:
        assert o.get_file(conn_a, new_id) == new_data
    o.delete(conn_a, o.PATIENTS, o.find(conn_a, o.PATIENTS, {"PatientID": "CONC-*"},
                                        expand=False))


# ---- 9. Deletion safety ----

@pytest.fixture(scope="module")
def fragile(make_server):
    """An Orthanc of our own whose stored files a test may delete to make a job fail.

    No storage cache (``MaximumStorageCacheSize`` 0), so a deleted file is really missing.
    """
    server = make_server("fragile", config={"OverwriteInstances": True,
                                            "MaximumStorageCacheSize": 0})
    yield server
    server.stop()


def _lose_file(server, instance_id):
    """Delete the stored file of an instance behind Orthanc's back: reading it then fails."""
    uuid = o._get(server.conn, f"/instances/{instance_id}/attachments/dicom/info")["Uuid"]
    os.remove(os.path.join(server.config["StorageDirectory"], uuid[:2], uuid[2:4], uuid))


def _assert_intact(conn, study_id, ids, lost):
    """Every original instance is still there (a failed job may leave partial copies too)."""
    assert set(ids) <= set(o.get_children_ids(conn, o.STUDIES, study_id, o.INSTANCES))
    for instance_id in ids:
        if instance_id != lost:
            assert o.get_file(conn, instance_id)[128:132] == b"DICM"


@pytest.mark.parametrize("action", ["modify", "anonymize"])
def test_delete_original_never_deletes_the_study_when_the_job_fails(fragile, action,
                                                                  upload_study):
    conn = fragile.conn
    study = upload_study(conn, 1, 4)
    study_id, ids = study.id, study.instances_ids  # in upload order
    _lose_file(fragile, ids[-1])  # the last one: the others are processed before it fails
    function = getattr(o, action)
    _, error = run_bounded(lambda: function(
        conn, o.STUDIES, study_id, replace_tags={"StudyDescription": "changed"},
        delete_original=True, timeout=30), 40)
    assert isinstance(error, o.JobFailed), repr(error)
    _assert_intact(conn, study_id, ids, lost=ids[-1])


def test_modifying_an_unreadable_instance_with_delete_original_keeps_it(fragile, upload_study):
    conn = fragile.conn
    study = upload_study(conn, 1, 1)
    study_id, ids = study.id, study.instances_ids  # in upload order
    _lose_file(fragile, ids[0])
    with pytest.raises(o.OrthancError):
        o.modify(conn, o.INSTANCES, ids[0], replace_tags={"SeriesDescription": "changed"},
                 delete_original=True, timeout=30)
    _assert_intact(conn, study_id, ids, lost=ids[0])


def test_modify_instances_set_without_keep_source_keeps_the_originals_when_the_job_fails(
        fragile, upload_study):
    conn = fragile.conn
    study = upload_study(conn, 1, 4)
    study_id, ids = study.id, study.instances_ids  # in upload order
    instances = o.instances_set_from_study(conn, study_id)
    _lose_file(fragile, instances.instances_ids[-1])
    _, error = run_bounded(lambda: o.modify_instances_set(
        conn, instances, replace_tags={"SeriesDescription": "changed"}, keep_source=False,
        timeout=30), 40)
    assert isinstance(error, o.JobFailed), repr(error)
    _assert_intact(conn, study_id, ids, lost=instances.instances_ids[-1])


def test_modify_instances_set_in_place_without_overwrite_keeps_the_originals(conn_b,
                                                                            upload_study):
    """Server B refuses to overwrite: the modified instances never exist, nothing is lost."""
    study = upload_study(conn_b, 1, 4)
    study_id, ids = study.id, study.instances_ids  # in upload order
    instances = o.instances_set_from_study(conn_b, study_id)
    with pytest.raises(o.JobFailed):
        o.modify_instances_set(
            conn_b, instances, replace_tags={"SeriesDescription": "changed"},
            keep_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"], force=True,
            keep_source=False, timeout=30)
    _assert_intact(conn_b, study_id, ids, lost=None)
    assert {o.get_info(conn_b, o.SERIES, s)["MainDicomTags"]["SeriesDescription"]
            for s in instances.series_ids} == {"orthanc_fn test series"}
    o.delete(conn_b, o.STUDIES, study_id)


# ---- 1. Server restart mid-upload ----

@pytest.mark.slow
def test_upload_folder_loses_nothing_when_the_server_is_killed_and_restarted(
        make_server, tmp_path):
    from pydicom.uid import generate_uid

    server = make_server("restart")
    sent = {}  # path -> SOPInstanceUID
    for i in range(500):
        uid = generate_uid()
        path = tmp_path / f"d{i // 100}" / f"{i:03d}.dcm"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(h.generate_test_dicom_file(8, 8, {"SOPInstanceUID": uid}))
        sent[str(path)] = uid
    restarted = []

    def restart():
        server.kill()
        time.sleep(2)
        server.start()
        restarted.append(time.monotonic())

    killer = threading.Thread(target=restart, daemon=True)

    def progress(done, total):
        if done >= 100 and not killer.is_alive() and not restarted:
            killer.start()

    result, error = run_bounded(
        lambda: o.upload_folder(server.conn, tmp_path, ignore_errors=True, progress=progress), 90)
    killer.join(60)
    assert restarted, "the server was not restarted"
    assert error is None, repr(error)
    failed = [path for path, _ in result.errors]
    assert len(failed) == len(set(failed)) and set(failed) <= set(sent)
    assert len(result.instances_ids) == len(set(result.instances_ids))
    assert len(result.instances_ids) + len(failed) == len(sent)
    stored = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"]
              for i in o._post(server.conn, "/tools/find", {"Level": "Instance", "Query": {},
                                                            "Expand": True})}
    assert set(stored) <= set(sent.values())
    for path, uid in sent.items():
        assert uid in stored or path in failed, f"{path} was lost silently"
    assert set(result.instances_ids) <= set(stored.values())
    statistics = o.get_statistics(server.conn)
    assert statistics["CountInstances"] == len(stored)  # none stored twice
    server.stop()
