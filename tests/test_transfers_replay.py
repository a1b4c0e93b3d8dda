"""Transfers accelerator plugin: a replay of recorded answers, and the real plugin when built.

The plugin is not packaged in Debian, so most runs cannot load it. The replay tests serve the
exchanges recorded from Orthanc 1.10.1 with Transfers 1.4 (tests/fixtures/
transfers-exchanges.json: push, pull with RemoteSelf, error answers) from loopback HTTP
servers of their own (one per recorded server, A the sender and B the peer). They check the
requests orthanc_fn sends and how it reads each answer; they are not a real Orthanc.

The tests at the end run the real plugin when ORTHANC_TRANSFERS_PLUGIN names a built
libOrthancTransfers.so, and are skipped with that reason otherwise.
"""
import base64
import http.server
import json
import os
import threading
import uuid

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fixtures", "transfers-exchanges.json")) as _f:
    RECORDED = json.load(_f)["exchanges"]

STUDY = "52fc8251-a7f6f0e3-41b09588-93b04b21-7c5d28f9"
INSTANCES = ["1a872933-03e51a26-31abee4a-a8754e81-36850212",
             "e7c3c4dc-f264449c-9a2d543e-5b219c40-bd209068"]
PUSH_JOB = "3aa8bd30-25ba-4288-a138-aeb58941a1c1"
PULL_JOB = "37d708a1-8c8e-42ea-8f8d-267a8e55c4db"


def recorded(note):
    """The recorded exchange whose note is ``note``."""
    return next(e for e in RECORDED if e["note"] == note)


class Replay:
    """A loopback HTTP server answering as one recorded Orthanc server.

    A request is answered by the recorded exchange of that server with the same method, path
    and JSON body; ``force(exchange)`` makes the next request get that exchange's answer
    whatever it asked. Every request received is kept in ``received``; an unrecorded request
    gets a 599 answer, which fails the test that sent it.
    """

    def __init__(self, server_name):
        self.exchanges = [e for e in RECORDED if e["server"] == server_name]
        self.received = []
        self.forced = []
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                replay.received.append({"method": self.command, "path": self.path,
                                        "body": body,
                                        "authorization": self.headers.get("Authorization")})
                exchange = replay.match(self.command, self.path, body)
                status = exchange["status"] if exchange else 599
                data = json.dumps(exchange["response"] if exchange else
                                  {"Message": "no recorded exchange"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.conn = o.Connection(f"http://127.0.0.1:{self.httpd.server_port}",
                                 auth=("replay-user", "replay-password"))

    def match(self, method, path, body):
        if self.forced:
            return self.forced.pop(0)
        for exchange in self.exchanges:
            if (exchange["method"], exchange["path"], exchange["request"]) == (method, path, body):
                return exchange
        return None

    def force(self, exchange):
        self.forced.append(exchange)

    def requests(self):
        return [(r["method"], r["path"], r["body"]) for r in self.received]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def sender():
    replay = Replay("A")
    yield replay
    replay.close()


@pytest.fixture
def peer():
    replay = Replay("B")
    yield replay
    replay.close()


# ---- replay of the recorded answers

def test_replay_push_sends_the_recorded_request_and_waits_for_the_job(sender):
    assert o.transfers_send(sender.conn, "b", STUDY, o.STUDIES) is None
    assert sender.requests() == [
        ("POST", "/transfers/send", recorded("push, gzip")["request"]),
        ("GET", f"/jobs/{PUSH_JOB}", None)]


def test_replay_requests_carry_the_connection_credentials(sender):
    o.transfers_send(sender.conn, "b", STUDY, o.STUDIES)
    expected = "Basic " + base64.b64encode(b"replay-user:replay-password").decode()
    assert {r["authorization"] for r in sender.received} == {expected}


def test_replay_push_without_compression_sends_each_instance_at_instance_level(sender):
    o.transfers_send(sender.conn, "b", INSTANCES, "Instance", compress=False)
    exchange = recorded("push, no compression, instance level")
    assert sender.requests()[0] == ("POST", "/transfers/send", exchange["request"])
    assert sender.requests()[1] == ("GET", "/jobs/" + exchange["response"]["ID"], None)


def test_replay_push_as_job_returns_the_job_id_without_waiting(sender):
    assert o.transfers_send_as_job(sender.conn, "b", [STUDY], o.STUDIES) == PUSH_JOB
    assert [r[0] for r in sender.requests()] == ["POST"]


def test_replay_push_as_job_sends_the_priority_the_plugin_reads(sender):
    """Replay, not the plugin: the request carries "Priority" (the key Transfers' TransferQuery
    reads); the recorded push answer is forced, as it was recorded without one."""
    exchange = recorded("push, gzip")
    sender.force(exchange)
    assert o.transfers_send_as_job(sender.conn, "b", STUDY, o.STUDIES, priority=6) == PUSH_JOB
    assert sender.requests() == [
        ("POST", "/transfers/send", dict(exchange["request"], Priority=6))]


def test_replay_user_data_on_the_recorded_orthanc_110_raises_unsupported_before_sending(sender):
    """Replay, not the plugin: the recorded server is Orthanc 1.10.1, too old for user data."""
    with pytest.raises(o.UnsupportedByServer):
        o.transfers_send(sender.conn, "b", STUDY, o.STUDIES, user_data={"batch": 1})
    assert [method for method, path, _ in sender.requests() if path == "/transfers/send"] == []


def test_replay_pull_waits_for_the_remote_job_on_the_peer(sender, peer):
    o.transfers_send(sender.conn, "b-pull", STUDY, o.STUDIES, peer_conn=peer.conn)
    assert sender.requests() == [
        ("POST", "/transfers/send", recorded(
            "peer with RemoteSelf: the peer pulls; the job lives on the peer")["request"])]
    assert peer.requests() == [("GET", f"/jobs/{PULL_JOB}", None)]


def test_replay_pull_without_peer_conn_reports_where_the_job_runs(sender):
    with pytest.raises(o.TransferOnPeer) as info:
        o.transfers_send(sender.conn, "b-pull", STUDY, o.STUDIES)
    error = info.value
    assert type(error) is o.TransferOnPeer
    assert error.remote_job == PULL_JOB and error.peer == "b-pull"
    assert error.job_url == f"http://127.0.0.1:19043/jobs/{PULL_JOB}"
    assert "RemoteSelf" in str(error) and "peer_conn" in str(error) and PULL_JOB in str(error)
    assert len(sender.requests()) == 1  # nothing retried, nothing resent


def test_replay_pull_as_job_returns_the_job_id_on_the_peer(sender):
    assert o.transfers_send_as_job(sender.conn, "b-pull", STUDY, o.STUDIES) == PULL_JOB


def test_replay_failed_job_of_an_unknown_resource_raises_job_failed(sender):
    with pytest.raises(o.JobFailed) as info:
        o.transfers_send(sender.conn, "b", "00000000-00000000-00000000-00000000-00000000",
                         o.STUDIES)
    assert info.value.job == recorded("job for unknown resource")["response"]
    assert "Error encountered within the plugin engine" in str(info.value)


def test_replay_unknown_peer_raises_not_found_naming_the_peer(sender):
    with pytest.raises(o.NotFound) as info:
        o.transfers_send(sender.conn, "nope", STUDY, o.STUDIES)
    assert info.value.status == 404 and info.value.orthanc["OrthancStatus"] == 17
    assert "'nope'" in str(info.value) and "Unknown resource" in str(info.value)


def test_replay_bad_compression_answer_is_read_as_http_error_with_orthanc_message(sender):
    # compress is a bool, so orthanc_fn cannot send "zip": the recorded answer is forced
    sender.force(recorded("bad compression"))
    with pytest.raises(o.HttpError) as info:
        o.transfers_send(sender.conn, "b", STUDY, o.STUDIES)
    assert info.value.status == 400 and info.value.orthanc["Message"] == "Parameter out of range"
    assert "Parameter out of range" in str(info.value) and "/transfers/send" in str(info.value)


def test_replay_missing_peer_is_refused_before_any_request(sender):
    for missing in (None, ""):
        with pytest.raises(o.OrthancValueError):
            o.transfers_send(sender.conn, missing, STUDY, o.STUDIES)
    assert sender.received == []


def test_replay_missing_peer_answer_is_read_as_http_error_with_orthanc_message(sender):
    sender.force(recorded("missing Peer"))
    with pytest.raises(o.HttpError) as info:
        o.transfers_send_as_job(sender.conn, "b", STUDY, o.STUDIES)
    assert info.value.status == 400 and info.value.orthanc["OrthancStatus"] == 15


def test_replay_transfers_peers_are_read_as_recorded(sender):
    assert o.get_transfers_peers(sender.conn) == {"b": "installed", "b-pull": "bidirectional"}


def test_replay_peer_studies_and_sender_version_are_read_as_recorded(sender, peer):
    assert o.get_all_ids(peer.conn, o.STUDIES) == [STUDY]
    assert o.get_version(sender.conn) == (1, 10, 1)


# ---- the real plugin, when built

PLUGIN = os.environ.get("ORTHANC_TRANSFERS_PLUGIN")
needs_plugin = pytest.mark.skipif(
    not (PLUGIN and os.path.isfile(PLUGIN)),
    reason="the Transfers plugin is not packaged in Debian: set ORTHANC_TRANSFERS_PLUGIN to "
           "a built libOrthancTransfers.so to run these tests")


@pytest.fixture(scope="module")
def transfers_pair():
    """Two servers with the real plugin: A has peer "b" (push) and "b-pull" (RemoteSelf)."""
    a = orthanc_rig.Server("ta", plugins=(PLUGIN,))
    b = orthanc_rig.Server("tb", plugins=(PLUGIN,))
    orthanc_rig.wire(a, b)
    a.config["OrthancPeers"]["b-pull"] = dict(b.as_peer(), RemoteSelf="a")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.remove()
        b.remove()


def _study(conn):
    files = h.generate_test_study(series=1, instances=3,
                                  tags={"PatientName": "TRANSFER^" + uuid.uuid4().hex[:6]})
    ids = [o.upload(conn, f)[0] for f in files]
    return o.get_parent_id(conn, o.INSTANCES, ids[0], o.STUDIES), ids


@needs_plugin
def test_transfers_send_pushes_a_study_to_the_peer(transfers_pair):
    a, b = transfers_pair
    study_id, _ = _study(a.conn)
    o.transfers_send(a.conn, "b", study_id, o.STUDIES, timeout=60)
    assert o.exists(b.conn, o.STUDIES, study_id)


@needs_plugin
def test_transfers_send_pushes_instances_without_compression(transfers_pair):
    a, b = transfers_pair
    _, instance_ids = _study(a.conn)
    o.transfers_send(a.conn, "b", instance_ids[:2], o.INSTANCES, compress=False, timeout=60)
    assert [o.exists(b.conn, o.INSTANCES, i) for i in instance_ids] == [True, True, False]


@needs_plugin
def test_transfers_send_waits_for_a_pull_on_the_peer(transfers_pair):
    a, b = transfers_pair
    study_id, _ = _study(a.conn)
    o.transfers_send(a.conn, "b-pull", study_id, o.STUDIES, timeout=60, peer_conn=b.conn)
    assert o.exists(b.conn, o.STUDIES, study_id)


@needs_plugin
def test_transfers_send_of_a_pull_without_peer_conn_names_the_job_on_the_peer(transfers_pair):
    a, b = transfers_pair
    study_id, _ = _study(a.conn)
    with pytest.raises(o.OrthancError) as info:
        o.transfers_send(a.conn, "b-pull", study_id, o.STUDIES)
    assert o.wait_job(b.conn, info.value.remote_job, timeout=60)["State"] == "Success"


@needs_plugin
def test_transfers_send_as_job_gives_its_job_the_priority(transfers_pair):
    a, _ = transfers_pair
    study_id, _ = _study(a.conn)
    job_id = o.transfers_send_as_job(a.conn, "b", study_id, o.STUDIES, priority=6)
    assert o.get_job(a.conn, job_id)["Priority"] == 6
    assert o.wait_job(a.conn, job_id, timeout=60)["State"] == "Success"


@needs_plugin
def test_transfers_send_to_an_unknown_peer_raises_not_found(transfers_pair):
    a, _ = transfers_pair
    study_id, _ = _study(a.conn)
    with pytest.raises(o.NotFound):
        o.transfers_send(a.conn, "nope", study_id, o.STUDIES)


@needs_plugin
def test_transfers_send_of_an_unknown_resource_raises_job_failed(transfers_pair):
    a, _ = transfers_pair
    with pytest.raises(o.JobFailed):
        o.transfers_send(a.conn, "b", "00000000-00000000-00000000-00000000-00000000",
                         o.STUDIES, timeout=60)
