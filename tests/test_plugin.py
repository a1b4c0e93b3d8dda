"""orthanc_fn inside Orthanc's Python plugin, as a plugin author uses it.

Each test starts an Orthanc with ``libOrthancPython.so`` whose script sits in a folder holding
only that script and a copy of ``orthanc_fn.py``. At ``ORTHANC_STARTED`` the script calls the
REST API of the Orthanc it runs in from a thread (never from a callback: that can deadlock),
and publishes what happened through a REST route of its own that the test reads.
"""
import base64
import json
import os
import shutil
import time

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h
import orthanc_rig

OUTCOME_ROUTE = "/orthanc-fn-test/outcome"

# The plugin script; SETTINGS is filled in by the test (the plugin's Python has no pydicom, so
# the DICOM file travels inside the script as base64).
PLUGIN = '''\
"""Orthanc Python plugin: upload, find and anonymize with a vendored orthanc_fn."""
import base64
import json
import sys
import threading
import traceback

import orthanc
import urllib3

import orthanc_fn as o

SETTINGS = json.loads(%r)
outcome = {"state": "waiting"}


def connect():
    port = json.loads(orthanc.RestApiGet("/system"))["HttpPort"]
    url = "http://127.0.0.1:%%d" %% port
    if SETTINGS["auth"]:
        return o.Connection(url, auth=tuple(SETTINGS["auth"]))
    return o.Connection(url, token=orthanc.GenerateRestApiAuthorizationToken())


def work():
    global outcome
    try:
        conn = connect()
        ids = o.upload(conn, base64.b64decode(SETTINGS["dicom"]))
        found = o.find(conn, o.INSTANCES, {"PatientID": SETTINGS["patient_id"]}, expand=False)
        study = o.get_parent_id(conn, o.INSTANCES, ids[0], o.STUDIES)
        anonymized = o.anonymize(conn, o.STUDIES, study, timeout=60)
        outcome = {
            "state": "done",
            "uploaded": ids,
            "found": found,
            "study": study,
            "anonymized": anonymized,
            "anonymized_patient": o.get_info(conn, o.STUDIES, anonymized)["PatientMainDicomTags"],
            "version": o.get_version(conn),
            "alive_without_credentials": o.is_alive(o.Connection(conn.url)),
            "orthanc_fn": o.__file__,
            "urllib3": urllib3.__version__,
            "python": list(sys.version_info[:3]),
        }
    except Exception:
        outcome = {"state": "failed", "error": traceback.format_exc()}


def on_change(change_type, level, resource_id):
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        threading.Thread(target=work, name="orthanc_fn-test", daemon=True).start()


def get_outcome(output, uri, **request):
    output.AnswerBuffer(json.dumps(outcome), "application/json")


orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterRestCallback("%s", get_outcome)
'''

# A plugin whose Python cannot import urllib3. Debian's python3-urllib3 is installed in the
# rig, so the script hides it the way a missing package looks to ``import``.
PLUGIN_WITHOUT_URLLIB3 = '''\
import json
import sys

import orthanc

sys.modules["urllib3"] = None  # as if python3-urllib3 were not installed
try:
    import orthanc_fn
    outcome = {"imported": True}
except ImportError as exc:
    outcome = {"imported": False, "type": type(exc).__name__, "message": str(exc)}


def get_outcome(output, uri, **request):
    output.AnswerBuffer(json.dumps(outcome), "application/json")


orthanc.RegisterRestCallback("%s", get_outcome)
'''


@pytest.fixture
def plugin_server():
    """``plugin_server(name, script, tier=None)``: an Orthanc running ``script`` from a folder
    holding only it and a copy of orthanc_fn.py; removed after the test."""
    servers = []

    def start(name, script, tier=None):
        server = orthanc_rig.Server(name, tier=tier, plugins=("libOrthancPython.so",))
        servers.append(server)
        folder = os.path.join(server.dir, "plugin")
        os.mkdir(folder)
        path = os.path.join(folder, "plugin.py")
        with open(path, "w") as f:
            f.write(script)
        shutil.copy(o.__file__, os.path.join(folder, "orthanc_fn.py"))
        assert sorted(os.listdir(folder)) == ["orthanc_fn.py", "plugin.py"]
        if tier in ("1.12", "1.13"):  # the "Python" section exists since Python plugin 4.1
            server.config["Python"] = {"Path": server.inside(path)}
        else:  # Debian 12's Python plugin 4.0 knows only the older global option
            server.config["PythonScript"] = server.inside(path)
        server.folder = server.inside(folder)
        return server.start()

    yield start
    for server in servers:
        server.remove()


def plugin_script(dicom, patient_id, auth=None):
    settings = {"dicom": base64.b64encode(dicom).decode(), "patient_id": patient_id,
                "auth": auth}
    return PLUGIN % (json.dumps(settings), OUTCOME_ROUTE)


def wait_outcome(server, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        outcome = o._get(server.conn, OUTCOME_ROUTE)
        if outcome["state"] != "waiting" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert outcome["state"] == "done", (outcome.get("error"), server.log_tail())
    return outcome


@pytest.fixture
def dicom():
    tags = {"PatientID": "PLUGIN-42", "PatientName": "PLUGIN^PATIENT"}
    return h.generate_test_dicom_file(32, 32, tags=tags), tags


def test_a_plugin_on_1_12_and_newer_uploads_finds_and_anonymizes_with_the_rest_api_token(
        plugin_server, dicom, new_tier):
    """Python plugin 5.0 embedding Python 3.13 on 1.12.7; 7.1 embedding 3.14 on 1.13."""
    data, tags = dicom
    server = plugin_server("plugin-token", plugin_script(data, tags["PatientID"]), tier=new_tier)
    outcome = wait_outcome(server)
    python = tuple(outcome["python"][:2])
    print(f"\n[plugin] Orthanc {outcome['version']}, Python plugin "
          f"{o.get_capabilities(server.conn)['plugins']['python']}, Python {outcome['python']}, "
          f"urllib3 {outcome['urllib3']}")
    if new_tier == "1.12":
        assert outcome["version"] == [1, 12, 7] and python == (3, 13)
    else:  # Debian sid moves: 1.13.0 with Python 3.14 when this was written
        assert outcome["version"] >= [1, 13, 0] and python >= (3, 14)
    assert outcome["alive_without_credentials"] is False  # so the token did the work
    assert outcome["orthanc_fn"] == server.folder + "/orthanc_fn.py"
    assert_uploaded_found_and_anonymized(server.conn, outcome, tags)


def test_a_plugin_on_1_10_with_python_plugin_4_works_with_basic_auth_and_urllib3_1_26(
        plugin_server, dicom):
    data, tags = dicom
    auth = [orthanc_rig.USER, orthanc_rig.PASSWORD]
    server = plugin_server("plugin-basic", plugin_script(data, tags["PatientID"], auth))
    outcome = wait_outcome(server)
    assert outcome["version"] == [1, 10, 1] and outcome["python"][:2] == [3, 11]
    assert outcome["urllib3"].startswith("1.26.")  # Debian 12's python3-urllib3
    assert outcome["orthanc_fn"] == server.folder + "/orthanc_fn.py"
    assert_uploaded_found_and_anonymized(server.conn, outcome, tags)


def assert_uploaded_found_and_anonymized(conn, outcome, tags):
    """What the plugin reports is what the server holds."""
    instance_id, = outcome["uploaded"]
    assert outcome["found"] == [instance_id]
    assert o.get_parent_id(conn, o.INSTANCES, instance_id, o.STUDIES) == outcome["study"]
    original = o.get_info(conn, o.STUDIES, outcome["study"])["PatientMainDicomTags"]
    assert original["PatientName"] == tags["PatientName"]
    anonymized = o.get_info(conn, o.STUDIES, outcome["anonymized"])["PatientMainDicomTags"]
    assert anonymized == outcome["anonymized_patient"]
    assert anonymized["PatientName"] != tags["PatientName"]
    assert anonymized["PatientID"] != tags["PatientID"]
    assert len(o.get_all_ids(conn, o.STUDIES)) == 2  # the original study is kept


def test_importing_orthanc_fn_in_a_plugin_without_urllib3_says_to_install_python3_urllib3(
        plugin_server, new_tier):
    """urllib3 is hidden from the plugin's Python (Debian's package is installed in the rig)."""
    server = plugin_server("plugin-nourllib3", PLUGIN_WITHOUT_URLLIB3 % OUTCOME_ROUTE,
                           tier=new_tier)
    outcome = o._get(server.conn, OUTCOME_ROUTE)
    assert outcome["imported"] is False
    assert outcome["type"] == "ImportError"
    assert "python3-urllib3" in outcome["message"]
