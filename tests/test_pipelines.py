"""Pipelines: watch_changes, sync and compare against real servers, including SIGKILL and restart.

A and B (Orthanc 1.10.1) are each other's peer, modality and DICOMweb server. The kill tests
run the watcher or the sync in a subprocess, SIGKILL it in the middle, run it again, and count
what was handled or sent: handled, duplicates, missing. The counts are printed (``-s``).
"""
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig
from counting_proxy import CountingProxy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _last_seq(conn):
    return o._get(conn, "/changes", {"last": ""})["Last"]


def _studies(conn, count, instances=1):
    """Upload ``count`` studies of ``instances`` 32x32 instances each; return the study ids."""
    ids = []
    for _ in range(count):
        files = h.generate_test_study(series=1, instances=instances)
        ids.append(o._store(conn, files[0])[0]["ParentStudy"])
        for data in files[1:]:
            o._store(conn, data)
    return ids


def _upload_parallel(conn, files, workers=8):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as pool:
        return [answer[0] for answer in pool.map(lambda data: o._store(conn, data), files)]


def _run_watch(conn, handler, **options):
    """Run watch_changes in a thread; return (thread, stop event)."""
    stop = threading.Event()
    thread = threading.Thread(target=o.watch_changes, args=(conn, handler),
                              kwargs=dict(options, stop=stop, poll_interval=0.1), daemon=True)
    thread.start()
    return thread, stop


def _stop(thread, stop):
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def _env(conn, **extra):
    env = dict(os.environ, PYTHONPATH=ROOT, ORTHANC_URL=conn.url, ORTHANC_USER=conn.auth[0],
               ORTHANC_PASSWORD=conn.auth[1])
    env.update(extra)
    return env


# ---- watch_changes

def test_watch_changes_hands_every_change_after_since_to_the_handler(conn_a):
    since = _last_seq(conn_a)
    ids = [o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0] for _ in range(3)]
    seen = []
    thread, stop = _run_watch(conn_a, seen.append, since=since)
    assert h.wait_until(lambda: sum(c["ChangeType"] == "NewInstance" for c in seen) == 3, 30)
    _stop(thread, stop)
    assert [c["ID"] for c in seen if c["ChangeType"] == "NewInstance"] == ids
    assert [c["Seq"] for c in seen] == list(range(since + 1, seen[-1]["Seq"] + 1))


def _watch_new_instances(conn, count_requests):
    """Watch NewInstance changes while two instances arrive; return whether the server was
    asked to filter (``type=`` in a request)."""
    since = _last_seq(conn)
    ids = [o.upload(conn, h.generate_test_dicom_file(8, 8))[0] for _ in range(2)]
    seen = []
    thread, stop = _run_watch(conn, seen.append, since=since, change_types="NewInstance")
    assert h.wait_until(lambda: len(seen) == 2, 30)
    _stop(thread, stop)
    assert [c["ID"] for c in seen] == ids
    return any("type=" in url for _, url, _ in count_requests)


def test_watch_changes_filters_by_type_here_on_orthanc_1_10(conn_a, count_requests):
    assert _watch_new_instances(conn_a, count_requests) is False


@pytest.mark.v113
def test_watch_changes_filters_by_type_on_the_server_on_orthanc_1_13(conn_113, count_requests):
    assert _watch_new_instances(conn_113, count_requests) is True
    polls = [url for _, url, _ in count_requests if "/changes?" in url]
    checks = [url for _, url, _ in count_requests if url.endswith("/system")]
    assert len(polls) > 1 and len(checks) == 1  # the version is asked once, not per poll


def test_watch_changes_retries_a_handler_that_fails_transiently(conn_a):
    since = _last_seq(conn_a)
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    calls, errors = collections.Counter(), []

    def flaky(change):
        calls[change["Seq"]] += 1
        if change["ID"] == instance_id and calls[change["Seq"]] <= 2:
            raise ConnectionError("the forwarding target is restarting")

    thread, stop = _run_watch(conn_a, flaky, since=since, change_types="NewInstance",
                              on_error=lambda change, exc: errors.append(change))
    assert h.wait_until(lambda: sum(calls.values()) >= 3, 30)
    _stop(thread, stop)
    assert list(calls.values()) == [3] and errors == []


def test_watch_changes_reports_a_handler_that_keeps_failing_and_goes_on(conn_a, tmp_path):
    since = _last_seq(conn_a)
    ids = [o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0] for _ in range(2)]
    reported, handled = [], []

    def broken_on_first(change):
        if change["ID"] == ids[0]:
            raise ValueError("cannot index this one")
        handled.append(change["ID"])

    cursor = tmp_path / "cursor"
    thread, stop = _run_watch(conn_a, broken_on_first, since=since, change_types="NewInstance",
                              attempts=2, cursor=cursor,
                              on_error=lambda change, exc: reported.append((change["ID"], exc)))
    assert h.wait_until(lambda: handled == [ids[1]], 30)
    _stop(thread, stop)
    assert [(i, str(e)) for i, e in reported] == [(ids[0], "cannot index this one")]
    second = [c["Seq"] for c in o.iter_changes(conn_a, since)
              if c["ID"] == ids[1] and c["ChangeType"] == "NewInstance"]
    assert int(cursor.read_text()) >= second[0]  # past the reported change, and the next


def test_watch_changes_with_workers_runs_handlers_in_parallel_keeping_each_resource_in_order(
        empty_a):
    since = _last_seq(empty_a)
    files = h.generate_test_study(series=4, instances=3)
    _upload_parallel(empty_a, files)
    order, running, lock = collections.defaultdict(list), [0, 0], threading.Lock()

    def slow(change):
        with lock:
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
            order[change["ID"]].append(change["Seq"])

    assert h.wait_until(lambda: any(c["ChangeType"] == "StablePatient"
                                    for c in o.iter_changes(empty_a, since)), 30)
    expected = collections.defaultdict(list)
    for change in o.iter_changes(empty_a, since):
        expected[change["ID"]].append(change["Seq"])
    thread, stop = _run_watch(empty_a, slow, since=since, workers=4)
    assert h.wait_until(lambda: sum(map(len, order.values())) >= 
                        sum(map(len, expected.values())), 60)
    _stop(thread, stop)
    assert running[1] > 1
    assert {key: seqs[:len(expected[key])] for key, seqs in order.items()} == dict(expected)


def test_watch_changes_saves_the_cursor_only_up_to_a_change_still_running(conn_a, tmp_path):
    since = _last_seq(conn_a)
    ids = [o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0] for _ in range(3)]
    release, done = threading.Event(), []

    def blocks_on_first(change):
        if change["ID"] == ids[0]:
            release.wait(30)
        done.append(change["Seq"])

    cursor = tmp_path / "cursor"
    thread, stop = _run_watch(conn_a, blocks_on_first, since=since, workers=3,
                              change_types="NewInstance", cursor=cursor)
    assert h.wait_until(lambda: len(done) == 2, 30)
    time.sleep(0.5)
    first = min(c["Seq"] for c in o.iter_changes(conn_a, since) if c["ID"] == ids[0])
    assert not cursor.exists() or int(cursor.read_text()) < first
    release.set()
    assert h.wait_until(lambda: cursor.exists() and int(cursor.read_text()) > max(done), 30)
    _stop(thread, stop)


def test_watch_changes_resumes_from_its_cursor_file_over_since(conn_a, tmp_path):
    ids = [o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0] for _ in range(2)]
    second = max(c["Seq"] for c in o.iter_changes(conn_a, 0) if c["ID"] == ids[1])
    cursor = tmp_path / "cursor"
    cursor.write_text(f"{second - 1}\n")
    seen = []
    thread, stop = _run_watch(conn_a, seen.append, since=0, cursor=cursor,
                              change_types="NewInstance")
    assert h.wait_until(lambda: seen, 30)
    time.sleep(0.3)
    _stop(thread, stop)
    assert [c["ID"] for c in seen] == [ids[1]]


def test_watch_changes_stops_every_thread_it_started(conn_a):
    before = {t.ident for t in threading.enumerate()}
    thread, stop = _run_watch(conn_a, lambda change: None, since=_last_seq(conn_a), workers=4)
    time.sleep(0.3)
    _stop(thread, stop)
    assert [t.name for t in threading.enumerate() if t.ident not in before] == []


def test_watch_changes_does_not_set_the_callers_stop_event_nor_touch_its_arguments(conn_a):
    types = ["NewInstance"]
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert o.watch_changes(conn_a, lambda c: None, change_types=types, stop=stop,
                           since=_last_seq(conn_a), poll_interval=0.05) is None
    assert types == ["NewInstance"]


def test_watch_changes_waits_for_a_restarting_server_and_goes_on(make_server):
    server = make_server("watch-restart", tier="1.10")
    try:
        seen = []
        thread, stop = _run_watch(server.conn, seen.append, change_types="NewInstance")
        first = o.upload(server.conn, h.generate_test_dicom_file(8, 8))[0]
        assert h.wait_until(lambda: len(seen) == 1, 30)
        server.restart()
        second = o.upload(server.conn, h.generate_test_dicom_file(8, 8))[0]
        assert h.wait_until(lambda: len(seen) == 2, 60)
        _stop(thread, stop)
        assert [c["ID"] for c in seen] == [first, second]
    finally:
        server.remove()


def test_watch_changes_started_while_the_server_is_down_waits_for_it(make_server):
    server = make_server("watch-late", tier="1.10")
    try:
        server.stop()
        seen = []
        thread, stop = _run_watch(server.conn, seen.append, change_types="NewInstance")
        time.sleep(1.5)
        assert thread.is_alive()
        server.start()
        instance_id = o.upload(server.conn, h.generate_test_dicom_file(8, 8))[0]
        assert h.wait_until(lambda: len(seen) == 1, 60)
        _stop(thread, stop)
        assert seen[0]["ID"] == instance_id
    finally:
        server.remove()


_WATCHER = """
import os, sys, threading, time
import orthanc_fn as o
log_path, cursor, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = o.Connection(os.environ["ORTHANC_URL"],
                    auth=(os.environ["ORTHANC_USER"], os.environ["ORTHANC_PASSWORD"]))
stop = threading.Event()
log = open(log_path, "a")
lock = threading.Lock()
def handler(change):
    time.sleep(0.003)
    with lock:
        log.write(f"{change['Seq']}\\n")
        log.flush()
    if change["Seq"] >= target:
        stop.set()
o.watch_changes(conn, handler, cursor=cursor, since=int(sys.argv[4]), workers=int(sys.argv[5]),
                poll_interval=0.1, stop=stop)
"""


@pytest.mark.parametrize("workers", [1, 4])
def test_watch_changes_killed_with_sigkill_and_restarted_handles_every_change(
        empty_a, tmp_path, workers):
    since = _last_seq(empty_a)
    _upload_parallel(empty_a, [h.generate_test_dicom_file(8, 8) for _ in range(150)])
    expected = [c["Seq"] for c in o.iter_changes(empty_a, since)]
    script, log, cursor = tmp_path / "watch.py", tmp_path / "handled.txt", tmp_path / "cursor"
    script.write_text(_WATCHER)
    command = [sys.executable, str(script), str(log), str(cursor), str(expected[-1]),
               str(since), str(workers)]
    kills = 0
    for kill_after in (100, 300):
        process = subprocess.Popen(command, env=_env(empty_a))
        assert h.wait_until(lambda: log.exists() and len(log.read_text().split()) >= kill_after,
                            60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        kills += 1
    assert subprocess.run(command, env=_env(empty_a), timeout=120).returncode == 0
    handled = [int(line) for line in log.read_text().split()]
    missing = set(expected) - set(handled)
    duplicates = len(handled) - len(set(handled))
    print(f"\nwatch_changes workers={workers}, {kills} SIGKILLs: {len(expected)} changes, "
          f"handled {len(set(handled))}, duplicates {duplicates}, missing {len(missing)}")
    assert missing == set() and set(handled) == set(expected)
    assert int(cursor.read_text()) == expected[-1]


# ---- sync and compare

def _dataset(conn, studies=10, instances=100):
    """Store ``studies`` one-series studies of ``instances`` 32x32 instances; return
    ``{study id: [instance ids]}``."""
    tree = collections.defaultdict(list)
    files = [data for _ in range(studies)
             for data in h.generate_test_study(series=1, instances=instances)]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        for answer in pool.map(lambda data: o._store(conn, data)[0], files):
            tree[answer["ParentStudy"]].append(answer["ID"])
    return dict(tree)


def _instances(conn):
    return set(o.get_all_ids(conn, o.INSTANCES))


@pytest.mark.parametrize("method", ["peer", "dicomweb", "copy"])
def test_sync_copies_1000_instances_and_verifies_each(empty_a, empty_b, method):
    tree = _dataset(empty_a)
    report = o.sync(empty_a, empty_b, method=method)
    print(f"\nsync {method}: 1000 instances in {report.seconds:.1f} s")
    assert isinstance(report, o.SyncReport)
    assert sorted(report.copied) == sorted(tree) and report.present == [] == report.failed
    assert _instances(empty_b) == _instances(empty_a) and len(_instances(empty_b)) == 1000


def test_sync_auto_uses_the_peer_src_lists_for_dst(empty_a, empty_b):
    _dataset(empty_a, studies=2, instances=3)
    before = set(o._get(empty_a, "/jobs"))
    o.sync(empty_a, empty_b)
    jobs = [o.get_job(empty_a, job_id) for job_id in set(o._get(empty_a, "/jobs")) - before]
    assert jobs and {job["Type"] for job in jobs} == {"OrthancPeerStore"}


@pytest.mark.v113
def test_sync_auto_copies_between_servers_that_know_nothing_of_each_other(empty_a, conn_113):
    tree = _dataset(empty_a, studies=3, instances=4)
    report = o.sync(empty_a, conn_113)
    assert sorted(report.copied) == sorted(tree)
    assert _instances(conn_113) == _instances(empty_a)


def test_sync_through_transfers_without_the_plugin_raises_saying_what_is_missing(conn_a, conn_b):
    with pytest.raises(o.OrthancValueError) as info:
        o.sync(conn_a, conn_b, method="transfers")
    assert "Transfers plugin" in str(info.value)


def test_sync_transfers_stand_in_for_the_missing_plugin_sends_instance_batches_to_the_peer(
        empty_a, empty_b, monkeypatch):
    """A mock, because the Transfers plugin is not packaged in Debian: ``has_plugin`` says it
    is loaded and ``transfers_send`` is replaced by a stand-in that records its arguments and
    copies the batch with a real peer job. What is checked is sync's side of the method."""
    tree = _dataset(empty_a, studies=3, instances=4)
    calls = []

    def transfers_stand_in(conn, peer, orthanc_ids, level, compress=True, timeout=None, *,
                           peer_conn=None):
        calls.append((conn, peer, sorted(orthanc_ids), level, peer_conn))
        o.peer_send(conn, peer, orthanc_ids, timeout=timeout)

    monkeypatch.setattr(o, "has_plugin", lambda conn, name: True)
    monkeypatch.setattr(o, "transfers_send", transfers_stand_in)
    report = o.sync(empty_a, empty_b, method="transfers")
    assert sorted(report.copied) == sorted(tree) and report.failed == []
    assert {(c[0], c[1], c[3], c[4]) for c in calls} == {(empty_a, "b", o.INSTANCES, empty_b)}
    assert len(calls) == 4  # 12 instances, 4 workers: 4 batches of 3
    assert sorted(i for c in calls for i in c[2]) == sorted(i for ids in tree.values()
                                                            for i in ids)


def test_sync_refuses_an_unknown_method_before_sending(conn_a, conn_b, count_requests):
    with pytest.raises(o.OrthancValueError):
        o.sync(conn_a, conn_b, method="rsync")
    assert count_requests == []


def test_sync_never_sends_again_what_dst_already_has(empty_a, empty_b, count_requests):
    tree = _dataset(empty_a, studies=4, instances=5)
    studies = sorted(tree)
    o.peer_send(empty_a, "b", studies[:2])
    partial = tree[studies[2]][:2]
    o.peer_send(empty_a, "b", partial)
    count_requests.clear()
    report = o.sync(empty_a, empty_b, method="copy")
    sent = [url for method, url, _ in count_requests
            if method == "POST" and url == empty_b.url + "/instances"]
    assert len(sent) == 5 + 3
    assert sorted(report.present) == studies[:2] and sorted(report.copied) == studies[2:]
    assert _instances(empty_b) == _instances(empty_a)


def test_sync_run_again_finds_everything_present(empty_a, empty_b):
    tree = _dataset(empty_a, studies=3, instances=2)
    o.sync(empty_a, empty_b, method="copy")
    again = o.sync(empty_a, empty_b, method="copy")
    assert again.copied == [] and sorted(again.present) == sorted(tree) and again.failed == []


def test_sync_reports_an_instance_whose_file_differs_on_dst_and_leaves_it(empty_a, empty_b):
    uids = {"StudyInstanceUID": "1.2.3.4.5.6.1", "SeriesInstanceUID": "1.2.3.4.5.6.2",
            "SOPInstanceUID": "1.2.3.4.5.6.3", "PatientID": "SAME-IDS"}
    ours = o.upload(empty_a, h.generate_test_dicom_file(16, 16, uids, seed=1))[0]
    theirs = o.upload(empty_b, h.generate_test_dicom_file(16, 16, uids, seed=2))[0]
    assert ours == theirs
    before = o.get_file(empty_b, theirs)
    report = o.sync(empty_a, empty_b, method="copy")
    study = o.get_parent_id(empty_a, o.INSTANCES, ours, o.STUDIES)
    assert report.copied == [] == report.present
    assert [study_id for study_id, _ in report.failed] == [study]
    assert "differs" in report.failed[0][1] and ours in report.failed[0][1]
    assert o.get_file(empty_b, theirs) == before


def test_sync_verifies_without_failing_when_dst_keeps_no_md5(empty_a, make_server):
    """A destination with ``StoreMD5ForAttachments: false`` answers 404 without Orthanc's body
    for the MD5: nothing to compare, not a difference (it once was reported as one)."""
    dst = make_server("nomd5", config={"StoreMD5ForAttachments": False}).conn
    tree = _dataset(empty_a, studies=1, instances=5)
    report = o.sync(empty_a, dst, method="copy")
    assert report.failed == [] and sorted(report.copied) == sorted(tree)
    assert _instances(dst) == _instances(empty_a)


def test_sync_without_verify_takes_present_instances_as_they_are(empty_a, empty_b):
    uids = {"StudyInstanceUID": "1.2.3.4.5.7.1", "SeriesInstanceUID": "1.2.3.4.5.7.2",
            "SOPInstanceUID": "1.2.3.4.5.7.3", "PatientID": "SAME-IDS-2"}
    o.upload(empty_a, h.generate_test_dicom_file(16, 16, uids, seed=1))
    o.upload(empty_b, h.generate_test_dicom_file(16, 16, uids, seed=2))
    report = o.sync(empty_a, empty_b, method="copy", verify=False)
    assert len(report.present) == 1 and report.failed == []


def test_sync_since_copies_only_the_resources_changed_after_that_change(empty_a, empty_b):
    old = _dataset(empty_a, studies=2, instances=2)
    since = _last_seq(empty_a)
    new = _dataset(empty_a, studies=2, instances=2)
    report = o.sync(empty_a, empty_b, method="copy", since=since)
    assert sorted(report.copied) == sorted(new)
    assert not set(o.get_all_ids(empty_b, o.STUDIES)) & set(old)


def test_sync_with_a_query_copies_only_the_matching_studies(empty_a, empty_b):
    wanted = o.upload(empty_a, h.generate_test_dicom_file(8, 8, {"PatientName": "SYNC^ME"}))[0]
    o.upload(empty_a, h.generate_test_dicom_file(8, 8, {"PatientName": "LEAVE^ME"}))
    query = {"PatientName": "SYNC*"}
    report = o.sync(empty_a, empty_b, method="copy", query=query)
    assert report.copied == [o.get_parent_id(empty_a, o.INSTANCES, wanted, o.STUDIES)]
    assert _instances(empty_b) == {wanted} and query == {"PatientName": "SYNC*"}


def test_sync_at_the_instances_level_reports_instance_ids(empty_a, empty_b):
    tree = _dataset(empty_a, studies=1, instances=3)
    report = o.sync(empty_a, empty_b, level="instances", method="copy")
    assert sorted(report.copied) == sorted(next(iter(tree.values())))


def test_sync_calls_progress_up_to_the_number_of_resources(empty_a, empty_b):
    tree = _dataset(empty_a, studies=3, instances=1)
    calls = []
    o.sync(empty_a, empty_b, method="copy",
           progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(tree), len(tree))


def test_compare_after_a_partial_copy_names_what_is_missing_extra_and_incomplete(
        empty_a, empty_b):
    tree = _dataset(empty_a, studies=4, instances=3)
    studies = sorted(tree)
    o.peer_send(empty_a, "b", studies[:2])
    o.peer_send(empty_a, "b", tree[studies[2]][:1])
    extra = o.upload(empty_b, h.generate_test_dicom_file(8, 8))[0]
    comparison = o.compare(empty_a, empty_b)
    assert comparison == o.Comparison(
        only_src=[studies[3]], different=[studies[2]],
        only_dst=[o.get_parent_id(empty_b, o.INSTANCES, extra, o.STUDIES)])
    o.sync(empty_a, empty_b, method="copy")
    assert o.compare(empty_a, empty_b).only_src == [] == o.compare(empty_a, empty_b).different


_SYNCER = """
import json, os, sys
import orthanc_fn as o
src = o.Connection(os.environ["ORTHANC_URL"],
                   auth=(os.environ["ORTHANC_USER"], os.environ["ORTHANC_PASSWORD"]))
dst = o.Connection(os.environ["DST_URL"],
                   auth=(os.environ["ORTHANC_USER"], os.environ["ORTHANC_PASSWORD"]))
report = o.sync(src, dst, method=sys.argv[1], workers=4)
print(json.dumps(report._asdict()))
"""


_KILL_STUDIES, _KILL_AT = 5, 150  # 500 instances; the SIGKILL comes once 150 are stored


@pytest.mark.parametrize("method, cancel", [("copy", False), ("peer", False), ("peer", True)])
def test_sync_killed_with_sigkill_and_run_again_copies_each_instance_once(
        empty_a, empty_b, server_b, tmp_path, method, cancel):
    """``cancel``: the killed run's peer jobs are cancelled too (as a restart of the source
    would end them), so the second run has the rest to send."""
    _dataset(empty_a, studies=_KILL_STUDIES, instances=100)
    script = tmp_path / "sync.py"
    script.write_text(_SYNCER)
    with CountingProxy(server_b.http_port) as proxy:
        o.configure_peer(empty_a, "b-proxy", proxy.url + "/", orthanc_rig.USER,
                         orthanc_rig.PASSWORD)
        try:
            env = _env(empty_a, DST_URL=proxy.url)
            command = [sys.executable, str(script), method]
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
            assert h.wait_until(lambda: o.get_statistics(empty_b)["CountInstances"] >= _KILL_AT,
                                120, polling_interval=0.02)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            process.stdout.close()
            if cancel:
                for job in o._get(empty_a, "/jobs?expand"):
                    if job["Type"] == "OrthancPeerStore" and job["State"] == "Running":
                        o.cancel_job(empty_a, job["ID"])
            at_kill = o.get_statistics(empty_b)["CountInstances"]
            rerun = subprocess.run(command, env=env, stdout=subprocess.PIPE, timeout=300)
            assert rerun.returncode == 0
            report = json.loads(rerun.stdout)
        finally:
            o.delete_peer(empty_a, "b-proxy")
    sends = collections.Counter({key: n for key, n in proxy.bodies.items()
                                 if key[:2] == ("POST", "/instances")})
    duplicates = sum(n - 1 for n in sends.values())
    missing = _instances(empty_a) - _instances(empty_b)
    print(f"\nsync {method}{' (jobs cancelled)' if cancel else ''}, SIGKILL at {at_kill} of "
          f"{_KILL_STUDIES * 100} instances: sent {len(sends)}, "
          f"duplicates {duplicates}, missing {len(missing)}; second run: "
          f"{len(report['copied'])} studies copied, {len(report['present'])} present")
    assert duplicates == 0 and missing == set() and len(sends) == _KILL_STUDIES * 100
    assert report["failed"] == [] and len(report["copied"]) + len(report["present"]) == _KILL_STUDIES


# ---- command line

def _cli(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "orthanc_fn", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _cli_env(src, dst=None, **extra):
    env = {k: v for k, v in _env(src).items() if not k.startswith("ORTHANC_DST_")}
    if dst is not None:
        env.update(ORTHANC_DST_USER=dst.auth[0], ORTHANC_DST_PASSWORD=dst.auth[1])
    env.update(extra)
    return env


def _watch_cli(conn, tmp_path, *args):
    """Run `orthanc_fn watch ARGS` until it printed or ran something, then SIGTERM it."""
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        process = subprocess.Popen([sys.executable, "-m", "orthanc_fn", "watch", *args],
                                   cwd=ROOT, env=_cli_env(conn), stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)
        return process, out


def test_cli_watch_prints_changes_as_json_lines_and_stops_on_sigterm_saving_the_cursor(
        conn_a, tmp_path):
    since = _last_seq(conn_a)
    instance_id = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    cursor = tmp_path / "cursor"
    process, out = _watch_cli(conn_a, tmp_path, "--since", str(since), "--type", "NewInstance",
                              "--cursor", str(cursor), "--poll", "0.1")
    assert h.wait_until(lambda: out.read_text().strip(), 30)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=30)  # reads and closes its stderr pipe
    assert process.returncode == 0, errors
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(c["ChangeType"], c["ID"]) for c in lines] == [("NewInstance", instance_id)]
    assert int(cursor.read_text()) >= lines[0]["Seq"]


def test_cli_watch_exec_runs_the_command_with_the_id_and_type_of_each_change(conn_a, tmp_path):
    since = _last_seq(conn_a)
    ids = [o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0] for _ in range(2)]
    seen = tmp_path / "seen.txt"
    process, out = _watch_cli(conn_a, tmp_path, "--since", str(since), "--type", "NewInstance",
                              "--poll", "0.1", "--exec",
                              f"sh -c 'echo {{type}} {{id}} {{seq}} >> {seen}'")
    assert h.wait_until(lambda: seen.exists() and len(seen.read_text().splitlines()) == 2, 30)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=30)  # reads and closes its stderr pipe
    assert process.returncode == 0, errors
    assert [line.split()[:2] for line in seen.read_text().splitlines()] == \
        [["NewInstance", i] for i in ids]


def test_cli_sync_takes_dst_credentials_from_its_environment_and_prints_the_report(
        empty_a, empty_b):
    tree = _dataset(empty_a, studies=2, instances=2)
    out = _cli("sync", empty_a.url, empty_b.url, "--method", "copy",
               env=_cli_env(empty_a, empty_b))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert sorted(report["copied"]) == sorted(tree) and report["failed"] == []
    assert "sync: 2 copied, 0 already there, 0 failed" in out.stderr
    assert orthanc_rig.PASSWORD not in out.stdout + out.stderr


def test_cli_sync_with_wrong_dst_credentials_fails_in_one_line_without_the_password(
        conn_a, conn_b):
    out = _cli("sync", conn_a.url, conn_b.url, "--method", "copy",
               env=_cli_env(conn_a, ORTHANC_DST_USER="fn-test", ORTHANC_DST_PASSWORD="wrong-pw"))
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "401" in out.stderr
    assert "wrong-pw" not in out.stderr and orthanc_rig.PASSWORD not in out.stderr


def test_cli_compare_prints_only_src_only_dst_and_different(empty_a, empty_b):
    tree = _dataset(empty_a, studies=2, instances=1)
    out = _cli("compare", empty_a.url, empty_b.url, env=_cli_env(empty_a, empty_b))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"only_src": sorted(tree), "only_dst": [],
                                      "different": []}


@pytest.mark.parametrize("level", ["patients", "series"])
def test_sync_and_compare_work_at_the_patient_and_series_levels(empty_a, empty_b, level):
    _dataset(empty_a, studies=2, instances=2)
    expected = sorted(o.get_all_ids(empty_a, level))
    assert o.compare(empty_a, empty_b, level=level).only_src == expected
    assert sorted(o.sync(empty_a, empty_b, level=level, method="copy").copied) == expected
    assert o.compare(empty_a, empty_b, level=level) == o.Comparison([], [], [])
