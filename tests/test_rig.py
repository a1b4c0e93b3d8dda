"""The test rig's safety net: no Orthanc outlives the Python process that started it."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# Starts a server, reports its pid and folder, then ends without stopping it ("exit"), or
# waits to be signalled ("wait").
CHILD = """
import sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import orthanc_rig
server = orthanc_rig.Server("leftover", plugins=())
server.start()
print(server.process.pid, server.dir, flush=True)
if sys.argv[3] == "wait":
    time.sleep(120)
"""


def run_child(mode):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, os.path.join(HERE, "rig"), os.path.dirname(HERE), mode],
        stdout=subprocess.PIPE, text=True)
    pid, folder = child.stdout.readline().split()
    return child, int(pid), folder


def running(pid, folder):
    """Whether ``pid`` is still the Orthanc serving ``folder`` (a reused pid is not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return folder.encode() in f.read()
    except OSError:
        return False


def gone_within(pid, folder, timeout):
    deadline = time.monotonic() + timeout
    while running(pid, folder):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def cleanup(child, pid, folder):
    child.kill()
    child.wait(10)
    child.stdout.close()
    if running(pid, folder):
        os.kill(pid, signal.SIGKILL)  # the Orthanc this test started, if the net failed
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("end", ["normal exit", "SIGTERM", "SIGHUP"])
def test_an_orthanc_left_running_is_stopped_when_the_python_that_started_it_ends(end):
    child, pid, folder = run_child("exit" if end == "normal exit" else "wait")
    try:
        if end != "normal exit":
            child.send_signal(getattr(signal, end))
        # a signal still ends the child as that signal would have (the net re-raises it)
        assert child.wait(30) == (0 if end == "normal exit" else -getattr(signal, end))
        assert gone_within(pid, folder, 15)
    finally:
        cleanup(child, pid, folder)


LEAK = """
import gc, socket

def test_leaks_a_socket():
    leaked = socket.socket()
    del leaked
    gc.collect()
"""


def test_a_test_that_leaks_a_socket_fails_under_the_projects_warning_filter(tmp_path):
    (tmp_path / "test_leak.py").write_text(LEAK)
    setup_cfg = os.path.join(os.path.dirname(HERE), "setup.cfg")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", setup_cfg,
                          "--rootdir", str(tmp_path), str(tmp_path / "test_leak.py")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ResourceWarning" in out.stdout and "1 failed" in out.stdout
